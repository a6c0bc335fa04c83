"""The 8-bit training pool against 16-bit recordings: each cross-validation fold model scored on the
genuine ESC-10 clips of its test fold, in both versions side by side.

``DATA/esc10`` holds the original clips (44.1 kHz, 16-bit); the ``esc50-16k`` files with the same
names are their 16 kHz 8-bit copies. Every fold model of a run (its ``model_int8.tflite``, in TFLM,
scored on every view as ``esc-tf evaluate`` does) is scored on the pairs of its test fold, which it
never trained or calibrated on; the gap is the accuracy on the copies minus that on the originals,
pooled over the folds.

The two versions differ in more than bit depth: the copies were made from level-normalised files, so
most originals are quieter (the table says by how much). A third score
separates the two causes: each original scaled to its copy's level (the least-squares gain once the
two are aligned; they are a few samples apart) and scored again. What is left of the gap at the
copies' level is what bit depth costs.

    python benchmarks/bit_depth_gap.py --run runs/RUN [--run runs/RUN2 ...] \\
        --originals DATA/esc10 --copies DATA/esc50-16k [--report reports/bit-depth/README.md]
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

import numpy as np  # noqa: E402
from scipy import signal  # noqa: E402

from esc_tf.artifacts import ModelMeta, relative_path, write_text_atomic  # noqa: E402
from esc_tf.config import apply_override  # noqa: E402
from esc_tf.data import dataset as data_mod  # noqa: E402
from esc_tf.stages.evaluate import decode_clips, score_waves  # noqa: E402


def fold_models(run_dir: Path) -> list[tuple[int, Path]]:
    """(test fold, int8 model) of every finished fold of a cross-validation run."""
    found = []
    for model in sorted(run_dir.glob("*/model_int8.tflite")):
        if not (model.parent / "split.json").is_file():
            continue  # the deployment model: trained on every clip, no test fold
        split = json.loads((model.parent / "split.json").read_text())
        if split.get("test_fold") is not None:
            found.append((int(split["test_fold"]), model))
    if not found:
        raise SystemExit(f"error: {run_dir}: no fold with model_int8.tflite and split.json (a finished CV run?)")
    return found


MAX_LAG = 256  # samples at the model's rate: how far apart an original and its copy may start


def level_to(original: np.ndarray, copy: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """The gain that brings ``original`` to ``copy``'s level: least squares once the two are aligned (the lag
    within ``max_lag`` samples where they correlate most)."""
    correlation = signal.correlate(copy, original, mode="full", method="fft")
    lags = signal.correlation_lags(len(copy), len(original), mode="full")
    near = np.abs(lags) <= max_lag
    lag = int(lags[near][np.argmax(np.abs(correlation[near]))])
    a, b = (original[:len(original) - lag], copy[lag:]) if lag >= 0 else (original[-lag:], copy[:lag])
    energy = float(np.dot(a, a))
    return float(np.dot(a, b) / energy) if energy > 0 else 1.0


def gap_half_width_95(copies_only: int, originals_only: int, clips: int) -> float:
    """Half the width of a 95 % interval for the gap of paired scores: only the clips right on one version
    move it, so its standard error is that of a mean of +1 / -1 / 0 per clip."""
    mean = (copies_only - originals_only) / clips
    variance = ((copies_only + originals_only) / clips - mean ** 2) / clips
    return float(1.96 * np.sqrt(max(variance, 0.0)))


def decoded(meta: ModelMeta, data_dir: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The clips ``names`` of ``data_dir`` decoded as the model reads audio, and their labels in its class order."""
    config = apply_override(meta.config, f"data.data_dir={data_dir}")
    table = data_mod.read_metadata(config.resolved_data_dir()).set_index("filename").loc[names].reset_index()
    return decode_clips(meta, config, table)


VERSIONS = ("copies", "originals", "originals_at_copy_level")


def measure_run(run_dir: Path, originals: str, copies: str) -> dict:
    """Per fold and pooled: clips, accuracy on the copies, on the originals and on the originals at the
    copies' level."""
    orig_meta = data_mod.read_metadata(Path(originals))
    by_stem_orig = {Path(n).stem: n for n in orig_meta["filename"]}
    by_stem_copy = {Path(n).stem: n for n in data_mod.read_metadata(Path(copies))["filename"]}
    models = fold_models(run_dir)
    folds, gains_db = {}, []
    for fold, model in models:
        in_fold = orig_meta.loc[orig_meta["fold"] == fold, "filename"]
        stems = [Path(n).stem for n in in_fold if Path(n).stem in by_stem_copy]
        if not stems:
            continue
        meta = ModelMeta.for_model(model)
        trained = {Path(n).stem for n in meta.trained_on}
        if trained & set(stems):
            raise SystemExit(f"error: {model}: trained on {len(trained & set(stems))} of its test pairs")
        copy_waves, truth = decoded(meta, copies, [by_stem_copy[s] for s in stems])
        original_waves, _ = decoded(meta, originals, [by_stem_orig[s] for s in stems])
        gains = np.array([level_to(o, c) for o, c in zip(original_waves, copy_waves)], np.float32)
        gains_db.extend(20 * np.log10(np.maximum(gains, 1e-6)))
        # the three versions in one pass: int8 in TFLM, on every view, as esc-tf evaluate scores
        waves = np.concatenate([copy_waves, original_waves, original_waves * gains[:, None]])
        hits = score_waves(model, meta, meta.config, waves, "tflm").argmax(axis=1) == np.tile(truth, len(VERSIONS))
        right = dict(zip(VERSIONS, np.split(hits, len(VERSIONS))))
        folds[fold] = {"clips": len(stems), **{k: float(v.mean()) for k, v in right.items()},
                       **{f"right_on_{k}": int(v.sum()) for k, v in right.items()},
                       "right_on_copies_only": int((right["copies"] & ~right["originals"]).sum()),
                       "right_on_originals_only": int((right["originals"] & ~right["copies"]).sum())}
    clips = sum(f["clips"] for f in folds.values())
    pooled = {"clips": clips, **{k: sum(f[f"right_on_{k}"] for f in folds.values()) / clips for k in VERSIONS}}
    pooled["gap"] = pooled["copies"] - pooled["originals"]
    pooled["gap_at_copy_level"] = pooled["copies"] - pooled["originals_at_copy_level"]
    pooled["gap_half_width_95"] = gap_half_width_95(sum(f["right_on_copies_only"] for f in folds.values()),
                                                    sum(f["right_on_originals_only"] for f in folds.values()), clips)
    # how much quieter the originals are: the gain (dB) that brings them to their copies' level
    pooled["gain_to_copy_db"] = {f"p{q}": float(np.percentile(gains_db, q)) for q in (50, 95)}
    recipe = ModelMeta.for_model(models[0][1]).config.to_dict()
    return {"run": relative_path(run_dir), "recipe": recipe, "folds": folds, "pooled": pooled}


def format_table(results: list[dict], command: str) -> str:
    lines = ["# 8-bit copies against 16-bit originals (genuine ESC-10 clips)", "",
             "Each fold model of a cross-validation run on `esc50-16k`, int8 in TFLM, on the ESC-10 clips of its "
             "test fold: their 16 kHz 8-bit copies (the training pool's form) and the original 44.1 kHz 16-bit "
             "files. Gap = accuracy on the copies minus accuracy on the originals, pooled over the folds. At the "
             "copies' level: each original scaled to its copy's level first (least-squares gain once aligned), "
             "so that what remains of the gap is bit depth alone.", "",
             "```sh", command, "```", "",
             "| run | clips | on 8-bit copies | on 16-bit originals | gap (points, 95 % interval) | "
             "originals at the copies' level | "
             "gap at the copies' level | per fold: copies / originals |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        p = r["pooled"]
        per_fold = ", ".join(f"{k}: {f['copies']:.3f} / {f['originals']:.3f}" for k, f in sorted(r["folds"].items()))
        lines.append(f"| `{r['run']}` | {p['clips']} | {p['copies']:.4f} | {p['originals']:.4f} | "
                     f"{100 * p['gap']:+.2f} ± {100 * p['gap_half_width_95']:.2f} | {p['originals_at_copy_level']:.4f} | "
                     f"{100 * p['gap_at_copy_level']:+.2f} | {per_fold} |")
    levels = "; ".join(f"`{r['run']}`: median {r['pooled']['gain_to_copy_db']['p50']:+.1f} dB, "
                       f"95th percentile {r['pooled']['gain_to_copy_db']['p95']:+.1f} dB" for r in results)
    lines += ["", f"Gain that brings an original to its copy's level: {levels}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, action="append", required=True, help="a finished CV run folder")
    parser.add_argument("--originals", required=True, help="the 16-bit originals, e.g. DATA/esc10")
    parser.add_argument("--copies", required=True, help="their 8-bit copies, e.g. DATA/esc50-16k")
    parser.add_argument("--report", type=Path, help="write the table here (markdown), and bit_depth_gap.json beside it")
    args = parser.parse_args(argv)
    results = [measure_run(run, args.originals, args.copies) for run in args.run]
    command = "python benchmarks/bit_depth_gap.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    table = format_table(results, command)
    print(table)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.report, table)
        payload = json.dumps({"command": command, "runs": results}, indent=1)
        write_text_atomic(args.report.with_name("bit_depth_gap.json"), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())

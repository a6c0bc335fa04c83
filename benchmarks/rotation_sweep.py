"""How many test-time rotations (``model.time_rolls``) to score a clip on: a sweep over finished runs.

    python benchmarks/rotation_sweep.py RUN [RUN ...] [--rolls 1,2,4,8,12,16,32] [--mel-shifts]
        [--set data.cache_dir=...] [--out reports/rotation_sweep.md]

Every fold's saved Keras model (float) is scored on its own test clips, each clip's features
rotated in time by 0..R-1 frames (``pipeline.model_inputs``) for every R of ``--rolls``; the
softmax over the rotations is averaged, as ``evaluate.clip_scores`` does. With ``--mel-shifts``
the 16 rotations are also combined with the features moved up or down by one mel band (the edge
band repeated, ``pipeline.shift_mels``; ``model.mel_shifts=1`` scores a clip that way). Accuracy
per fold and the mean over every fold of every run are printed side by side.
No model is trained; R is chosen on these folds, so confirm a choice on other runs
(``esc-tf deploy --rescore``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402

from esc_tf import pipeline  # noqa: E402
from esc_tf.cli.options import parse_ints  # noqa: E402
from esc_tf.config import Config, ConfigError, with_value  # noqa: E402
from esc_tf.data import dataset as data_mod  # noqa: E402
from esc_tf.reporting.run_report import write_benchmark_table  # noqa: E402
from esc_tf.runtime.predictors import softmax  # noqa: E402
from esc_tf.stages.deploy import fold_model_and_test_features, run_clips  # noqa: E402


def rotation_probabilities(model: keras.Model, feats: np.ndarray, config: Config, rolls: int,
                           mel_shift: int = 0) -> np.ndarray:
    """Softmax ``[clips, rolls, classes]`` of the model on each clip rotated by 0..rolls-1 frames."""
    views = with_value(config, "model.time_rolls", rolls)
    inputs = pipeline.model_inputs(pipeline.shift_mels(feats, mel_shift), views)
    probs = softmax(model.predict(inputs, batch_size=256, verbose=0))
    return probs.reshape(len(feats), -1, rolls, probs.shape[-1]).mean(axis=1)  # mean over a clip's windows


def sweep_fold(fold_dir: Path, waves: np.ndarray, row_of: dict[str, int], labels: np.ndarray, config: Config,
               rolls: list[int], mel_shifts: bool) -> dict[str, float]:
    """Accuracy of one fold's model for every view set."""
    _, model, _, feats, rows = fold_model_and_test_features(fold_dir, waves, row_of, config)
    y = labels[rows]
    probs = rotation_probabilities(model, feats, config, max(rolls))  # [clips, rotation, classes]
    scores = {f"R={r}": float(np.mean(probs[:, :r].mean(axis=1).argmax(axis=1) == y)) for r in rolls}
    if mel_shifts:
        views = {shift: rotation_probabilities(model, feats, config, 16, shift).mean(axis=1) for shift in (-1, 1)}
        sixteen = probs[:, :16] if max(rolls) >= 16 else rotation_probabilities(model, feats, config, 16)
        base = sixteen.mean(axis=1)  # the first 16 rotations, whatever --rolls asked for
        scores["R=16, mels -1/0/+1"] = float(np.mean((base + views[-1] + views[1]).argmax(axis=1) == y))
        scores["R=16, mels 0/+1"] = float(np.mean((base + views[1]).argmax(axis=1) == y))
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders (python -m esc_tf.train)")
    parser.add_argument("--rolls", default="1,2,4,8,12,16,32", help="rotation counts R to score, comma-separated")
    parser.add_argument("--mel-shifts", action="store_true", help="also 16 rotations combined with ±1 mel band")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                        help="override the runs' data options (e.g. data.cache_dir)")
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = parser.parse_args(argv)
    try:
        rolls = sorted(set(parse_ints(args.rolls, "--rolls", "1,4,16")))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    table: dict[str, dict[str, float]] = {}
    for run in args.runs:
        config, meta, waves, row_of = run_clips(run, args.set)
        for fold_dir in sorted(d for d in run.iterdir() if (d / "result.json").is_file()):
            key = f"{run.name} {fold_dir.name}"
            table[key] = sweep_fold(fold_dir, waves, row_of, data_mod.labels(meta), config, rolls, args.mel_shifts)
            print(key, " ".join(f"{k}: {v:.4f}" for k, v in table[key].items()), flush=True)
    if not table:
        print(f"error: no finished fold (fold*/result.json) in {', '.join(map(str, args.runs))}; train the run first",
              file=sys.stderr)
        return 1
    columns = list(next(iter(table.values())))
    lines = ["| run, fold | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {key} | " + " | ".join(f"{row[c]:.4f}" for c in columns) + " |" for key, row in table.items()]
    lines.append(f"| **mean of {len(table)} folds** | "
                 + " | ".join(f"**{np.mean([row[c] for row in table.values()]):.4f}**" for c in columns) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_benchmark_table(args.out, "Test-time rotations: Keras float accuracy per fold", text, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

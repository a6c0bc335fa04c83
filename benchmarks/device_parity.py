"""Device parity on real clips: the firmware's C feature path vs the Python pipeline, both into TFLM.

For every clip of the chosen folds (classes the model knows):

- device path: the decoded clip as int16 PCM -> ``host_pipeline`` (the firmware's C front
  end, feature buffer and quantisation, built for the host against the export's headers)
  -> int8 input tensor -> the int8 model in the TFLM interpreter;
- Python path: the same int16 PCM / 32768 -> ``pipeline.feature_array`` ->
  ``evaluate.quantize`` -> the same TFLM interpreter.

Prints and writes (``--report``, a section per model/data/folds, replaced on re-runs):
clips, top-1 agreement, the largest |int8 input difference| and how many elements and
clips differ at all, and the accuracy of both paths (also on the clips the model never
saw, when some of them were used to train it).

    python benchmarks/device_parity.py --model tflite/model_int8.tflite \\
        --data-dir DATA/esc50-16k --folds 1 [--report reports/device_parity.md] [--json OUT]

The model's folder must hold the export's ``model_settings.h`` and ``frontend_tables.h``.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from esc_tf.artifacts import ModelMeta  # noqa: E402
from esc_tf.audio.features import views_per_clip  # noqa: E402
from esc_tf.cli.options import parse_folds  # noqa: E402
from esc_tf.config import ConfigError, apply_override  # noqa: E402
from esc_tf.data import dataset as data_mod  # noqa: E402
from firmware_stub.tools import host_build, reference  # noqa: E402


def load_clips(model: Path, data_dir: str, folds: list[int] | None) -> tuple[ModelMeta, pd.DataFrame, np.ndarray]:
    """The model's metadata, the clips of ``folds`` whose class it knows, and their waveforms."""
    meta = ModelMeta.for_model(model)
    config = apply_override(meta.config, f"data.data_dir={data_dir}")
    dataset = data_mod.read_metadata(config.resolved_data_dir())
    if folds:
        dataset = dataset[dataset["fold"].isin(folds)]
    dataset = dataset[dataset["category"].isin(meta.class_names)].reset_index(drop=True)
    waves = data_mod.load_waveforms(dataset, config.audio, config.data.cache_dir, progress=False)
    return meta, dataset, waves


def device_inputs(model: Path, pcm: np.ndarray, views: int = 1, mel_shifts: int = 0) -> np.ndarray:
    """int8 input tensors from the firmware's C path, built against the model folder's headers: each
    clip's window once the clip is in, at mel shifts ``-mel_shifts .. +mel_shifts`` (``kMelShifts``),
    ``views`` times rotated by 0, 1, ... frames (``kTimeRolls``)."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = host_build.build(model.parent, tmp, ("host_pipeline",))["host_pipeline"]
        return host_build.run_host_pipeline(exe, pcm, views=views, mel_shifts=mel_shifts)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b)) if len(a) else 1.0


def compare(model: Path, data_dir: str, folds: list[int] | None) -> dict:
    """Run both paths on every clip; returns the numbers.

    Parity is measured on identical samples: the Python path gets the same int16 PCM as
    the device path. When decoding left some clips not exactly int16 (resampled audio),
    the Python path on the decoded floats (what ``esc-tf evaluate`` scores) is reported
    as well, so the effect of 16-bit audio is visible apart from the front end's.
    """
    start = time.time()
    meta, dataset, waves = load_clips(model, data_dir, folds)
    model_bytes = model.read_bytes()
    pcm = reference.to_int16(waves)
    not_exact = np.any(reference.from_int16(pcm) != waves, axis=1)
    per_clip = views_per_clip(meta.config)  # rotations x mel shifts
    c_in = device_inputs(model, pcm, meta.config.model.time_rolls, meta.config.model.mel_shifts)
    py_in = reference.python_inputs(reference.from_int16(pcm), meta, model_bytes, every_view=per_clip > 1)
    c_pred = reference.clip_classes(model_bytes, c_in, per_clip)
    py_pred = reference.clip_classes(model_bytes, py_in, per_clip)
    y = dataset["category"].map({n: i for i, n in enumerate(meta.class_names)}).to_numpy()
    diff = np.abs(c_in.astype(int) - py_in.astype(int))
    unseen = ~dataset["filename"].isin(set(meta.trained_on)).to_numpy()
    result = {
        "model": str(model), "model_bytes": len(model_bytes),
        "model_sha256": hashlib.sha256(model_bytes).hexdigest()[:16],
        "data_dir": str(data_dir), "folds": folds or sorted(set(dataset["fold"])),
        "clips": int(len(dataset)),
        "top1_agreement": _agreement(c_pred, py_pred),
        "disagreeing_clips": dataset["filename"][c_pred != py_pred].tolist(),
        "max_abs_input_diff": int(diff.max()) if diff.size else 0,
        "input_elements": int(diff.size),
        "input_elements_differing": int(np.count_nonzero(diff)),
        "clips_with_input_difference": int(np.sum(np.any(diff.reshape(len(pcm), -1) > 0, axis=1))),
        "accuracy_device_path": _agreement(c_pred, y),
        "accuracy_python_path": _agreement(py_pred, y),
        "clips_seen_in_training": int(np.sum(~unseen)),
        "clips_not_int16_exact": int(not_exact.sum()),
    }
    if not_exact.any():
        float_in = reference.python_inputs(waves, meta, model_bytes, every_view=per_clip > 1)
        float_pred = reference.clip_classes(model_bytes, float_in, per_clip)
        result.update({
            "decoded_float_top1_agreement": _agreement(c_pred, float_pred),
            "decoded_float_max_abs_input_diff": int(np.abs(c_in.astype(int) - float_in.astype(int)).max()),
            "accuracy_python_decoded_float": _agreement(float_pred, y)})
    if 0 < unseen.sum() < len(unseen):
        result["unseen_clips"] = int(unseen.sum())
        result["accuracy_device_path_unseen"] = _agreement(c_pred[unseen], y[unseen])
        result["accuracy_python_path_unseen"] = _agreement(py_pred[unseen], y[unseen])
    result["wall_seconds"] = round(time.time() - start, 1)
    return result


def format_result(r: dict, command: str) -> tuple[str, str]:
    """A markdown section (title, body) for the report."""
    title = f"## {Path(r['model']).name} ({r['model_sha256']}) on {Path(r['data_dir']).name}, folds " + \
        ",".join(map(str, r["folds"]))
    rows = [
        ("clips", f"{r['clips']}"),
        ("top-1 agreement (device path vs Python path)", f"{r['top1_agreement']:.4f}"
         + (f" (differs on {', '.join(r['disagreeing_clips'][:10])})" if r["disagreeing_clips"] else "")),
        ("max abs int8 input difference", f"{r['max_abs_input_diff']}"),
        ("input elements that differ", f"{r['input_elements_differing']} of {r['input_elements']} "
         f"({r['input_elements_differing'] / max(r['input_elements'], 1):.2e})"),
        ("clips whose input differs at all", f"{r['clips_with_input_difference']}"),
        ("accuracy, device path (C front end + TFLM)", f"{r['accuracy_device_path']:.4f}"),
        ("accuracy, Python path (pipeline + TFLM)", f"{r['accuracy_python_path']:.4f}"),
    ]
    if "unseen_clips" in r:
        rows += [(f"accuracy on the {r['unseen_clips']} clips not used in training, device / Python",
                  f"{r['accuracy_device_path_unseen']:.4f} / {r['accuracy_python_path_unseen']:.4f}")]
    if r["clips_not_int16_exact"]:
        rows += [("Python path on the decoded floats instead of int16: top-1 agreement with the device path / "
                  "max abs input difference / accuracy",
                  f"{r['decoded_float_top1_agreement']:.4f} / {r['decoded_float_max_abs_input_diff']} / "
                  f"{r['accuracy_python_decoded_float']:.4f}")]
    notes = [f"Command: `{command}`",
             f"Measured {datetime.date.today().isoformat()}, {r['wall_seconds']} s; model {r['model_bytes']} bytes."]
    if r["clips_seen_in_training"]:
        notes.append(f"{r['clips_seen_in_training']} of these clips were used to train or calibrate the model: "
                     "its accuracy on them is not a held-out number (parity numbers are unaffected).")
    if r["clips_not_int16_exact"]:
        notes.append(f"{r['clips_not_int16_exact']} clips were not exact int16 after decoding (resampled). Both "
                     "paths get them rounded to int16 PCM, as a microphone delivers; the last row compares "
                     "the device path with the Python path on the decoded floats, to show what the rounding "
                     "alone does.")
    body = "\n".join(["", *notes, "", "| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""])
    return title, body


def write_section(path: Path, title: str, body: str) -> None:
    """Add the section to the report, replacing one with the same title."""
    text = path.read_text() if path.is_file() else "# Device parity\n"
    parts = text.split("\n## ")
    head, sections = parts[0], ["## " + p for p in parts[1:]]
    sections = [s for s in sections if s.splitlines()[0] != title] + [title + "\n" + body]
    path.write_text("\n".join([head.rstrip() + "\n", *(s.rstrip() + "\n" for s in sections)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tflite/model_int8.tflite",
                        help="int8 model; model_meta.json, model_settings.h and frontend_tables.h beside it")
    parser.add_argument("--data-dir", required=True, help="dataset in the ESC-50 layout")
    parser.add_argument("--folds", help="e.g. 1 or 1,3 (default: every fold)")
    parser.add_argument("--report", help="markdown file to add the result to (e.g. reports/device_parity.md)")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--min-clips", type=int, default=100, help="refuse to report on fewer clips (default 100)")
    args = parser.parse_args(argv)
    try:
        folds = parse_folds(args.folds)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result = compare(Path(args.model), args.data_dir, folds)
    if result["clips"] < args.min_clips:
        print(f"error: only {result['clips']} clips (--min-clips {args.min_clips})", file=sys.stderr)
        return 1
    command = "python benchmarks/device_parity.py " + " ".join(sys.argv[1:] if argv is None else argv)
    title, body = format_result(result, command)
    print(title + "\n" + body)
    for path in (args.report, args.json):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if args.report:
        write_section(Path(args.report), title, body)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

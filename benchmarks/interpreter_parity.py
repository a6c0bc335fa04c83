"""Which LiteRT kernels compute what TFLM (the device's interpreter) computes: a comparison on finished runs.

    python benchmarks/interpreter_parity.py RUN [RUN ...] [--set data.cache_dir=...]
        [--out reports/interpreter_parity.md]

Every fold's int8 model (``model_int8.tflite``, written by the edge stage) runs on every model input
of its own test clips (each window and rotation, ``pipeline.model_inputs``) in TFLM and in LiteRT
with each of its kernel sets (``evaluate.LITERT_KERNELS``): the default (XNNPACK delegate), the
optimised builtin kernels without it, and the reference kernels. Printed side by side per fold: the
share of int8 outputs that differ from TFLM's, the share of clips whose top-1 class differs from
TFLM's, and the clip accuracy (``evaluate.clip_scores``). No model is trained.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from esc_tf import pipeline  # noqa: E402
from esc_tf.config import Config  # noqa: E402
from esc_tf.data import dataset as data_mod  # noqa: E402
from esc_tf.reporting.run_report import write_benchmark_table  # noqa: E402
from esc_tf.runtime.predictors import LITERT_KERNELS, LiteRTPredictor, TFLMPredictor, softmax  # noqa: E402
from esc_tf.stages.deploy import fold_model_and_test_features, run_clips  # noqa: E402


def compare_fold(fold_dir: Path, waves: np.ndarray, row_of: dict[str, int], labels: np.ndarray,
                 config: Config) -> dict[str, dict[str, float]]:
    """Per interpreter: outputs differing from TFLM's, clips whose top-1 differs, clip accuracy."""
    _, _, _, feats, rows = fold_model_and_test_features(fold_dir, waves, row_of, config)
    model = (fold_dir / "model_int8.tflite").read_bytes()
    inputs = pipeline.model_inputs(feats, config)
    outputs = {"tflm": TFLMPredictor(model)(inputs)}
    for kernels in LITERT_KERNELS:
        outputs[f"litert_{kernels}"] = LiteRTPredictor(model, kernels=kernels)(inputs)

    def clip_top1(scores: np.ndarray) -> np.ndarray:  # as evaluate.clip_scores averages a clip's inputs
        return softmax(scores).reshape(len(feats), -1, scores.shape[-1]).mean(axis=1).argmax(axis=1)
    reference = clip_top1(outputs["tflm"])
    return {name: {"outputs differing": float(np.mean(out != outputs["tflm"])),
                   "top-1 differing": float(np.mean(clip_top1(out) != reference)),
                   "accuracy": float(np.mean(clip_top1(out) == labels[rows]))}
            for name, out in outputs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders with the edge stage")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                        help="override the runs' data options (e.g. data.cache_dir)")
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = parser.parse_args(argv)
    rows: list[str] = []
    for run in args.runs:
        config, meta, waves, row_of = run_clips(run, args.set)
        for fold_dir in sorted(d for d in run.iterdir()
                               if (d / "result.json").is_file() and (d / "model_int8.tflite").is_file()):
            result = compare_fold(fold_dir, waves, row_of, data_mod.labels(meta), config)
            for name, m in result.items():
                rows.append(f"| {run.name} {fold_dir.name} | {name} | {m['outputs differing']:.5f} | "
                            f"{m['top-1 differing']:.4f} | {m['accuracy']:.4f} |")
                print(rows[-1], flush=True)
    header = ["| run, fold | interpreter | int8 outputs differing from TFLM | clips whose top-1 differs from "
              "TFLM | clip accuracy |", "|---|---|---|---|---|"]
    text = "\n".join(header + rows)
    print(text)
    if args.out:
        write_benchmark_table(args.out, "LiteRT kernels against TFLM on the same int8 models", text, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Whether two int8 ``.tflite`` models compute the same thing, e.g. the published model and the deployment
model of a run that retrained its recipe: a check that what a device runs is what a command trains.

    python benchmarks/same_model.py tflite/model_int8.tflite runs/RUN/deploy/model_int8.tflite \\
        [--report reports/published-model-reproduced/README.md]

Each model's ``export.computation_digest`` covers its operators, tensor shapes, types, quantisation and
every constant byte, and leaves out tensor names and metadata (a model rebuilt in another Python process
gets other layer names). Printed: both files' sizes and digests, and when they differ, how many constant
tensors and quantisation parameters differ. Exit status 0 when the two compute the same thing, 1 when not,
2 when a file is missing or not a TensorFlow Lite model.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from esc_tf.artifacts import ModelError, relative_path, write_text_atomic  # noqa: E402
from esc_tf.runtime.predictors import tflite_io_shapes  # noqa: E402
from esc_tf.stages.export import computation_digest, model_computation  # noqa: E402


def tensor_differences(a: bytes, b: bytes) -> dict[str, int] | None:
    """Tensors (in graph order) whose constant bytes, or whose quantisation parameters, differ between two
    models of the same graph; None when the graphs differ in their number of tensors."""
    first, second = model_computation(a), model_computation(b)
    if len(first.tensors) != len(second.tensors):
        return None
    return {"tensors": len(first.tensors),
            "constants": sum(x != y for x, y in zip(first.constants, second.constants)),
            "quantization": sum(x[2] != y[2] for x, y in zip(first.tensors, second.tensors))}


def compare(first: Path, second: Path) -> dict:
    a, b = first.read_bytes(), second.read_bytes()
    digests = computation_digest(a), computation_digest(b)
    result = {"models": [relative_path(first), relative_path(second)], "bytes": [len(a), len(b)],
              "digests": list(digests), "same_computation": digests[0] == digests[1],
              "same_bytes": a == b}
    if not result["same_computation"]:
        result["differences"] = tensor_differences(a, b)
    return result


def format_report(result: dict, command: str) -> str:
    lines = ["# Do two int8 models compute the same thing?", "", "```sh", command, "```", "",
             "| model | bytes | computation sha256 |", "|---|---|---|"]
    lines += [f"| `{m}` | {n:,} | `{d}` |" for m, n, d in zip(result["models"], result["bytes"], result["digests"])]
    if result["same_computation"]:
        verdict = ("The same computation: every operator, tensor shape, quantisation parameter and constant byte "
                   "agrees" + (" (the files are identical)." if result["same_bytes"] else
                               "; the files differ only in tensor names, metadata or layout."))
    else:
        d = result["differences"]
        verdict = ("Different computations: the graphs have different numbers of tensors." if d is None else
                   f"Different computations: {d['constants']} of {d['tensors']} tensors differ in their constant "
                   f"bytes, {d['quantization']} in their quantisation parameters.")
    return "\n".join(lines + ["", verdict, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="an int8 .tflite model, e.g. tflite/model_int8.tflite")
    parser.add_argument("second", type=Path, help="another, e.g. runs/RUN/deploy/model_int8.tflite")
    parser.add_argument("--report", type=Path, help="also write the result here (markdown)")
    args = parser.parse_args(argv)
    for path in (args.first, args.second):
        if not path.is_file():
            print(f"error: {path}: no such model file; name two .tflite files", file=sys.stderr)
            return 2
        try:
            tflite_io_shapes(path.read_bytes(), path)  # refuses a damaged or foreign file before it is parsed
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    result = compare(args.first, args.second)
    command = "python benchmarks/same_model.py " + " ".join(
        shlex.quote(str(a)) for a in (argv if argv is not None else sys.argv[1:]))
    text = format_report(result, command)
    print(text)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.report, text)
    return 0 if result["same_computation"] else 1


if __name__ == "__main__":
    sys.exit(main())

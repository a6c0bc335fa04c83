"""Mean ± std of float and int8 TFLM accuracy over every fold of several saved runs (seeds × folds).

    python benchmarks/pool_folds.py reports/RUN_A reports/RUN_B ...

Reads each folder's report.json (a run folder or its copy under reports/): the per-fold Keras float
and TFLM int8 accuracies of the edge stage, pooled over all runs' folds (population std).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def fold_accuracies(run: Path) -> tuple[list[float], list[float]]:
    """Per-fold Keras float and int8 TFLM test accuracy of one run."""
    variants = json.loads((run / "report.json").read_text())["edge"]["variants"]
    return variants["keras_float"]["per_fold"], variants["int8_tflm"]["per_fold"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="folders holding a report.json with the edge stage")
    args = parser.parse_args(argv)
    floats, int8s = [], []
    for run in args.runs:
        try:
            f, q = fold_accuracies(run)
        except (OSError, KeyError, ValueError) as exc:
            print(f"error: {run}: no report.json with the edge stage's int8 TFLM scores ({exc}); run esc-tf deploy "
                  "--run on it first", file=sys.stderr)
            return 1
        floats += f
        int8s += q
        print(f"{run.name}: float {np.mean(f):.4f}, int8 TFLM {np.mean(q):.4f} ({len(f)} folds)")
    print(f"pooled over {len(args.runs)} runs, {len(floats)} folds: float {np.mean(floats):.4f} ± "
          f"{np.std(floats):.4f}, int8 TFLM {np.mean(int8s):.4f} ± {np.std(int8s):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

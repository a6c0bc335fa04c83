"""``python -m esc_tf.tune``: hyperparameter search and multi-seed aggregation over CV folds.

The search space is a YAML/JSON mapping of ``section.option`` to either a list of values
(grid) or ``{uniform: [lo, hi]}`` / ``{loguniform: [lo, hi]}`` / ``{choice: [...]}``
(random search with ``--trials N``). Every trial is a normal cross-validation run (resumable,
in its own run folder) repeated for each seed of ``--seeds``.

Trials are ranked by **validation** accuracy (the early-stopping clips carved from the
training folds), never by test-fold accuracy, so choosing the winner does not peek at the
test folds; test accuracy is reported beside it, as mean ± std over seeds × folds.

    python -m esc_tf.tune --data-dir DIR --space space.yaml [--trials 8] [--seeds 1,2,3] [--folds 1,2]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from esc_tf.config import Config, ConfigError, with_value
from esc_tf.data import DatasetError
from esc_tf.train import FoldResult, add_data_arguments, config_from_args, load_fold_result, run_cross_validation


def load_space(path: str | Path) -> dict[str, Any]:
    """Read a search space; keys must be existing ``section.option`` names."""
    path = Path(path)
    try:
        space = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read search space: {exc}") from exc
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: expected a mapping of section.option to values")
    for key in space:
        with_value(Config(), key, _first_value(space[key]))  # validates the key and the value type
    return space


def _first_value(spec: Any) -> Any:
    if isinstance(spec, list):
        return spec[0]
    if isinstance(spec, dict) and len(spec) == 1:
        kind, arg = next(iter(spec.items()))
        return arg[0]
    return spec


def sample_trials(space: dict[str, Any], trials: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """Every grid point (all lists, no ``trials``), or ``trials`` random draws."""
    if trials is None:
        if not all(isinstance(v, list) for v in space.values()):
            raise ConfigError("distributions in the space need --trials N (random search)")
        keys = list(space)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(trials):
        point = {}
        for key, spec in space.items():
            if isinstance(spec, list):
                point[key] = spec[rng.integers(len(spec))]
            elif isinstance(spec, dict) and "uniform" in spec:
                point[key] = float(rng.uniform(*spec["uniform"]))
            elif isinstance(spec, dict) and "loguniform" in spec:
                lo, hi = np.log(spec["loguniform"])
                point[key] = float(np.exp(rng.uniform(lo, hi)))
            elif isinstance(spec, dict) and "choice" in spec:
                point[key] = spec["choice"][rng.integers(len(spec["choice"]))]
            else:
                raise ConfigError(f"search space entry {key}: use a list, uniform, loguniform or choice")
        out.append(point)
    return out


def validation_accuracy(result: FoldResult) -> float | None:
    """Validation accuracy at the epoch whose weights were kept (lowest validation loss); None when
    the run had no validation clips (``data.val_fraction: 0``)."""
    if "val_loss" not in result.history:
        return None
    best = int(np.argmin(result.history["val_loss"]))
    return float(result.history["val_accuracy"][best])


def aggregate(results: list[FoldResult]) -> dict[str, float]:
    """Mean ± std over every (seed, fold) result of one trial."""
    val = [v for v in (validation_accuracy(r) for r in results) if v is not None]
    test = [r.accuracy for r in results]
    return {"val_mean": float(np.mean(val)) if val else None,  # None: no validation clips (JSON null)
            "val_std": float(np.std(val, ddof=1)) if len(val) > 1 else 0.0,
            "test_mean": float(np.mean(test)), "test_std": float(np.std(test, ddof=1)) if len(test) > 1 else 0.0,
            "runs": len(results)}


def trial_config(base: Config, point: dict[str, Any], seed: int) -> Config:
    """``base`` with the point's values and the seed applied."""
    config = with_value(base, "train.seed", seed)
    for key, value in point.items():
        config = with_value(config, key, value)
    return config


def run_trial(base: Config, point: dict[str, Any], seeds: list[int], runs_root: Path) -> dict[str, Any]:
    """Cross-validate one point of the space for every seed (finished folds are reused)."""
    results: list[FoldResult] = []
    run_dirs = []
    for seed in seeds:
        config = trial_config(base, point, seed)
        run_dir = run_cross_validation(config, runs_root, progress=False)
        run_dirs.append(str(run_dir))
        wanted = {f"fold{f}" for f in config.data.folds}
        for fold_dir in sorted(d for d in run_dir.iterdir() if d.is_dir()):
            r = load_fold_result(fold_dir)
            if r is not None and (not wanted or r.name in wanted):
                results.append(r)
    return {"point": point, **aggregate(results), "run_dirs": run_dirs}


def write_summary(out_dir: Path, trials: list[dict[str, Any]]) -> None:
    ranked = sorted(trials, key=lambda t: -np.inf if t["val_mean"] is None else -t["val_mean"])
    (out_dir / "tune.json").write_text(json.dumps(ranked, indent=1))
    lines = ["# Hyperparameter search", "", "Ranked by validation accuracy (carved from the training folds); "
             "test accuracy is mean ± std over seeds × test folds.", "",
             "| rank | " + " | ".join(ranked[0]["point"]) + " | val | test | runs |",
             "|---|" + "---|" * (len(ranked[0]["point"]) + 3)]
    for i, t in enumerate(ranked, 1):
        values = " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in t["point"].values())
        val = "—" if t["val_mean"] is None else f"{t['val_mean']:.4f} ± {t['val_std']:.4f}"
        lines.append(f"| {i} | {values} | {val} | "
                     f"{t['test_mean']:.4f} ± {t['test_std']:.4f} | {t['runs']} |")
    (out_dir / "tune.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m esc_tf.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--space", help="YAML/JSON search space (omit for a multi-seed run of the config)")
    parser.add_argument("--trials", type=int, help="random search with this many draws (default: full grid)")
    parser.add_argument("--seeds", default="42", help="comma-separated training seeds per trial (default: 42)")
    parser.add_argument("--runs-root", default="runs/tune")
    parser.add_argument("--out", default=None, help="summary folder (default: RUNS_ROOT)")
    args = parser.parse_args(argv)
    try:
        base = with_value(with_value(config_from_args(args), "export.edge_eval", False), "export.deploy", False)
        space = load_space(args.space) if args.space else {}
        points = sample_trials(space, args.trials, base.train.seed) if space else [{}]
        for point in points if space else []:
            if trial_config(base, point, base.train.seed).data.val_fraction <= 0:
                raise ConfigError(f"trial {point}: a search ranks its trials by validation accuracy, and "
                                  "data.val_fraction is 0: add --set data.val_fraction=0.125")
        seeds = [int(s) for s in args.seeds.split(",")]
        out_dir = Path(args.out or args.runs_root)
        out_dir.mkdir(parents=True, exist_ok=True)
        done: list[dict[str, Any]] = []
        for i, point in enumerate(points, 1):
            print(f"[trial {i}/{len(points)}] {point or 'base config'} x seeds {seeds}", flush=True)
            done.append(run_trial(base, point, seeds, Path(args.runs_root)))
            val = "—" if done[-1]["val_mean"] is None else f"{done[-1]['val_mean']:.4f}"
            print(f"[trial {i}/{len(points)}] val {val}, test {done[-1]['test_mean']:.4f} "
                  f"± {done[-1]['test_std']:.4f}", flush=True)
            write_summary(out_dir, done)
    except (ConfigError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"summary: {out_dir / 'tune.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

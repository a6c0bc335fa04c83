"""``esc-tf tune``: hyperparameter search (Optuna) over the CV folds, ranked on validation clips."""
from __future__ import annotations

import argparse
from pathlib import Path

import optuna

from esc_tf.cli.options import add_data_arguments, config_from_args
from esc_tf.config import ConfigError, with_value
from esc_tf.stages.tune import check_validation_clips, load_space, run_search, run_seeds

DEFAULT_TRIALS = 10


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    parser = commands.add_parser(
        "tune", help="hyperparameter search over the CV folds",
        description="Every trial is a normal cross-validation run (resumable, in its own run folder) repeated "
                    "for each seed; trials are ranked by validation accuracy, never by test-fold accuracy. "
                    "Optuna draws the trials (TPE) and stops those that fall behind after a fold (median "
                    "pruner); the study is kept in OUT/study.db, so the same command resumes a stopped search.")
    add_data_arguments(parser)
    parser.add_argument("--space", help="YAML/JSON search space: section.option mapped to a list of values, "
                                        "{choice: [...]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]} or "
                                        "{int: [lo, hi]} (omit for a multi-seed run of the config)")
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                        help=f"trials the search finishes, counting those a stopped search already finished "
                             f"(default: {DEFAULT_TRIALS})")
    parser.add_argument("--seeds", default="42", help="comma-separated training seeds per trial (default: 42)")
    parser.add_argument("--runs-root", default="runs/tune")
    parser.add_argument("--out", default=None, help="summary and study folder (default: RUNS_ROOT)")
    parser.set_defaults(handler=run)


def parse_seeds(text: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers such as 1,2") from None


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    base = with_value(with_value(config_from_args(args), "export.edge_eval", False), "export.deploy", False)
    seeds = parse_seeds(args.seeds)
    space = load_space(args.space) if args.space else None
    if space is not None:
        check_validation_clips(base, space)
    out_dir = Path(args.out or args.runs_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    if space is None:
        print(f"base config x seeds {seeds}", flush=True)
        run_seeds(base, seeds, out_dir, Path(args.runs_root))
    else:
        # Trials print their own lines, and errors end as one line (Optuna would add a traceback).
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        summary = run_search(base, space, seeds, args.trials, out_dir, Path(args.runs_root))
        best = max((t for t in summary if t["state"] == "complete"), key=lambda t: t["val_mean"], default=None)
        if best is not None:
            print(f"best: trial {best['trial']} {best['point']}: val {best['val_mean']:.4f}, "
                  f"test {best['test_mean']:.4f} ± {best['test_std']:.4f}")
    print(f"summary: {out_dir / 'tune.md'}")
    return 0

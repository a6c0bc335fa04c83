"""``esc-tf tune``: hyperparameter search (Optuna) over the CV folds, ranked on validation clips."""
from __future__ import annotations

import argparse
from pathlib import Path

import optuna

from esc_tf.cli.options import add_data_arguments, config_from_args, parse_ints
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


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    base = config_from_args(args)
    seeds = parse_ints(args.seeds, "--seeds", "1,2")
    space = load_space(args.space) if args.space else None
    if space is not None:
        check_validation_clips(base, space)
    out_dir = Path(args.out or args.runs_root)
    if space is None:
        print(f"base config x seeds {seeds}", flush=True)
        run_seeds(base, seeds, out_dir, Path(args.runs_root))
    else:
        # Trials print their own lines, and errors end as one line (Optuna would add a traceback).
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        ranked = run_search(base, space, seeds, args.trials, out_dir, Path(args.runs_root))
        if ranked and ranked[0]["state"] == "complete":
            best = ranked[0]
            print(f"best: trial {best['trial']} {best['point']}: val {best['val_mean']:.4f}, "
                  f"test {best['test_mean']:.4f} ± {best['test_std']:.4f}")
    print(f"summary: {out_dir / 'tune.md'}")
    return 0

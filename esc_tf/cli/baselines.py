"""``esc-tf baselines``: scikit-learn classifiers on pooled features, the floor a CNN must beat."""
from __future__ import annotations

import argparse

from esc_tf.artifacts import write_json_atomic
from esc_tf.cli.options import add_data_arguments, config_from_args
from esc_tf.stages.baselines import run_baselines


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    parser = commands.add_parser(
        "baselines", help="scikit-learn baselines on pooled features",
        description="Logistic regression, an RBF SVM and a random forest on per-coefficient mean, std, min and "
                    "max of the training front end's features, under the same folds as esc-tf train.")
    add_data_arguments(parser)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    results = run_baselines(config_from_args(args))
    if args.out:
        write_json_atomic(args.out, results)
    return 0

"""``esc-tf deploy``: the edge stages of a finished run, or its folds scored again with other views."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from esc_tf.cli.options import add_set_argument
from esc_tf.reporting.run_report import write_run_report
from esc_tf.stages.deploy import rescore, run_edge_stages


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    parser = commands.add_parser(
        "deploy", help="prune, quantise, check in TFLM and export a finished run",
        description="Edge stages of a finished training run: for every fold, prune, quantise and compare "
                    "float/int8/TFLM on its test fold; then train, prune, quantise and export the deployment "
                    "model. Finished stages are skipped.")
    parser.add_argument("--run", required=True, help="run folder written by esc-tf train")
    add_set_argument(parser, "override prune.* / export.* options of the run's config, or data.data_dir / "
                             "data.cache_dir when the dataset has moved (with --rescore, model.time_rolls and "
                             "model.mel_shifts too); the run's config.yaml records them")
    parser.add_argument("--no-deploy", action="store_true", help="only the per-fold comparison")
    parser.add_argument("--publish", action="store_true",
                        help="replace the model already published in export.publish_dir (tflite/)")
    parser.add_argument("--rescore", action="store_true",
                        help="score every fold's saved model again with new scoring options (--set "
                             "model.time_rolls=N, model.mel_shifts=K), rewriting the run's scores; no retraining, "
                             "no deployment model")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    started, run_dir = time.time(), Path(args.run)
    if args.rescore:
        rescore(run_dir, args.set)
    else:
        run_edge_stages(run_dir, args.set, deploy_model=False if args.no_deploy else None,
                        replace_published=args.publish)
    write_run_report(run_dir, time.time() - started)
    print(f"report: {run_dir / 'report.md'}")
    return 0

"""``esc-tf evaluate``: score an exported model on any dataset in the ESC-50 layout."""
from __future__ import annotations

import argparse

from esc_tf.artifacts import write_json_atomic
from esc_tf.cli.options import parse_folds
from esc_tf.stages.evaluate import evaluate_on_dataset, format_metrics


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    parser = commands.add_parser(
        "evaluate", help="score an exported model on a dataset",
        description="Run the training front end (settings from the model_meta.json beside the model) and print "
                    "the accuracy, the confusion matrix and per-class F1. Warns when clips it scores were used to "
                    "train or calibrate the model.")
    parser.add_argument("--model", required=True, help=".tflite, .keras or .h5 (model_meta.json beside it)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--folds", help="e.g. 1,3 (default: every fold)")
    parser.add_argument("--runtime", choices=["tflm", "litert"], default="tflm",
                        help=".tflite runtime: tflm (as on the device, default) or litert")
    parser.add_argument("--json", help="also write the metrics here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    metrics = evaluate_on_dataset(args.model, args.data_dir, parse_folds(args.folds), args.runtime)
    print(format_metrics(metrics, list(metrics["per_class"])))
    if metrics["skipped_unknown_class"]:
        print(f"note: {metrics['skipped_unknown_class']} clips of classes the model does not know were skipped")
    if metrics["clips_seen_in_training"]:
        print(f"WARNING: {metrics['clips_seen_in_training']} of these clips were used to train or calibrate "
              "this model; this accuracy is not a held-out number")
    if args.json:
        write_json_atomic(args.json, metrics)
    return 0

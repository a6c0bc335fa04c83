"""``esc-tf train``: cross-validation on the official folds, the edge stages, the deployment model, a report."""
from __future__ import annotations

import argparse
import time
from typing import Any

from esc_tf.cli.dataset import ensure_dataset
from esc_tf.cli.options import add_data_arguments, config_from_args
from esc_tf.config import describe_options
from esc_tf.models.networks import PRESETS
from esc_tf.reporting.run_report import write_run_report
from esc_tf.stages.deploy import run_edge_stages
from esc_tf.stages.train import run_cross_validation

DESCRIPTION = ("Cross-validated training on ESC-50 (or any folder in its layout), then the edge stages: per fold, "
               "prune + int8 + TFLM scored on the fold's test clips; finally the deployment model trained on "
               "every clip and exported for TFLM (export.* options). Finished folds are skipped when the same "
               "command runs again.")


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    parser = commands.add_parser("train", help="cross-validate, deploy and report a recipe", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Every config option (set with --set section.option=value or a --config "
                                        "file):\n" + describe_options())
    add_data_arguments(parser)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model preset (default: dscnn)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="Adam learning rate")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-augment", action="store_true", help="switch every augmentation off")
    parser.add_argument("--runs-root", default="runs", help="where run folders are made (default: runs)")
    parser.add_argument("--run-dir", help="use this run folder instead of the derived one")
    parser.add_argument("--publish", action="store_true",
                        help="replace the model already published in export.publish_dir (tflite/)")
    parser.add_argument("--restart", action="store_true",
                        help="delete the run folder's finished folds and train it anew (once the data is validated)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    started = time.time()
    config = ensure_dataset(config_from_args(args), explicit=bool(args.data_dir))
    run_dir = run_cross_validation(config, args.runs_root, args.run_dir, restart=args.restart)
    if config.export.edge_eval or config.export.deploy:
        run_edge_stages(run_dir, replace_published=args.publish)
    summary = write_run_report(run_dir, time.time() - started)
    print(summary_table(summary))
    print(f"report: {run_dir / 'report.md'}")
    return 0


def summary_table(summary: dict[str, Any]) -> str:
    """Test accuracy per fold and their mean, float and (when the edge stages ran) int8 in TFLM."""
    tflm = summary.get("edge", {}).get("variants", {}).get("int8_tflm")
    tflm_of = dict(zip(summary.get("edge", {}).get("folds", []), tflm["per_fold"])) if tflm else {}
    lines = ["fold      float    int8 TFLM"]
    for fold in summary["folds"]:
        int8 = tflm_of.get(fold["name"])
        lines.append(f"{fold['name']:8s}  {fold['accuracy']:.4f}   " + ("-" if int8 is None else f"{int8:.4f}"))
    mean_int8 = f"{tflm['mean']:.4f}" if tflm else "-"
    lines.append(f"{'mean':8s}  {summary['mean_accuracy']:.4f}   {mean_int8}")
    deploy = summary.get("deploy")
    if deploy:
        lines.append(f"deployment model: {deploy.get('int8_tflite_bytes')} B int8, "
                     f"{deploy.get('arena_size_bytes')} B TFLM arena")
    return "\n".join(lines)

"""``esc-tf report``: the docs' results tables from reports/, or a results table of run folders."""
from __future__ import annotations

import argparse
from pathlib import Path

from esc_tf.artifacts import write_text_atomic
from esc_tf.reporting.model_card import CardInputs, write_model_card
from esc_tf.reporting.tables import results_table, write_docs_tables


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    parser = commands.add_parser("report", help="results tables from finished runs and reports/",
                                 description="'esc-tf report tables' regenerates the generated tables in docs/ "
                                             "from reports/; 'esc-tf report runs RUN...' prints a results table "
                                             "of run folders; 'esc-tf report model-card' writes an export's "
                                             "MODEL_CARD.md.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="{tables,runs,model-card}")
    tables = actions.add_parser("tables", help="regenerate docs/ tables from reports/")
    tables.add_argument("--reports", type=Path, default=Path("reports"), help="default: reports")
    tables.add_argument("--docs", type=Path, default=Path("docs"), help="default: docs")
    tables.set_defaults(handler=run_tables)
    runs = actions.add_parser("runs", help="results table of finished run folders")
    runs.add_argument("runs", nargs="+", type=Path, help="run folders (or report folders) with report.json")
    runs.add_argument("--out", help="write the table here (default: print)")
    runs.set_defaults(handler=run_runs)
    card = actions.add_parser("model-card", help="write an export's MODEL_CARD.md from its files and reports")
    card.add_argument("--export", type=Path, default=Path("tflite"), help="export folder (default: tflite)")
    card.add_argument("--cv", type=Path, action="append", required=True,
                      help="report folder of the recipe's cross-validation (report.json); repeatable")
    card.add_argument("--heldout", type=Path, action="append", default=[],
                      help="esc-tf evaluate --json output for this model on held-out clips; repeatable")
    card.add_argument("--device", type=Path, help="device.json of benchmarks/device_report.py for this model")
    card.add_argument("--bit-depth", type=Path,
                      help="JSON of benchmarks/bit_depth_gap.py with runs of this model's recipe")
    card.add_argument("--teacher", type=Path,
                      help="teacher.json of the esc-tf teacher table the model learned from (distilled models)")
    card.add_argument("--out", type=Path, help="default: EXPORT/MODEL_CARD.md")
    card.set_defaults(handler=run_model_card)


def run_tables(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    for path in write_docs_tables(args.reports, args.docs):
        print(f"wrote {path}")
    return 0


def run_runs(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    missing = [str(d) for d in args.runs if not (d / "report.json").is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)}: no report.json; finish the run with esc-tf train or "
                                "esc-tf deploy first")
    table = results_table(args.runs)
    if args.out:
        write_text_atomic(args.out, table)
    else:
        print(table, end="")
    return 0


def run_model_card(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    inputs = CardInputs(args.export, tuple(args.cv), tuple(args.heldout), args.device, args.bit_depth, args.teacher)
    print(f"wrote {write_model_card(inputs, args.out)}")
    return 0

"""``esc-tf report``: the docs' results tables from reports/, or an accuracy table of run folders."""
from __future__ import annotations

import argparse
from pathlib import Path

from esc_tf.artifacts import write_text_atomic
from esc_tf.reporting.run_report import accuracy_table, find_report


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="results tables from finished runs and reports/",
                                 description="'esc-tf report tables' regenerates the generated tables in docs/ "
                                             "from reports/; 'esc-tf report runs RUN...' prints an accuracy "
                                             "table of run folders.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="{tables,runs}")
    tables = actions.add_parser("tables", help="regenerate docs/ tables from reports/")
    tables.add_argument("--reports", type=Path, default=Path("reports"), help="default: reports")
    tables.add_argument("--docs", type=Path, default=Path("docs"), help="default: docs")
    tables.set_defaults(handler=run_tables)
    runs = actions.add_parser("runs", help="accuracy table of finished run folders")
    runs.add_argument("runs", nargs="+", help="run folders with report.json")
    runs.add_argument("--reports", type=Path, help="for a run folder that is missing, use the saved copy of its "
                      "report (REPORTS/*/report.json naming that run; the name may hold shell wildcards)")
    runs.add_argument("--out", help="write the table here (default: print)")
    runs.set_defaults(handler=run_runs)


def run_tables(args: argparse.Namespace) -> int:
    from esc_tf.reporting.tables import write_docs_tables
    for path in write_docs_tables(args.reports, args.docs):
        print(f"wrote {path}")
    return 0


def run_runs(args: argparse.Namespace) -> int:
    found = [d for d in (find_report(Path(r), args.reports) for r in args.runs) if d is not None]
    table = accuracy_table(found)
    if args.out:
        write_text_atomic(args.out, table)
    else:
        print(table, end="")
    return 0

"""``esc-tf explore``: a static HTML report of a dataset that works offline."""
from __future__ import annotations

import argparse

from esc_tf.config import Config, load_config, with_value
from esc_tf.reporting.explore import write_report


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    parser = commands.add_parser(
        "explore", help="write a static HTML report of a dataset",
        description="Class and fold balance, durations, clip levels (silent, near-silent, clipped) and clips as "
                    "the model sees them, as one static HTML page that works offline.")
    parser.add_argument("--data-dir", help="dataset folder (default: $ESC_TF_DATA_DIR, else ./data/ESC-50)")
    parser.add_argument("--out", required=True, help="report folder to write (index.html inside)")
    parser.add_argument("--clips-per-class", type=int, default=3)
    parser.add_argument("--subset", choices=["all", "esc10", "not-esc10"], default="all")
    parser.add_argument("--config", help="config.yaml of a run: its front end settings are plotted")
    parser.add_argument("--copy-audio", action="store_true",
                        help="copy the selected clips into OUT/audio/ instead of linking them (CC BY-NC: "
                             "do not commit them)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    if args.clips_per_class < 1:
        raise ValueError("--clips-per-class must be at least 1")
    config = load_config(args.config) if args.config else Config()
    if args.data_dir:
        config = with_value(config, "data.data_dir", args.data_dir)
    index = write_report(config.resolved_data_dir(), args.out, args.clips_per_class, config, args.subset,
                         args.copy_audio, args.force)
    print(f"wrote {index}")
    return 0

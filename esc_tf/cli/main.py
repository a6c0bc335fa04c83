"""The ``esc-tf`` command: one parser, one subcommand per stage, one way to fail.

Every subcommand module registers its arguments and a ``run(args) -> int``; errors a user can fix
(bad config, dataset, model, download) end as one ``error:`` line and exit code 1, without a traceback
unless ``--debug`` is given.
"""
from __future__ import annotations

import argparse
import sys

from esc_tf import __version__
from esc_tf.native_logs import silence_native_logs

silence_native_logs()

from esc_tf.artifacts import ModelError  # noqa: E402  (after the native logs are silenced)
from esc_tf.cli import baselines, dataset, deploy, evaluate, explore, frontend, predict, report, teacher, train, tune  # noqa: E402
from esc_tf.config import ConfigError  # noqa: E402
from esc_tf.data.dataset import DatasetError  # noqa: E402
from esc_tf.data.download import DownloadError  # noqa: E402

COMMANDS = (dataset, train, deploy, evaluate, predict, explore, tune, baselines, teacher, report, frontend)
USER_ERRORS = (ConfigError, DatasetError, ModelError, DownloadError, ValueError, OSError)


def build_parser() -> argparse.ArgumentParser:
    """The ``esc-tf`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="esc-tf", description="ESC-50 environmental sound classification, from audio files to a "
                                   "microcontroller: train, quantise, check in TFLM, export.")
    parser.add_argument("--version", action="version", version=f"esc-tf {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume (finished folds and stages are kept)",
              file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1


def console_script() -> None:
    """Entry point of the ``esc-tf`` console script."""
    sys.exit(main())

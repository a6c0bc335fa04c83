"""``esc-tf frontend``: write the C front end's tables (frontend_tables.h) for a config by hand."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from esc_tf.artifacts import Normalization
from esc_tf.audio.features import num_coefficients
from esc_tf.codegen.frontend_tables import frontend_fingerprint, write_frontend_header
from esc_tf.config import Config, ConfigError, load_config


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    parser = commands.add_parser("frontend", help="write frontend_tables.h for the C front end",
                                 description="Write frontend_tables.h for a config (esc-tf train and deploy "
                                             "write it with every exported model; this is for by-hand use).")
    parser.add_argument("out", type=Path)
    parser.add_argument("--config", help="YAML/JSON config (default: the built-in defaults)")
    parser.add_argument("--normalization", help='JSON {"mean": [...], "std": [...]} (default: identity)')
    parser.set_defaults(handler=run)


def read_normalization(path: Path) -> Normalization:
    """The normalisation in ``path`` (a fold's ``normalization.json``), or a ConfigError naming the file."""
    try:
        return Normalization.from_dict(json.loads(path.read_text()))
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"no {exc} entry" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(f"--normalization {path}: not a normalisation file ({problem}); pass a fold's "
                          "normalization.json, or leave the option out for none") from exc


def run(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    config = load_config(args.config) if args.config else Config()
    if args.normalization:
        norm = read_normalization(Path(args.normalization))
    else:
        norm = Normalization.identity(num_coefficients(config.features))
    write_frontend_header(config, norm, args.out)
    print(f"{args.out}: fingerprint {frontend_fingerprint(config, norm)}")
    return 0

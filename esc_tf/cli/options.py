"""Arguments shared by the subcommands, and the config they build."""
from __future__ import annotations

import argparse

from esc_tf.config import Config, ConfigError, apply_overrides, load_config, with_values


def add_set_argument(parser: argparse.ArgumentParser, help_text: str = "override any config option; repeatable"
                     ) -> None:
    """Add the repeatable ``--set SECTION.OPTION=VALUE`` argument to ``parser``."""
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.OPTION=VALUE", help=help_text)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every command that reads a dataset under a config."""
    parser.add_argument("--data-dir", help="dataset folder with meta/esc50.csv and audio/ "
                        "(default: $ESC_TF_DATA_DIR, else ./data/ESC-50)")
    parser.add_argument("--config", help="YAML or JSON config file, e.g. configs/most_accurate.yaml")
    parser.add_argument("--split", choices=["folds", "stratified"],
                        help="folds: cross-validation on the official folds (default); "
                             "stratified: one 80/20 stratified split")
    parser.add_argument("--folds", help="test folds to run, e.g. 1,3 (default: all present)")
    parser.add_argument("--subset", choices=["all", "esc10", "not-esc10"],
                        help="all classes, the ESC-10 ones, or the other 40")
    add_set_argument(parser)


def config_from_args(args: argparse.Namespace) -> Config:
    """Defaults, then the config file, then the flags, then --set overrides."""
    config = load_config(args.config) if args.config else Config()
    flags = {"data.data_dir": args.data_dir, "data.split": args.split,
             "data.folds": parse_folds(getattr(args, "folds", None)), "data.subset": args.subset,
             "model.preset": getattr(args, "preset", None), "train.epochs": getattr(args, "epochs", None),
             "train.batch_size": getattr(args, "batch_size", None),
             "train.learning_rate": getattr(args, "lr", None), "train.seed": getattr(args, "seed", None),
             "augment.enabled": False if getattr(args, "no_augment", False) else None}
    config = with_values(config, {key: value for key, value in flags.items() if value is not None})
    return apply_overrides(config, args.set)


def parse_ints(text: str, flag: str, example: str) -> list[int]:
    """``"1,3"`` -> ``[1, 3]``, refused naming ``flag`` when it is not comma-separated integers."""
    try:
        return [int(f) for f in text.split(",")]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated integers such as {example}") from None


def parse_folds(text: str | None) -> list[int] | None:
    """``"1,3"`` -> ``[1, 3]``; None or empty -> None."""
    return parse_ints(text, "--folds", "1,3") if text else None

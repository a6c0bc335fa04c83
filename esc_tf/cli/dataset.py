"""``esc-tf download`` and ``esc-tf check``, and the download a first ``esc-tf train`` does for itself."""
from __future__ import annotations

import argparse
import os

from esc_tf.cli.options import add_set_argument
from esc_tf.config import DATA_DIR_ENV, DEFAULT_DATA_DIR, Config, apply_overrides, with_value
from esc_tf.data.dataset import load_waveforms, read_metadata
from esc_tf.data.download import OFFICIAL_URL, DownloadError, download_esc50, is_dataset_dir


def ensure_dataset(config: Config, explicit: bool) -> Config:
    """``config`` unchanged when its dataset folder holds a dataset; else, when the folder is the default one
    (not named by --data-dir or the config), the official release downloaded there first. Offline, a
    :class:`DownloadError` says so and names the option that points at a local copy."""
    data_dir = config.resolved_data_dir()
    if explicit or config.data.data_dir or os.environ.get(DATA_DIR_ENV) or is_dataset_dir(data_dir):
        return config
    print(f"no dataset in {data_dir}: downloading the official ESC-50 release there", flush=True)
    try:
        download_esc50(data_dir)
    except DownloadError as exc:
        raise DownloadError(f"{exc}. Offline? Point at a local copy of ESC-50 with --data-dir DIR "
                            f"(or ${DATA_DIR_ENV})") from exc
    return with_value(config, "data.data_dir", str(data_dir))


def register(commands: argparse._SubParsersAction) -> None:
    """Add this subcommand\'s parser and handler to ``commands``."""
    download = commands.add_parser("download", help="fetch, verify and unpack the official ESC-50 release",
                                   description="Download the ESC-50 release (progress bar, checksum, resumes an "
                                               "interrupted download) and unpack it.")
    download.add_argument("--dest", default=os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR,
                          help=f"target folder (default: ${DATA_DIR_ENV} or {DEFAULT_DATA_DIR})")
    download.add_argument("--url", default=OFFICIAL_URL, help="archive URL (default: the official release)")
    download.add_argument("--sha256", default=None,
                          help="expected SHA-256 of the archive (default: none; the official archive is built "
                               "from the repository's master branch and has no fixed checksum)")
    download.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    download.set_defaults(handler=run_download)

    check = commands.add_parser("check", help="validate a dataset folder and print a summary",
                                description="Validate an ESC-50-layout folder as training does (CSV, labels, "
                                            "every audio file decoded) and summarise it.")
    check.add_argument("--data-dir", default=None, help="dataset folder (default: $ESC_TF_DATA_DIR, "
                                                        "else ./data/ESC-50)")
    add_set_argument(check)
    check.set_defaults(handler=run_check)


def run_download(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    dest = download_esc50(args.dest, url=args.url, sha256=args.sha256, progress=not args.no_progress)
    print(f"ESC-50 dataset is in {dest}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Carry out the subcommand; returns the exit code."""
    config = apply_overrides(Config(), args.set)
    if args.data_dir:
        config = with_value(config, "data.data_dir", args.data_dir)
    meta = read_metadata(config.resolved_data_dir(), keep_unreadable=True)
    # decoded as training decodes it (and cached for it): a clip train would refuse is refused here too
    load_waveforms(meta, config.audio, config.data.cache_dir)
    print(f"{len(meta)} clips, {meta['target'].nunique()} classes, folds "
          f"{dict(meta['fold'].value_counts().sort_index())}")
    print(f"sample rates: {dict(meta['sample_rate'].value_counts())}; channels: "
          f"{dict(meta['channels'].value_counts())}; every clip decodes to finite samples")
    return 0

"""Download and unpack the ESC-50 dataset.

The official release is a zip whose single top folder (``ESC-50-master/``) holds
``audio/*.wav`` and ``meta/esc50.csv``. :func:`download_esc50` streams it to a
temporary file next to the destination, checks it (optional SHA-256, zip integrity,
dataset layout, no member escaping the extraction directory), extracts it into a
temporary directory and finally renames the dataset root to the destination in one
step, so the destination is either a complete dataset or absent.

Command line: ``python -m esc_tf.download --dest data/ESC-50``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

OFFICIAL_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
DEFAULT_DATA_DIR = "data/ESC-50"
DATA_DIR_ENV = "ESC_TF_DATA_DIR"

META_CSV = "meta/esc50.csv"
AUDIO_DIR = "audio/"
_CHUNK_SIZE = 1 << 16
_USER_AGENT = "esc-tf-downloader/0.1"

__all__ = ["OFFICIAL_URL", "DownloadError", "download_esc50", "is_dataset_dir", "main"]


class DownloadError(RuntimeError):
    """The dataset could not be downloaded, verified or extracted."""


def is_dataset_dir(path: str | Path) -> bool:
    """Return True if ``path`` looks like an extracted ESC-50 dataset."""
    return (Path(path) / META_CSV).is_file()


# --------------------------------------------------------------------------- download


def _fetch(url: str, out_path: Path, timeout: float, progress: bool) -> str:
    """Stream ``url`` into ``out_path``; return the SHA-256 hex digest of the bytes."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length_header = response.headers.get("Content-Length")
            total = int(length_header) if length_header and length_header.isdigit() else None
            with open(out_path, "wb") as out, tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="ESC-50",
                disable=not progress,
            ) as bar:
                while True:
                    chunk = response.read(_CHUNK_SIZE)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP error {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: network error: {exc.reason}") from exc
    except (OSError, ValueError) as exc:  # timeouts, connection resets, bad URLs, disk full
        raise DownloadError(f"{url}: download failed: {exc}") from exc
    if total is not None and received != total:
        raise DownloadError(
            f"{url}: download truncated: received {received} of {total} bytes"
        )
    return digest.hexdigest()


def _check_sha256(url: str, actual: str, expected: str | None) -> None:
    """Raise if ``expected`` is given and differs from ``actual``."""
    if expected is None:
        return
    if actual.lower() != expected.strip().lower():
        raise DownloadError(
            f"{url}: checksum mismatch (sha256): expected {expected.strip().lower()}, "
            f"got {actual}"
        )


# --------------------------------------------------------------------------- archive checks


def _unsafe_member(name: str) -> bool:
    """True if a zip member name is absolute or climbs out with ``..``."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return True
    return ".." in PurePosixPath(normalized).parts


def _open_zip(archive: Path, url: str) -> zipfile.ZipFile:
    """Open ``archive`` and test every member's CRC."""
    if not zipfile.is_zipfile(archive):
        raise DownloadError(f"{url}: downloaded file is not a zip archive")
    try:
        zf = zipfile.ZipFile(archive)
        bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
        raise DownloadError(f"{url}: corrupt zip archive: {exc}") from exc
    if bad is not None:
        zf.close()
        raise DownloadError(f"{url}: corrupt zip archive: bad CRC for member {bad!r}")
    return zf


def _dataset_prefix(names: list[str], url: str) -> str:
    """Find the single dataset root inside the zip ("" or "<top folder>/")."""
    unsafe = [n for n in names if _unsafe_member(n)]
    if unsafe:
        raise DownloadError(
            f"{url}: unsafe path in zip archive (absolute or '..'): {unsafe[0]!r}"
        )
    normalized = [n.replace("\\", "/") for n in names]
    prefixes = set()
    for name in normalized:
        if name == META_CSV:
            prefixes.add("")
        elif name.endswith("/" + META_CSV):
            prefix = name[: -len(META_CSV)]
            if prefix.count("/") == 1:  # exactly one top folder
                prefixes.add(prefix)
    if not prefixes:
        raise DownloadError(f"{url}: zip archive has no {META_CSV} (not an ESC-50 archive)")
    if len(prefixes) > 1:
        raise DownloadError(
            f"{url}: zip archive has several dataset roots: {sorted(prefixes)}"
        )
    prefix = prefixes.pop()
    if not any(n.startswith(prefix + AUDIO_DIR) for n in normalized):
        raise DownloadError(
            f"{url}: zip archive has no {prefix + AUDIO_DIR} folder (not an ESC-50 archive)"
        )
    return prefix


# --------------------------------------------------------------------------- destination


def _check_dest(dest: Path) -> bool:
    """Return True if ``dest`` already holds the dataset; raise if it is in the way."""
    if is_dataset_dir(dest):
        return True
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir():
            raise DownloadError(f"{dest}: exists and is not a directory")
        if any(dest.iterdir()):
            raise DownloadError(
                f"{dest}: directory exists, is not empty and is not an ESC-50 dataset "
                f"(no {META_CSV}); remove it or choose another --dest"
            )
    return False


def _install(root: Path, dest: Path) -> None:
    """Move the extracted dataset root to ``dest`` with a single rename."""
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()  # an empty placeholder directory is replaced
    try:
        os.replace(root, dest)
    except OSError as exc:
        raise DownloadError(f"{dest}: cannot move extracted dataset into place: {exc}") from exc


def _remove(path: Path | None) -> None:
    """Best-effort removal of a temporary file or directory."""
    if path is None:
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------- public API


def download_esc50(
    dest: str | Path,
    url: str = OFFICIAL_URL,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and extract ESC-50 so that ``dest/meta/esc50.csv`` exists.

    Returns immediately if ``dest`` already holds the dataset. Raises
    :class:`DownloadError` on any failure, leaving neither ``dest`` nor temporary
    files behind.
    """
    dest = Path(dest)
    if _check_dest(dest):
        print(f"ESC-50 already present in {dest}; skipping download")
        return dest

    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{parent}: cannot create directory: {exc}") from exc

    archive: Path | None = None
    workdir: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".zip.part", dir=parent)
        os.close(fd)
        archive = Path(tmp_name)
        if progress:
            print(f"Downloading {url}")
        actual = _fetch(url, archive, timeout, progress)
        _check_sha256(url, actual, sha256)

        with _open_zip(archive, url) as zf:
            prefix = _dataset_prefix(zf.namelist(), url)
            workdir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extract", dir=parent))
            # Extract one level down so that renaming the root never moves ``workdir``
            # itself (which the cleanup below deletes), even when prefix == "".
            content = workdir / "content"
            try:
                zf.extractall(content)
            except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
                raise DownloadError(f"{url}: extraction failed: {exc}") from exc
        _remove(archive)
        archive = None

        root = content / prefix if prefix else content
        if not is_dataset_dir(root):  # defensive: the zip listing said it would be there
            raise DownloadError(f"{url}: extracted archive has no {META_CSV}")
        if _check_dest(dest):  # another process finished first
            print(f"ESC-50 already present in {dest}; skipping download")
            return dest
        _install(root, dest)
    finally:
        _remove(archive)
        _remove(workdir)
    print(f"ESC-50 extracted to {dest}")
    return dest


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m esc_tf.download",
        description="Download and extract the ESC-50 dataset.",
    )
    parser.add_argument(
        "--dest",
        default=os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR,
        help=f"target directory (default: ${DATA_DIR_ENV} or {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--url", default=OFFICIAL_URL, help="archive URL (default: official release)")
    parser.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns a process exit code."""
    args = _build_parser().parse_args(argv)
    try:
        dest = download_esc50(
            args.dest, url=args.url, sha256=args.sha256, progress=not args.no_progress
        )
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ESC-50 dataset is in {dest.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

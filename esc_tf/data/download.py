"""Download and unpack the ESC-50 dataset with pooch.

The official release is a zip whose single top folder (``ESC-50-master/``) holds
``audio/*.wav`` and ``meta/esc50.csv``. :func:`download_esc50` has pooch fetch it next to the
destination through :class:`ResumingDownloader` (a ``.part`` file that a later call continues
with an HTTP Range request), verify it (SHA-256 when one is known), and hand it to
:class:`SafeUnzip`, which refuses anything but one ESC-50 dataset before pooch's ``Unzip``
extracts it into a temporary folder; the dataset root is then renamed to the destination in one
step, so the destination is either a complete dataset or absent.

Command line: ``esc-tf download --dest data/ESC-50``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import pooch
import requests
from tqdm import tqdm

# The official archive is built by GitHub from the repository's master branch, so it has no
# published, fixed checksum: without --sha256 it is checked as a zip holding one ESC-50 dataset.
OFFICIAL_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"

META_CSV = "meta/esc50.csv"
AUDIO_DIR = "audio/"
_CHUNK_SIZE = 1 << 16
_USER_AGENT = "esc-tf-downloader/0.1"

__all__ = ["OFFICIAL_URL", "DownloadError", "download_esc50", "is_dataset_dir"]


class DownloadError(RuntimeError):
    """The dataset could not be downloaded, verified or extracted."""


def is_dataset_dir(path: str | Path) -> bool:
    """Return True if ``path`` looks like an extracted ESC-50 dataset."""
    return (Path(path) / META_CSV).is_file()


# --------------------------------------------------------------------------- download


class ResumingDownloader:
    """A pooch downloader that streams into a ``.part`` file and continues it on the next call.

    pooch's own HTTP downloader starts over every time; ESC-50 is 600 MB, so a transfer cut
    short keeps its ``.part`` and the next call asks only for the missing bytes (HTTP Range). A
    server that ignores Range gets the whole file again. Any other failure removes the ``.part``.
    """

    def __init__(self, part: Path, progress: bool = True, timeout: float = 60.0) -> None:
        self.part = part
        self.progress = progress
        self.timeout = timeout

    def __call__(self, url: str, output_file: str, pooch_: Any) -> None:
        """Download ``url`` completely, then move it to ``output_file`` (which pooch verifies)."""
        try:
            self._fetch(url)
        except requests.HTTPError as exc:
            self._drop()
            raise DownloadError(f"{url}: HTTP error {exc.response.status_code} {exc.response.reason}; "
                                "check the URL") from exc
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            self._drop()
            raise DownloadError(f"{url}: not a valid http(s) URL ({exc}); check --url") from exc
        except (requests.RequestException, OSError) as exc:
            kept = self.part.stat().st_size if self.part.is_file() else 0
            if not kept:
                self._drop()
                raise DownloadError(f"{url}: network error ({exc}); check the connection and run the "
                                    "same command again") from exc
            raise DownloadError(f"{url}: download interrupted after {kept} bytes ({exc}); run the same "
                                f"command again to resume it from {self.part}") from exc
        os.replace(self.part, output_file)

    def _fetch(self, url: str) -> None:
        """Append the missing bytes of ``url`` to the ``.part`` file (all of them unless Range is honoured)."""
        offset = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"User-Agent": _USER_AGENT, **({"Range": f"bytes={offset}-"} if offset else {})}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if response.status_code == 416 and offset:  # nothing left after offset
                if _range_total(response) == offset:
                    return  # the .part already holds the whole file (stopped before its rename)
                self._drop()
                return self._fetch(url)
            response.raise_for_status()
            resumed = response.status_code == 206 and _range_start(response) == offset
            if not resumed:
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            with open(self.part, "ab" if resumed else "wb") as out, tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc="ESC-50",
                    disable=not self.progress) as bar:
                for chunk in response.iter_content(_CHUNK_SIZE):
                    out.write(chunk)
                    bar.update(len(chunk))

    def _drop(self) -> None:
        self.part.unlink(missing_ok=True)


def _range_start(response: requests.Response) -> int | None:
    """The first byte a 206 response holds, from ``Content-Range: bytes START-END/TOTAL``."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _range_total(response: requests.Response) -> int | None:
    """The file size a 416 response states, from ``Content-Range: bytes */TOTAL``."""
    match = re.match(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _known_hash(sha256: str | None) -> str | None:
    """``sha256:<hex>`` for pooch, or None when no checksum is pinned."""
    if sha256 is None:
        return None
    digest = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise DownloadError(f"--sha256 {sha256!r}: expected 64 hexadecimal digits")
    return f"sha256:{digest}"


# --------------------------------------------------------------------------- archive checks


def _unsafe_member(name: str) -> bool:
    """True if a zip member name is absolute or climbs out with ``..``."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return True
    return ".." in PurePosixPath(normalized).parts


def _dataset_prefix(names: list[str], url: str) -> str:
    """Find the single dataset root inside the zip ("" or "<top folder>/")."""
    unsafe = [n for n in names if _unsafe_member(n)]
    if unsafe:
        raise DownloadError(f"{url}: unsafe path in zip archive (absolute or '..'): {unsafe[0]!r}; "
                            "refusing to extract it")
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
        raise DownloadError(f"{url}: zip archive has no {META_CSV} (not an ESC-50 archive; check --url)")
    if len(prefixes) > 1:
        raise DownloadError(f"{url}: zip archive has several dataset roots: {sorted(prefixes)}")
    prefix = prefixes.pop()
    if not any(n.startswith(prefix + AUDIO_DIR) for n in normalized):
        raise DownloadError(f"{url}: zip archive has no {prefix + AUDIO_DIR} folder (not an ESC-50 archive; "
                            "check --url)")
    return prefix


class SafeUnzip:
    """A pooch processor: check the archive holds one ESC-50 dataset and nothing that escapes the
    extraction folder (pooch's ``Unzip`` checks neither), then unzip it there.

    Returns the extracted dataset root.
    """

    def __init__(self, url: str, extract_dir: Path) -> None:
        self.url = url
        self.extract_dir = extract_dir

    def __call__(self, fname: str, action: str, pooch_: Any) -> Path:
        if not zipfile.is_zipfile(fname):
            raise DownloadError(f"{self.url}: downloaded file is not a zip archive; check the URL")
        try:
            with zipfile.ZipFile(fname) as archive:
                prefix = _dataset_prefix(archive.namelist(), self.url)
                archive.extractall(self.extract_dir)
        except (OSError, zipfile.BadZipFile, RuntimeError) as exc:  # bad CRC, disk full
            if isinstance(exc, DownloadError):
                raise
            raise DownloadError(f"{self.url}: extraction failed ({exc}); download it again") from exc
        root = self.extract_dir / prefix
        if not is_dataset_dir(root):
            raise DownloadError(f"{self.url}: extracted archive has no {META_CSV}")
        return root


# --------------------------------------------------------------------------- destination


def _check_dest(dest: Path) -> bool:
    """Return True if ``dest`` already holds the dataset; raise if it is in the way."""
    if is_dataset_dir(dest):
        return True
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir():
            raise DownloadError(f"{dest}: exists and is not a directory; remove it or choose another --dest")
        if any(dest.iterdir()):
            raise DownloadError(f"{dest}: directory exists, is not empty and is not an ESC-50 dataset "
                                f"(no {META_CSV}); remove it or choose another --dest")
    return False


def _install(root: Path, dest: Path) -> None:
    """Move the extracted dataset root to ``dest`` with a single rename."""
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()  # an empty placeholder directory is replaced
    try:
        os.replace(root, dest)
    except OSError as exc:
        raise DownloadError(f"{dest}: cannot move the extracted dataset into place ({exc})") from exc


@contextlib.contextmanager
def _pooch_warnings_only() -> Iterator[None]:
    """Hide pooch's info lines, which speak of its Python API; this module prints its own."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- public API


def download_esc50(dest: str | Path, url: str = OFFICIAL_URL, sha256: str | None = None, progress: bool = True,
                   timeout: float = 60.0) -> Path:
    """Download, verify and extract ESC-50 so that ``dest/meta/esc50.csv`` exists.

    Returns immediately if ``dest`` already holds the dataset. Raises :class:`DownloadError` on
    any failure, leaving neither ``dest`` nor temporary files behind, except the ``.part`` file
    of a transfer cut short, which the next call resumes.
    """
    dest = Path(dest)
    if _check_dest(dest):
        print(f"ESC-50 already present in {dest}; skipping download")
        return dest
    known_hash = _known_hash(sha256)
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{parent}: cannot create directory ({exc})") from exc

    archive = parent / f".{dest.name}.zip"
    workdir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extract", dir=parent))
    if progress:
        print(f"Downloading {url}")
    try:
        # Extract one level down so that renaming the root never moves ``workdir`` itself
        # (which the cleanup below deletes), even when the dataset is at the zip's root.
        try:
            with _pooch_warnings_only():
                root = pooch.retrieve(url, known_hash, fname=archive.name, path=parent,
                                      downloader=ResumingDownloader(parent / f"{archive.name}.part", progress,
                                                                    timeout),
                                      processor=SafeUnzip(url, workdir / "content"))
        except ValueError as exc:  # pooch's checksum mismatch (the URL and --sha256 were checked before)
            raise DownloadError(f"{url}: checksum mismatch: {exc} Run the same command again, or check "
                                "--sha256.") from exc
        if _check_dest(dest):  # another process finished first
            print(f"ESC-50 already present in {dest}; skipping download")
            return dest
        _install(root, dest)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"ESC-50 extracted to {dest}")
    return dest

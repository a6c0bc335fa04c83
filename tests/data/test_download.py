"""Tests for esc_tf.data.download against a real local HTTP server (no internet)."""
from __future__ import annotations

import functools
import hashlib
import http.server
import random
import re
import threading
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from esc_tf.cli.main import main as cli_main
from esc_tf.data import download
from esc_tf.data.download import DownloadError, download_esc50

CSV_TEXT = (
    "filename,fold,target,category,esc10,src_file,take\n"
    "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
    "1-100038-A-14.wav,1,14,chirping_birds,False,100038,A\n"
)
AUDIO = {
    "1-100032-A-0.wav": b"RIFF-fake-dog",
    "1-100038-A-14.wav": b"RIFF-fake-bird",
}
DEAD_URL = "http://127.0.0.1:9/x.zip"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _RangeHandler(_QuietHandler):
    """Serves ``Range: bytes=N-`` requests (unless told not to) and can cut a response short."""

    def do_GET(self) -> None:  # noqa: N802
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        state = self.server.state  # type: ignore[attr-defined]
        state["ranges"].append(self.headers.get("Range"))
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match and state["honour_range"] else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = state.pop("cut_after", None)
        self.wfile.write(data[start:] if cut is None else data[start:start + cut])
        self.close_connection = True


class Server:
    """A directory served over HTTP on 127.0.0.1; ``state`` steers Range support and cut-off responses."""

    def __init__(self, root: Path, base_url: str, state: dict) -> None:
        self.root = root
        self.base_url = base_url
        self.state = state

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure urllib talks to 127.0.0.1 directly even if a proxy is configured."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_RangeHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.state = {"ranges": [], "honour_range": True}  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield Server(root, f"http://{host}:{port}", httpd.state)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def make_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def esc50_members(top: str = "ESC-50-master/") -> dict[str, bytes | str]:
    members: dict[str, bytes | str] = {top + "meta/esc50.csv": CSV_TEXT}
    for name, data in AUDIO.items():
        members[top + "audio/" + name] = data
    return members


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ESC-50"


def part_file(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.zip.part"


def assert_clean_failure(dest: Path) -> None:
    """No destination and no temporary leftovers next to it."""
    assert not dest.exists()
    if dest.parent.exists():
        assert list(dest.parent.iterdir()) == []


def assert_dataset(dest: Path) -> None:
    assert (dest / "meta" / "esc50.csv").read_text() == CSV_TEXT
    for name, data in AUDIO.items():
        assert (dest / "audio" / name).read_bytes() == data


# --------------------------------------------------------------------------- success


def test_download_success_with_checksum(server: Server, dest: Path) -> None:
    archive = make_zip(server.root / "master.zip", esc50_members())
    result = download_esc50(dest, url=server.url("master.zip"), sha256=sha256_of(archive), progress=False)
    assert result == dest
    assert isinstance(result, Path)
    assert_dataset(dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ESC-50"]  # no temp files left


def test_download_success_without_checksum_and_progress(server: Server, dest: Path) -> None:
    make_zip(server.root / "master.zip", esc50_members())
    download_esc50(str(dest), url=server.url("master.zip"), progress=True)
    assert_dataset(dest)


def test_dataset_at_zip_root(server: Server, dest: Path) -> None:
    make_zip(server.root / "flat.zip", esc50_members(top=""))
    download_esc50(dest, url=server.url("flat.zip"), progress=False)
    assert_dataset(dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ESC-50"]


def test_empty_dest_dir_is_replaced(server: Server, dest: Path) -> None:
    make_zip(server.root / "master.zip", esc50_members())
    dest.mkdir(parents=True)
    download_esc50(dest, url=server.url("master.zip"), progress=False)
    assert_dataset(dest)


# --------------------------------------------------------------------------- failures


def test_wrong_sha256(server: Server, dest: Path) -> None:
    make_zip(server.root / "master.zip", esc50_members())
    with pytest.raises(DownloadError, match="checksum") as info:
        download_esc50(dest, url=server.url("master.zip"), sha256="0" * 64, progress=False)
    assert "0" * 64 in str(info.value)
    assert_clean_failure(dest)


def test_malformed_sha256_is_refused_before_downloading(server: Server, dest: Path) -> None:
    make_zip(server.root / "master.zip", esc50_members())
    with pytest.raises(DownloadError, match="64 hexadecimal"):
        download_esc50(dest, url=server.url("master.zip"), sha256="abc", progress=False)
    assert server.state["ranges"] == []
    assert_clean_failure(dest)


def test_checksum_mismatch_after_resuming_a_corrupt_part_starts_over_next_time(server: Server, dest: Path) -> None:
    archive = make_zip(server.root / "master.zip", esc50_members())
    dest.parent.mkdir(parents=True)
    part_file(dest).write_bytes(b"garbage that is not the archive's start")
    with pytest.raises(DownloadError, match="checksum mismatch") as info:
        download_esc50(dest, url=server.url("master.zip"), sha256=sha256_of(archive), progress=False)
    assert sha256_of(archive) in str(info.value) and server.url("master.zip") in str(info.value)
    assert_clean_failure(dest)  # the bad .part is gone with the rejected archive
    download_esc50(dest, url=server.url("master.zip"), sha256=sha256_of(archive), progress=False)
    assert_dataset(dest)
    assert server.state["ranges"][-1] is None  # a full download, not a resumed one


# --------------------------------------------------------------------------- resume


def test_an_interrupted_download_resumes_where_it_stopped(server: Server, dest: Path) -> None:
    members = esc50_members()
    members["ESC-50-master/audio/5-200000-A-1.wav"] = random.Random(0).randbytes(300_000)  # several chunks
    archive = make_zip(server.root / "master.zip", members)
    server.state["cut_after"] = archive.stat().st_size // 2
    url = server.url("master.zip")
    with pytest.raises(DownloadError, match="interrupted.*run the same command again"):
        download_esc50(dest, url=url, sha256=sha256_of(archive), progress=False)
    kept = part_file(dest).stat().st_size
    assert 0 < kept <= archive.stat().st_size // 2
    assert not dest.exists() and [p.name for p in dest.parent.iterdir()] == [part_file(dest).name]
    download_esc50(dest, url=url, sha256=sha256_of(archive), progress=False)
    assert server.state["ranges"] == [None, f"bytes={kept}-"]
    assert_dataset(dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ESC-50"]


def test_a_part_file_already_whole_is_not_downloaded_again(server: Server, dest: Path) -> None:
    """Stopped after the last byte but before the rename: the server answers 416, and the .part is used."""
    archive = make_zip(server.root / "master.zip", esc50_members())
    dest.parent.mkdir(parents=True)
    part_file(dest).write_bytes(archive.read_bytes())
    download_esc50(dest, url=server.url("master.zip"), sha256=sha256_of(archive), progress=False)
    assert server.state["ranges"] == [f"bytes={archive.stat().st_size}-"]
    assert_dataset(dest)


def test_a_server_ignoring_range_sends_the_whole_archive_again(server: Server, dest: Path) -> None:
    archive = make_zip(server.root / "master.zip", esc50_members())
    dest.parent.mkdir(parents=True)
    part_file(dest).write_bytes(archive.read_bytes()[:100])
    server.state["honour_range"] = False
    download_esc50(dest, url=server.url("master.zip"), sha256=sha256_of(archive), progress=False)
    assert server.state["ranges"] == ["bytes=100-"]
    assert_dataset(dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ESC-50"]


def test_http_404(server: Server, dest: Path) -> None:
    url = server.url("missing.zip")
    with pytest.raises(DownloadError, match="404") as info:
        download_esc50(dest, url=url, progress=False)
    assert url in str(info.value)
    assert_clean_failure(dest)


def test_network_error(dest: Path) -> None:
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        download_esc50(dest, url=DEAD_URL, progress=False, timeout=2)
    assert_clean_failure(dest)


@pytest.mark.parametrize("url", ["not-a-url", "htp://127.0.0.1/x.zip", "http://"])
def test_malformed_url(dest: Path, url: str) -> None:
    with pytest.raises(DownloadError, match="not a valid http") as info:
        download_esc50(dest, url=url, progress=False)
    assert str(info.value).startswith(url)
    assert_clean_failure(dest)


def test_not_a_zip(server: Server, dest: Path) -> None:
    (server.root / "master.zip").write_text("<html>not a zip</html>")
    with pytest.raises(DownloadError, match="not a zip"):
        download_esc50(dest, url=server.url("master.zip"), progress=False)
    assert_clean_failure(dest)


def test_zip_without_metadata(server: Server, dest: Path) -> None:
    members = esc50_members()
    del members["ESC-50-master/meta/esc50.csv"]
    make_zip(server.root / "master.zip", members)
    with pytest.raises(DownloadError, match="meta/esc50.csv"):
        download_esc50(dest, url=server.url("master.zip"), progress=False)
    assert_clean_failure(dest)


def test_zip_without_audio(server: Server, dest: Path) -> None:
    make_zip(server.root / "master.zip", {"ESC-50-master/meta/esc50.csv": CSV_TEXT})
    with pytest.raises(DownloadError, match="audio"):
        download_esc50(dest, url=server.url("master.zip"), progress=False)
    assert_clean_failure(dest)


def test_zip_with_two_dataset_roots(server: Server, dest: Path) -> None:
    members = {**esc50_members("a/"), **esc50_members("b/")}
    make_zip(server.root / "master.zip", members)
    with pytest.raises(DownloadError, match="several dataset roots"):
        download_esc50(dest, url=server.url("master.zip"), progress=False)
    assert_clean_failure(dest)


@pytest.mark.parametrize("evil", ["../evil.txt", "ESC-50-master/../../evil.txt", "/tmp/evil.txt"])
def test_zip_slip_rejected(server: Server, dest: Path, tmp_path: Path, evil: str) -> None:
    members = esc50_members()
    members[evil] = b"pwned"
    make_zip(server.root / "master.zip", members)
    with pytest.raises(DownloadError, match="unsafe path"):
        download_esc50(dest, url=server.url("master.zip"), progress=False)
    assert_clean_failure(dest)
    assert not list(tmp_path.rglob("evil.txt"))


def test_dest_not_empty_and_not_dataset(server: Server, dest: Path) -> None:
    make_zip(server.root / "master.zip", esc50_members())
    dest.mkdir(parents=True)
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(DownloadError, match="not empty") as info:
        download_esc50(dest, url=server.url("master.zip"), progress=False)
    assert str(dest) in str(info.value)
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]


def test_keyboard_interrupt_cleans_up(
    server: Server, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_zip(server.root / "master.zip", esc50_members())

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_dataset_prefix", interrupted)  # while the archive is checked
    with pytest.raises(KeyboardInterrupt):
        download_esc50(dest, url=server.url("master.zip"), progress=False)
    assert_clean_failure(dest)


# --------------------------------------------------------------------------- already present


def test_already_present_skips_download(
    dest: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (dest / "meta").mkdir(parents=True)
    (dest / "meta" / "esc50.csv").write_text(CSV_TEXT)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("no HTTP request expected")

    monkeypatch.setattr(download.requests, "get", no_network)
    assert download_esc50(dest, url=DEAD_URL, progress=False) == dest
    assert "already present" in capsys.readouterr().out


# --------------------------------------------------------------------------- CLI


def test_main_success(server: Server, dest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = make_zip(server.root / "master.zip", esc50_members())
    argv = ["--dest", str(dest), "--url", server.url("master.zip"), "--sha256", sha256_of(archive), "--no-progress"]
    assert cli_main(["download", *argv]) == 0
    assert_dataset(dest)
    assert str(dest.resolve()) in capsys.readouterr().out


def test_main_failure(server: Server, dest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["download", "--dest", str(dest), "--url", server.url("nope.zip"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "404" in err
    assert_clean_failure(dest)


def test_main_dest_from_env(
    server: Server, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_zip(server.root / "master.zip", esc50_members())
    monkeypatch.setenv("ESC_TF_DATA_DIR", str(dest))
    assert cli_main(["download", "--url", server.url("master.zip"), "--no-progress"]) == 0
    assert_dataset(dest)

"""esc-tf explore: a static HTML report that works offline, written atomically."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import matplotlib.image as mpimg
import numpy as np
import pytest

from esc_tf.cli.main import main as cli_main
from esc_tf.reporting import explore
from esc_tf.reporting import plots as viz
from tests.conftest import CLASSES

CLASS_NAMES = [name for _, name in CLASSES]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, dataset_dir) -> Path:
    out = tmp_path_factory.mktemp("explore") / "report"
    assert cli_main(["explore", "--data-dir", str(dataset_dir), "--out", str(out), "--clips-per-class", "2"]) == 0
    return out


def _links(index: Path) -> list[str]:
    return re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", index.read_text())


def test_report_links_are_relative_and_exist(report_dir, dataset_dir):
    index = report_dir / "index.html"
    page = index.read_text()
    for name in CLASS_NAMES:
        assert f">{name}</h3>" in page
    links = [link for link in _links(index) if not link.startswith("#")]
    assert links, "no images or audio referenced"
    for link in links:
        assert "://" not in link and not link.startswith("/"), link
        assert (report_dir / unquote(link)).is_file(), link
    audio = re.findall(r"<audio[^>]*src='([^']+)'", page)
    images = re.findall(r"<img src='(clips/[^']+)'", page)
    assert len(audio) == len(images) == 2 * len(CLASS_NAMES)
    for link in audio:  # linked from the dataset, not copied
        assert (report_dir / unquote(link)).resolve().parent == (dataset_dir / "audio").resolve()
    assert not (report_dir / "audio").exists()
    assert not list(report_dir.parent.glob(".report.*")), "staging folder left behind"


def test_clips_are_spread_over_folds(dataset_dir):
    meta = explore.data_mod.read_metadata(dataset_dir)
    chosen = explore.select_clips(meta, 3)
    assert list(chosen["category"].unique()) == CLASS_NAMES  # target order
    for _, rows in chosen.groupby("category"):
        assert sorted(rows["fold"]) == [1, 2, 3]


def test_force_replaces_atomically_and_copy_audio(dataset_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli_main(["explore", "--data-dir", str(dataset_dir), "--out", str(out)]) == 1
    assert "--force" in capsys.readouterr().err and (out / "keep.txt").is_file()

    calls = []
    original = viz.plot_clip

    def failing_plot(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(viz, "plot_clip", failing_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        cli_main(["explore", "--data-dir", str(dataset_dir), "--out", str(out), "--clips-per-class", "1", "--force"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "partial output left behind"
    assert (out / "keep.txt").read_text() == "mine"  # the old folder is untouched

    monkeypatch.setattr(viz, "plot_clip", original)
    assert cli_main(["explore", "--data-dir", str(dataset_dir), "--out", str(out), "--clips-per-class", "1",
                         "--force", "--copy-audio"]) == 0
    assert (out / "index.html").is_file() and not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    audio = re.findall(r"<audio[^>]*src='([^']+)'", (out / "index.html").read_text())
    assert len(audio) == 3 and all(link.startswith("audio/") for link in audio)  # self-contained copy
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(unquote(a)[6:] for a in audio)


def test_bad_dataset_writes_nothing(tmp_path, capsys):
    assert cli_main(["explore", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 1
    assert "dataset folder not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


def test_renders_in_headless_chromium(report_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (CI: apt-get update && apt-get install -y chromium)")
    url = (report_dir / "index.html").resolve().as_uri()
    shot = tmp_path / "shot.png"
    jobs = {"dom": ["--dump-dom", url], "shot": [f"--screenshot={shot}", "--window-size=1200,2000", url]}
    procs = {name: subprocess.Popen([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / name}", *args],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for name, args in jobs.items()}  # both at once: each start costs seconds
    dom = procs["dom"].communicate(timeout=90)[0]
    procs["shot"].wait(timeout=90)
    assert "Clips per class" in dom
    for name in CLASS_NAMES:
        assert f">{name}</h3>" in dom
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 0.1  # not a blank page (a text-only page measures about 0.03)
    rgb = (pixels * 255).astype(np.uint32)
    colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    assert len(colours) > 1000  # the plots rendered (text alone gives about 300 colours)

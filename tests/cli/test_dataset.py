"""The download a first ``esc-tf train`` does when no dataset is at the default location."""
from __future__ import annotations

from pathlib import Path

import pytest

from esc_tf.cli import dataset as dataset_cli
from esc_tf.cli.main import main as cli_main
from esc_tf.config import DATA_DIR_ENV, DEFAULT_DATA_DIR
from esc_tf.data.download import OFFICIAL_URL, DownloadError
from tests.conftest import make_dataset

FAST = ["--epochs", "1", "--folds", "1", "--preset", "seed", "--set", "audio.clip_seconds=1.0",
        "--set", "train.verbose=0", "--set", "export.edge_eval=false", "--set", "export.deploy=false"]


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def test_offline_first_train_names_data_dir(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    def offline(dest: Path, **kwargs: object) -> Path:
        raise DownloadError(f"{OFFICIAL_URL}: network error (no route to host); check the connection")

    monkeypatch.setattr(dataset_cli, "download_esc50", offline)
    assert cli_main(["train", *FAST]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert OFFICIAL_URL in err and "--data-dir" in err
    assert not Path("runs").exists()


def test_first_train_downloads_the_dataset_then_trains_on_it(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def fake_download(dest: Path, **kwargs: object) -> Path:
        calls.append(Path(dest))
        return make_dataset(Path(dest), folds=(1, 2))

    monkeypatch.setattr(dataset_cli, "download_esc50", fake_download)
    assert cli_main(["train", *FAST]) == 0
    assert calls == [Path(DEFAULT_DATA_DIR)]
    assert "downloading the official ESC-50 release" in capsys.readouterr().out
    (run_dir,) = Path("runs").iterdir()
    assert (run_dir / "fold1" / "result.json").is_file()
    assert cli_main(["train", *FAST]) == 0  # found now: no second download
    assert len(calls) == 1


def test_an_explicit_data_dir_is_never_downloaded_into(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    def no_download(dest: Path, **kwargs: object) -> Path:
        raise AssertionError("no download expected")

    monkeypatch.setattr(dataset_cli, "download_esc50", no_download)
    assert cli_main(["train", "--data-dir", "elsewhere", *FAST]) == 1
    assert "elsewhere" in capsys.readouterr().err

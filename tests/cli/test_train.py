"""esc-tf train: what it refuses before any long work, and what it resumes."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from esc_tf.cli.main import main as cli_main
from esc_tf.data import dataset as data
from tests.conftest import MFCC_RECIPE

QUICK = ["--config", str(MFCC_RECIPE), "--folds", "1", "--epochs", "1", "--set", "audio.clip_seconds=1.0",
         "--set", "export.edge_eval=false", "--set", "export.deploy=false", "--set", "train.verbose=0"]


def _train(data_dir: Path, tmp_path: Path, *extra: str) -> int:
    return cli_main(["train", "--data-dir", str(data_dir), "--runs-root", str(tmp_path / "runs"),
                     "--set", f"data.cache_dir={tmp_path / 'cache'}", *QUICK, *extra])


def test_an_output_folder_that_cannot_be_written_is_refused_before_decoding(dataset_dir, tmp_path, monkeypatch,
                                                                         capsys):
    (tmp_path / "a-file").write_text("")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before checking the output folder")
    monkeypatch.setattr(data, "load_waveforms", no_decoding)
    code = cli_main(["train", "--data-dir", str(dataset_dir), "--runs-root", str(tmp_path / "a-file" / "runs"),
                     *QUICK])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert f"{tmp_path / 'a-file'}" in err and "cannot write the run here" in err and "--runs-root" in err


def test_a_run_resumes_only_on_the_data_it_started_on(dataset_dir, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(dataset_dir, root)
    assert _train(root, tmp_path) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    assert (run_dir / "inputs.json").is_file()
    assert _train(root, tmp_path) == 0  # same data: the finished fold is kept
    assert "already finished, skipping" in capsys.readouterr().out
    victim = sorted((root / "audio").iterdir())[0]
    wave, rate = sf.read(victim)
    sf.write(victim, np.clip(wave * 0.5, -1, 1), rate)  # the same clip, re-recorded
    assert _train(root, tmp_path) == 1
    err = capsys.readouterr().err
    assert f"{run_dir}: the dataset" in err and "changed since this run started" in err and "--restart" in err
    assert _train(root, tmp_path, "--restart") == 0
    assert "already finished" not in capsys.readouterr().out

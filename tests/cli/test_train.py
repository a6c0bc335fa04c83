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


def test_a_corrupt_a_nan_and_a_truncated_clip_are_reported_together_before_training(dataset_dir, tmp_path,
                                                                                    monkeypatch, capsys):
    from esc_tf.stages import train as train_stage
    root = tmp_path / "ds"
    shutil.copytree(dataset_dir, root)
    files = sorted((root / "audio").iterdir())
    corrupt, not_a_number, truncated = files[2], files[9], files[17]
    corrupt.write_bytes(b"RIFF\x00\x00 this is not audio" * 8)
    wave = np.full(22050, 0.1)
    wave[1000] = np.nan
    sf.write(not_a_number, wave, 22050, subtype="FLOAT")
    truncated.write_bytes(truncated.read_bytes()[:60])

    def no_training(*args, **kwargs):
        raise AssertionError("trained despite unusable clips")
    monkeypatch.setattr(train_stage, "train_fold", no_training)
    assert _train(root, tmp_path) == 1
    err = capsys.readouterr().err.split("\r")[-1].split("\n", 1)[-1]  # after the decoding progress bar
    assert err.startswith("error: 3 clips cannot be used") and "Traceback" not in err
    assert f"{corrupt}: not a readable audio file" in err
    assert f"{not_a_number}: holds NaN or infinite samples" in err
    assert f"{truncated}: cannot decode audio" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_disk_too_full_for_the_decoded_audio_is_refused_before_decoding(dataset_dir, tmp_path, monkeypatch,
                                                                          capsys):
    import shutil as shutil_module
    from collections import namedtuple
    usage = namedtuple("usage", "total used free")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the disk is full")
    monkeypatch.setattr(data, "load_waveforms", no_decoding)
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9 - 1000, 1000))
    assert _train(dataset_dir, tmp_path) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'cache'}: 0 MB free, and the decoded audio needs about" in err
    assert "--set data.cache_dir=DIR" in err and err.count("\n") == 1

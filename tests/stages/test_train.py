"""End to end: cross-validation on a synthetic dataset, resume, reports, bad input, no leakage."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from esc_tf import artifacts
from esc_tf.artifacts import Normalization
from esc_tf.audio.features import normalization_stats
from esc_tf.cli.main import main as cli_main
from esc_tf.config import Config, ConfigError, load_config, options_with_role, with_value, with_values
from esc_tf.data import dataset as data
from esc_tf.reporting.run_report import write_run_report
from esc_tf.stages import train
from tests.conftest import CHANCE, MFCC_RECIPE, chance_of_at_least, held_out_hits, make_dataset, small_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, dataset_dir) -> tuple[Path, Config]:
    tmp = tmp_path_factory.mktemp("run")
    config = with_value(small_config(dataset_dir, tmp), "data.folds", [1, 2])
    run_dir = train.run_cross_validation(config, tmp / "runs", progress=False)
    write_run_report(run_dir, 0.0)
    write_run_report(run_dir, 0.0)
    return run_dir, config


def test_two_epochs_beat_chance(finished_run):
    run_dir, _ = finished_run
    report = json.loads((run_dir / "report.json").read_text())
    assert [f["name"] for f in report["folds"]] == ["fold1", "fold2"]
    assert report["test_clips"] == 12
    hits = int(np.trace(report["confusion_matrix"]))
    assert chance_of_at_least(hits, 12, 3) < CHANCE, hits  # 10 of 12 or better


def default_recipe_config(tmp_path: Path) -> Config:
    """The built-in default (log-mels, dscnn, full augmentation) on more clips and epochs than the
    two-epoch mechanics runs: it needs them (strided stem, strong augmentation), real data has them."""
    return with_values(Config(), {
        "data.data_dir": str(make_dataset(tmp_path / "esc50", clips_per_class_per_fold=6)),
        "data.cache_dir": str(tmp_path / "cache"), "data.folds": [1], "audio.clip_seconds": 1.0,
        "train.epochs": 30, "train.batch_size": 8, "train.verbose": 0, "export.deploy": False})


def test_the_default_recipe_learns_the_synthetic_classes(tmp_path):
    config = with_value(default_recipe_config(tmp_path), "export.edge_eval", False)
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
    write_run_report(run_dir, 0.0)
    assert json.loads((run_dir / "report.json").read_text())["mean_accuracy"] > 0.8  # chance is 1/3


def test_without_a_validation_part_every_training_clip_is_fitted(dataset_dir, tmp_path):
    """``data.val_fraction: 0``: no clip is held out for early stopping, the last epoch's model is
    kept, and pruning and the edge stage run without validation data."""
    root = tmp_path / "runs"
    args = ["--data-dir", str(dataset_dir), "--config", str(MFCC_RECIPE), "--folds", "2", "--epochs", "2",
            "--set", "audio.clip_seconds=1.0", "--set", "train.verbose=0", "--set", "data.val_fraction=0",
            "--set", "train.lr_schedule=cosine", "--set", "train.batch_size=8", "--set", "prune.fine_tune_epochs=2",
            "--set", f"data.cache_dir={tmp_path / 'cache'}", "--runs-root", str(root),
            "--set", "export.publish_dir="]
    assert cli_main(["train", *args]) == 0
    run_dir = next(root.iterdir())
    assert json.loads((run_dir / "deploy" / "export.json").read_text())["int8_tflite_bytes"] > 0
    fold_dir = run_dir / "fold2"
    split = json.loads((fold_dir / "split.json").read_text())
    assert split["val"] == [] and len(split["train"]) == 24
    result = json.loads((fold_dir / "result.json").read_text())
    assert result["epochs_trained"] == 2 and "val_loss" not in result["history"]
    edge = json.loads((fold_dir / "edge.json").read_text())
    assert edge["kernel_sparsity"] > 0.4
    hits, clips = held_out_hits(run_dir / "deploy" / "model_int8.tflite", tmp_path / "held_out")
    assert chance_of_at_least(hits, clips, 3) < CHANCE, (hits, clips)


def test_plateau_schedule_needs_a_validation_part(dataset_dir, tmp_path, capsys):
    assert cli_main(["train", "--data-dir", str(dataset_dir), "--folds", "2", "--set", "data.val_fraction=0",
                       "--set", "train.lr_schedule=plateau", "--set", "audio.clip_seconds=1.0",
                       "--set", f"data.cache_dir={tmp_path / 'cache'}", "--runs-root", str(tmp_path / "runs")]) == 1
    assert "plateau" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_a_recipe_over_the_device_budget_is_refused_before_training(dataset_dir, tmp_path, capsys):
    """A 32-channel stem on the default 64 log-mels needs ~90 KB of arena: refused in seconds, not after the CV."""
    assert cli_main(["train", "--data-dir", str(dataset_dir), "--set", "model.stem_filters=32",
                     "--runs-root", str(tmp_path / "runs"),
                       "--set", f"data.cache_dir={tmp_path / 'cache'}"]) == 1
    err = capsys.readouterr().err
    assert "cannot be deployed" in err and "arena" in err and "export.deploy=false" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_report_contents(finished_run):
    run_dir, config = finished_run
    report = json.loads((run_dir / "report.json").read_text())
    results = [artifacts.load_fold_result(run_dir / n) for n in ("fold1", "fold2")]
    accs = [r.accuracy for r in results]
    assert report["mean_accuracy"] == pytest.approx(np.mean(accs))
    assert report["std_accuracy"] == pytest.approx(np.std(accs, ddof=1))
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == 12
    assert np.trace(cm) / cm.sum() == pytest.approx(report["pooled_accuracy"])
    assert set(report["per_class"]) == {"dog", "rain", "chainsaw"}
    assert report["versions"]["tensorflow"].startswith("2.17")
    head = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    assert report["versions"]["esc-tf (git)"].startswith(head or "unknown")
    assert report["config"] == config.to_dict()
    md = (run_dir / "report.md").read_text()
    assert "± " in md and "| fold1 |" in md and "chainsaw" in md
    for png in ("curves.png", "confusion.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "config.yaml").is_file()
    for fold in ("fold1", "fold2"):
        assert (run_dir / fold / "model.keras").is_file()
        assert (run_dir / fold / "checkpoint.weights.h5").is_file()
        assert any((run_dir / fold / "tensorboard").rglob("events.out.tfevents.*"))


def test_no_test_fold_clip_reaches_training_or_normalisation(finished_run, dataset_dir):
    run_dir, config = finished_run
    meta = data.read_metadata(dataset_dir)
    fold_of = dict(zip(meta["filename"], meta["fold"]))
    waves = data.load_waveforms(meta, config.audio, config.data.cache_dir, progress=False)
    for fold in (1, 2):
        split = json.loads((run_dir / f"fold{fold}" / "split.json").read_text())
        assert {fold_of[f] for f in split["test"]} == {fold}
        assert fold not in {fold_of[f] for f in split["train"] + split["val"]}
        assert set(split["test"]) == set(meta["filename"][meta["fold"] == fold])
        # the stored normalisation is exactly the statistics of the training clips
        train_rows = meta.index[meta["filename"].isin(split["train"])]
        expected = normalization_stats(waves[train_rows], config)
        stored = Normalization.from_dict(json.loads((run_dir / f"fold{fold}" / "normalization.json").read_text()))
        np.testing.assert_allclose(stored.mean, expected.mean, rtol=1e-5)


def test_rerun_resumes_and_skips_finished_folds(finished_run, capsys, monkeypatch):
    run_dir, config = finished_run
    before = (run_dir / "fold1" / "result.json").stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")
    monkeypatch.setattr(train, "train_fold", fail)
    assert train.run_cross_validation(config, run_dir.parent, progress=False) == run_dir
    assert capsys.readouterr().out.count("already finished, skipping") == 2
    assert (run_dir / "fold1" / "result.json").stat().st_mtime_ns == before


def test_a_run_folder_resumes_only_under_the_options_it_trained_with(finished_run, monkeypatch):
    """An explicit --run-dir with other training options is refused before anything changes; options that
    leave results alone (which folds, verbosity, late-stage export settings) resume."""
    run_dir, config = finished_run
    monkeypatch.setattr(train, "train_fold", lambda *a: (_ for _ in ()).throw(AssertionError("trained")))
    config_text = (run_dir / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"the training options \(\w+ then, \w+ now\) changed since this run "
                                          r"started.*--restart"):
        train.run_cross_validation(with_value(config, "train.learning_rate", 0.5), run_dir=run_dir, progress=False)
    assert (run_dir / "config.yaml").read_text() == config_text
    resumed = with_values(config, {"data.folds": [1], "train.verbose": 1, "export.representative_clips": 5})
    assert train.run_cross_validation(resumed, run_dir=run_dir, progress=False) == run_dir
    train.run_cross_validation(config, run_dir=run_dir, progress=False)  # as it was


def test_restart_deletes_only_a_run_folder(dataset_dir, tmp_path):
    """--restart (and any run) refuses a --run-dir that holds other files, and leaves them alone."""
    folder = tmp_path / "my-project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    config = small_config(dataset_dir, tmp_path)
    for restart in (True, False):
        with pytest.raises(ConfigError, match="my-project: this folder holds other files and is not a run folder"):
            train.run_cross_validation(config, run_dir=folder, restart=restart, progress=False)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_interrupted_fold_is_trained_again(dataset_dir, tmp_path, monkeypatch):
    config = with_values(small_config(dataset_dir, tmp_path), {"data.folds": [1, 2], "train.epochs": 1})
    real = train.train_fold
    calls = []

    def crash_on_second(split, *args):
        calls.append(split.name)
        if split.name == "fold2" and calls.count("fold2") == 1:
            raise KeyboardInterrupt
        return real(split, *args)
    monkeypatch.setattr(train, "train_fold", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        train.run_cross_validation(config, tmp_path / "runs", progress=False)
    run_dir = train.run_dir_for(config, tmp_path / "runs")
    assert (run_dir / "fold1" / "result.json").is_file() and not (run_dir / "fold2" / "result.json").exists()
    started_by = (run_dir / "commands.txt").read_text().splitlines()
    assert started_by == [artifacts.invocation()]  # recorded before any report exists
    train.run_cross_validation(config, tmp_path / "runs", progress=False)
    assert calls == ["fold1", "fold2", "fold2"]
    write_run_report(run_dir, 0.0)
    assert (run_dir / "report.md").is_file()
    assert json.loads((run_dir / "report.json").read_text())["commands"] == started_by  # the same command, once


def test_stratified_split_cli(dataset_dir, tmp_path, capsys):
    code = cli_main(["train", "--data-dir", str(dataset_dir), "--split", "stratified", "--epochs", "1",
                       "--preset", "seed", "--set", "audio.clip_seconds=1.0", "--set", "train.verbose=0",
                       "--set", f"data.cache_dir={tmp_path / 'cache'}", "--runs-root", str(tmp_path / "runs"),
                       "--set", "export.edge_eval=false", "--set", "export.deploy=false"])
    assert code == 0
    run_dir = next((tmp_path / "runs").iterdir())
    assert "seed-stratified" in run_dir.name
    report = json.loads((run_dir / "report.json").read_text())
    assert report["folds"][0]["name"] == "stratified" and report["test_clips"] == 6
    assert report["config"]["model"]["preset"] == "seed"


@pytest.mark.parametrize("breakage, message", [
    ("csv_column", "missing column"),
    ("audio", "does not exist"),
    ("fold", "fold 4 has no clips"),
    ("truncated", "cannot decode"),
])
def test_bad_input_leaves_no_run_folder(dataset_dir, tmp_path, capsys, breakage, message):
    root = tmp_path / "ds"
    shutil.copytree(dataset_dir, root)
    csv = root / "meta" / "esc50.csv"
    extra = []
    if breakage == "csv_column":
        csv.write_text(csv.read_text().replace("category", "label"))
    elif breakage == "audio":
        sorted((root / "audio").iterdir())[0].unlink()
    elif breakage == "fold":
        lines = csv.read_text().splitlines()
        csv.write_text("\n".join(line for line in lines if ",4," not in line) + "\n")
        extra = ["--folds", "4"]
    else:
        victim = sorted((root / "audio").iterdir())[3]
        victim.write_bytes(victim.read_bytes()[:60])
    code = cli_main(["train", "--data-dir", str(root), "--set", "audio.clip_seconds=1.0", "--runs-root",
                       str(tmp_path / "runs"), "--set", f"data.cache_dir={tmp_path / 'cache'}", *extra])
    assert code == 1
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and message in last_line
    assert not (tmp_path / "runs").exists()


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for text in ("--data-dir", "--split", "--folds", "--subset", "--config", "augment.mixup_alpha",
                 "distill.teacher_runs", "ESC_TF_DATA_DIR"):
        assert text in out


def test_a_config_file_of_an_older_version_trains(tmp_path):
    """A file written while train.class_weights existed holds it at its default: accepted, not saved again."""
    root = make_dataset(tmp_path / "ds", clips_per_class_per_fold=2, folds=(1, 2))
    (tmp_path / "c.json").write_text(json.dumps({
        "data": {"data_dir": str(root), "cache_dir": str(tmp_path / "cache")},
        "audio": {"clip_seconds": 1.0}, "model": {"preset": "seed"},
        "train": {"epochs": 1, "class_weights": False, "lr_schedule": "cosine", "verbose": 0},
        "export": {"edge_eval": False, "deploy": False}}))
    assert cli_main(["train", "--config", str(tmp_path / "c.json"), "--folds", "2",
                       "--runs-root", str(tmp_path / "runs")]) == 0
    saved = (next((tmp_path / "runs").iterdir()) / "config.yaml").read_text()
    assert "class_weights" not in saved and "lr_schedule: cosine" in saved


def test_commands_are_recorded_and_tabulated(finished_run, monkeypatch, capsys):
    run_dir, _ = finished_run
    monkeypatch.setattr("sys.argv", ["/x/bin/esc-tf", "deploy", "--run", str(run_dir)])
    assert artifacts.invocation() == f"esc-tf deploy --run {run_dir}"
    commands = artifacts.record_command(run_dir)
    assert commands[-1] == f"esc-tf deploy --run {run_dir}" and len(commands) >= 2
    assert artifacts.record_command(run_dir) == commands  # the same invocation is not repeated
    assert cli_main(["report", "runs", str(run_dir)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| `{run_dir.name}` |"))
    accuracy = json.loads((run_dir / "report.json").read_text())["mean_accuracy"]
    assert f"| {accuracy:.4f} ± " in row and "| mfcc 13 of 40, 512/256, log offset 1e-06 | 1,2 |" in row


def test_options_added_later_keep_the_folders_of_older_runs():
    """Run folders are named by a hash of the config that leaves out the late options
    (``options_with_role("late")``) at their defaults, holds moved options under their old names and
    retired ones at the value they implied: the folders of these configs, named before any option was
    retired, are still theirs. ``configs/micro_logmel.yaml`` holds the built-in default of those days; a
    config that leaves a since-changed default unset (the network's widths, the epochs) gets a new folder."""
    configs = Path(__file__).resolve().parents[2] / "configs"
    base = with_value(load_config(configs / "micro_logmel.yaml"), "data.data_dir", "/data/x")
    named = {
        "f0371623": base,
        "e6653ae3": with_value(load_config(configs / "most_accurate.yaml"), "data.data_dir", "/data/x"),
        "6377e414": with_values(base, {"distill.teacher_runs": ["/abs/a", "/abs/b"], "distill.weight": 0.7}),
        "0bcb12fa": with_value(base, "train.init_from", "/abs/run"),
        "942675f2": with_values(base, {"model.time_rolls": 3, "augment.mel_shift": 2}),
    }
    for fingerprint, config in named.items():
        assert train.run_dir_for(config).name.endswith(f"-{fingerprint}")
    assert "model.time_rolls" in options_with_role("late")
    assert not train.run_dir_for(with_value(base, "model.time_rolls", 2)).name.endswith("f0371623")
    assert not train.run_dir_for(with_value(Config(), "data.data_dir", "/data/x")).name.endswith("f0371623")


def test_cosine_schedule_starts_at_the_learning_rate_and_anneals_to_zero():
    config = with_values(Config(), {"train.epochs": 100, "train.learning_rate": 0.01})
    cosine = [train.scheduled_learning_rate(epoch, config) for epoch in range(100)]
    assert cosine[0] == pytest.approx(0.01) and cosine[50] == pytest.approx(0.005)
    assert all(a > b for a, b in zip(cosine, cosine[1:])) and cosine[-1] < 0.01 / 1000


@pytest.mark.parametrize("assignment, message", [
    ("train.batch_size=0", "train.batch_size: 0 is out of range; it must be >= 1"),
    ("train.lr_schedule=linear", "train.lr_schedule: 'linear' is out of range; it must be one of 'cosine', 'plateau'"),
    ("train.weight_decay=0.1", "train.weight_decay: the option was removed")])
def test_an_impossible_training_setting_is_refused(dataset_dir, tmp_path, capsys, assignment, message):
    args = ["--data-dir", str(dataset_dir), "--runs-root", str(tmp_path / "runs"), "--set", assignment]
    assert cli_main(["train", *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()

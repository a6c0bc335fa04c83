"""End to end: cross-validation on a synthetic dataset, resume, reports, bad input, no leakage."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from esc_tf import data, report, train
from esc_tf.config import Config, ConfigError
from esc_tf.features import Normalization, normalization_stats
from tests.conftest import MFCC_RECIPE, make_dataset, small_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, dataset_dir) -> tuple[Path, Config]:
    tmp = tmp_path_factory.mktemp("run")
    config = small_config(dataset_dir, tmp)
    config.data.folds = [1, 2]
    return train.run_cross_validation(config, tmp / "runs", progress=False), config


def test_two_epochs_beat_chance(finished_run):
    run_dir, _ = finished_run
    report = json.loads((run_dir / "report.json").read_text())
    assert [f["name"] for f in report["folds"]] == ["fold1", "fold2"]
    assert report["mean_accuracy"] > 0.6  # chance is 1/3
    assert report["test_clips"] == 12


def default_recipe_config(tmp_path: Path) -> Config:
    """The built-in default (log-mels, dscnn, full augmentation) on more clips and epochs than the
    two-epoch mechanics runs: it needs them (strided stem, strong augmentation), real data has them."""
    config = Config()
    config.data.data_dir = str(make_dataset(tmp_path / "esc50", clips_per_class_per_fold=6))
    config.data.cache_dir = str(tmp_path / "cache")
    config.data.folds = [1]
    config.audio.clip_seconds = 1.0
    config.train.epochs, config.train.batch_size, config.train.verbose = 30, 8, 0
    config.export.deploy = False
    return config


def test_the_default_recipe_learns_the_synthetic_classes(tmp_path):
    config = default_recipe_config(tmp_path)
    config.export.edge_eval = False
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
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
    assert train.main(args) == 0
    run_dir = next(root.iterdir())
    assert json.loads((run_dir / "deploy" / "export.json").read_text())["int8_tflite_bytes"] > 0
    fold_dir = run_dir / "fold2"
    split = json.loads((fold_dir / "split.json").read_text())
    assert split["val"] == [] and len(split["train"]) == 24
    result = json.loads((fold_dir / "result.json").read_text())
    assert result["epochs_trained"] == 2 and "val_loss" not in result["history"]
    edge = json.loads((fold_dir / "edge.json").read_text())
    assert edge["kernel_sparsity"] > 0.4 and edge["variants"]["int8_tflm"]["accuracy"] > 1 / 3


def test_plateau_schedule_needs_a_validation_part(dataset_dir, tmp_path, capsys):
    assert train.main(["--data-dir", str(dataset_dir), "--folds", "2", "--set", "data.val_fraction=0",
                       "--set", "train.lr_schedule=plateau", "--set", "audio.clip_seconds=1.0",
                       "--set", f"data.cache_dir={tmp_path / 'cache'}", "--runs-root", str(tmp_path / "runs")]) == 1
    assert "plateau" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_a_recipe_over_the_device_budget_is_refused_before_training(dataset_dir, tmp_path, capsys):
    """dscnn_deep on the default 64 log-mels needs ~76 KB of arena: refused in seconds, not after the CV."""
    assert train.main(["--data-dir", str(dataset_dir), "--preset", "dscnn_deep", "--runs-root", str(tmp_path / "runs"),
                       "--set", f"data.cache_dir={tmp_path / 'cache'}"]) == 1
    err = capsys.readouterr().err
    assert "cannot be deployed" in err and "arena" in err and "export.deploy=false" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_report_contents(finished_run):
    run_dir, config = finished_run
    report = json.loads((run_dir / "report.json").read_text())
    results = [train.load_fold_result(run_dir / n) for n in ("fold1", "fold2")]
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


def test_interrupted_fold_is_trained_again(dataset_dir, tmp_path, monkeypatch):
    config = small_config(dataset_dir, tmp_path)
    config.data.folds = [1, 2]
    config.train.epochs = 1
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
    assert started_by == [report.invocation()]  # recorded before any report exists
    train.run_cross_validation(config, tmp_path / "runs", progress=False)
    assert calls == ["fold1", "fold2", "fold2"]
    assert (run_dir / "report.md").is_file()
    assert json.loads((run_dir / "report.json").read_text())["commands"] == started_by  # the same command, once


def test_stratified_split_cli(dataset_dir, tmp_path, capsys):
    code = train.main(["--data-dir", str(dataset_dir), "--split", "stratified", "--epochs", "1",
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
    code = train.main(["--data-dir", str(root), "--set", "audio.clip_seconds=1.0", "--runs-root",
                       str(tmp_path / "runs"), "--set", f"data.cache_dir={tmp_path / 'cache'}", *extra])
    assert code == 1
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and message in last_line
    assert not (tmp_path / "runs").exists()


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for text in ("--data-dir", "--split", "--folds", "--subset", "--config", "augment.mixup_alpha",
                 "train.class_weights", "ESC_TF_DATA_DIR"):
        assert text in out


def test_missing_default_dataset_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ESC_TF_DATA_DIR", raising=False)
    assert train.main([]) == 1
    err = capsys.readouterr().err
    assert "data/ESC-50" in err and "python -m esc_tf.data download" in err


def test_config_file_and_class_weights(tmp_path):
    root = make_dataset(tmp_path / "ds", clips_per_class_per_fold=2, folds=(1, 2))
    (tmp_path / "c.json").write_text(json.dumps({
        "data": {"data_dir": str(root), "cache_dir": str(tmp_path / "cache")},
        "audio": {"clip_seconds": 1.0}, "model": {"preset": "seed"},
        "train": {"epochs": 1, "class_weights": True, "lr_schedule": "cosine", "verbose": 0},
        "export": {"edge_eval": False, "deploy": False}}))
    assert train.main(["--config", str(tmp_path / "c.json"), "--folds", "2",
                       "--runs-root", str(tmp_path / "runs")]) == 0
    saved = (next((tmp_path / "runs").iterdir()) / "config.yaml").read_text()
    assert "class_weights: true" in saved and "lr_schedule: cosine" in saved


def test_commands_are_recorded_and_tabulated(finished_run, monkeypatch, capsys):
    from esc_tf import report
    run_dir, _ = finished_run
    monkeypatch.setattr("sys.argv", ["/x/esc_tf/export.py", "--run", str(run_dir)])
    assert report.invocation() == f"python -m esc_tf.export --run {run_dir}"
    commands = report.record_command(run_dir)
    assert commands[-1] == f"python -m esc_tf.export --run {run_dir}" and len(commands) >= 2
    assert report.record_command(run_dir) == commands  # the same invocation is not repeated
    assert report.main([str(run_dir)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if f"| {run_dir.name.rsplit('-', 1)[-1]} | esc50" in line)
    accuracy = json.loads((run_dir / "report.json").read_text())["mean_accuracy"]
    assert f"{accuracy:.4f}" in row and "| cnn | mfcc 13 of 40, 512/256, log offset 1e-06 | 2 |" in row
    assert f"python -m esc_tf.export --run {run_dir}" in table


def _tiny_fit(config: Config, steps: int = 12) -> tuple:
    """A Dense-BN-Dense model fitted for ``steps`` batches of 8 with ``train.make_optimizer(config)``."""
    import tf_keras as keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    optimizer = train.make_optimizer(config)
    model.compile(optimizer=optimizer, loss="mse")
    x, y = np.random.default_rng(0).normal(size=(8 * steps, 4)), np.ones((8 * steps, 2))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    return model, optimizer


def test_weight_decay_shrinks_kernels_but_not_batch_norm_or_biases():
    decayed = Config()
    decayed.train.weight_decay = 0.5
    model, optimizer = _tiny_fit(decayed, steps=1)  # one step: the gradients are the same with or without decay
    plain, _ = _tiny_fit(Config(), steps=1)
    assert type(optimizer).__name__ == "AdamW"
    for var, twin in zip(model.trainable_variables, plain.trainable_variables):
        kernel = var.name.split("/")[-1].startswith("kernel")
        assert np.array_equal(var.numpy(), twin.numpy()) != kernel, var.name


def test_weight_average_replaces_the_last_weights_when_fit_ends():
    config = Config()
    config.train.ema_momentum = 0.9
    model, optimizer = _tiny_fit(config)
    averages = optimizer._model_variables_moving_average  # Keras keeps it; fit swapped it into the model
    for var in model.trainable_variables:
        average = averages[optimizer._index_dict[optimizer._var_key(var)]]
        np.testing.assert_array_equal(var.numpy(), average.numpy())
    plain = train.make_optimizer(Config())
    assert type(plain).__name__ == "Adam" and not plain.use_ema


def test_options_added_later_keep_the_folders_of_older_runs(tmp_path):
    """A run started before ``LATE_OPTIONS`` existed resumes in its folder: at their defaults they are
    not part of the folder's hash, and any other value is."""
    import hashlib
    config = Config()
    config.data.data_dir = str(tmp_path)
    older = config.to_dict()
    for section, names in train.LATE_OPTIONS.items():
        for name in names:
            older[section].pop(name)
    for key in ("folds", "cache_dir"):
        older["data"].pop(key)
    older["train"].pop("verbose")
    older["data"]["data_dir"] = str(tmp_path.resolve())
    older_hash = hashlib.sha256(json.dumps(older, sort_keys=True).encode()).hexdigest()[:8]
    assert train.run_dir_for(config).name.endswith(older_hash)
    config.train.weight_decay = 0.01
    assert not train.run_dir_for(config).name.endswith(older_hash)


def test_onecycle_warms_up_to_the_learning_rate_then_anneals_and_cosine_starts_at_it():
    config = Config()
    config.train.epochs, config.train.learning_rate = 100, 0.01
    config.train.lr_schedule = "onecycle"
    rates = [train.scheduled_learning_rate(epoch, config) for epoch in range(100)]
    assert rates[0] == pytest.approx(0.01 / 25) and max(rates) == pytest.approx(0.01)
    assert int(np.argmax(rates)) == 30 and rates[-1] < 0.01 / 1000
    assert np.all(np.diff(rates[:31]) > 0) and np.all(np.diff(rates[30:]) < 0)
    config.train.lr_schedule = "cosine"
    cosine = [train.scheduled_learning_rate(epoch, config) for epoch in range(100)]
    assert cosine[0] == 0.01 and cosine[50] == pytest.approx(0.005) and np.all(np.diff(cosine) < 0)


def test_swa_schedule_anneals_to_its_rate_then_holds_it():
    config = Config()
    config.train.epochs, config.train.learning_rate = 100, 0.01
    config.train.swa_epochs, config.train.swa_learning_rate = 20, 0.001
    rates = [train.scheduled_learning_rate(epoch, config) for epoch in range(100)]
    assert rates[0] == pytest.approx(0.01) and rates[40] == pytest.approx(0.0055) and np.all(np.diff(rates[:81]) < 0)
    assert rates[80:] == [pytest.approx(0.001)] * 20


def test_weight_average_ends_training_with_the_mean_of_the_last_epochs_weights():
    import tf_keras as keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()))
    x, y = np.random.default_rng(0).normal(size=(16, 3)), np.random.default_rng(1).normal(size=(16, 4))
    model.fit(x, y, epochs=5, batch_size=4, verbose=0, shuffle=False, callbacks=[record, train.WeightAverage(2)])
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, np.mean([epoch[i] for epoch in seen[2:]], axis=0), rtol=1e-6, atol=1e-7)
        assert not np.allclose(w, seen[-1][i])  # not simply the last epoch's


@pytest.mark.parametrize("change, message", [
    ({"swa_epochs": 100}, "between 1 and"),
    ({"swa_epochs": 10, "lr_schedule": "onecycle"}, "cosine"),
    ({"swa_epochs": 10, "swa_learning_rate": 0.0}, "swa_learning_rate"),
    ({"swa_epochs": 10, "ema_momentum": 0.998}, "ema_momentum 0"),
    ({"swa_epochs": 10, "recalibrate_batch_norm": False}, "recalibrate_batch_norm true"),
])
def test_impossible_weight_averaging_is_refused(change, message):
    config = Config()
    config.train.epochs = 100
    for name, value in change.items():
        setattr(config.train, name, value)
    with pytest.raises(ConfigError, match=message):
        train.check_schedule(config, has_validation=False)
    config.train.lr_schedule = "cosine"
    config.train.swa_epochs, config.train.swa_learning_rate = 10, 3e-4
    with pytest.raises(ConfigError, match="val_fraction 0"):
        train.check_schedule(config, has_validation=True)


def test_label_smoothing_spreads_part_of_each_target_over_the_classes():
    import tensorflow as tf
    import tf_keras as keras
    config = Config()
    config.train.label_smoothing = 0.2
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    trainee = train.compiled_for_training(model, config)
    x, y = np.random.default_rng(0).normal(size=(5, 3)), np.eye(4)[[0, 1, 2, 3, 0]] * 0.7 + 0.3 / 4
    logits = model(x).numpy()
    smoothed = y * 0.8 + 0.2 / 4
    expected = -np.mean(np.sum(smoothed * tf.nn.log_softmax(logits).numpy(), axis=1))
    np.testing.assert_allclose(trainee.evaluate(x, y, verbose=0)[0], expected, rtol=1e-5)


@pytest.mark.parametrize("assignment, message", [("train.ema_momentum=1", "train.ema_momentum must be in [0, 1)"),
                                                 ("train.weight_decay=-0.1", "train.weight_decay must be >= 0"),
                                                 ("train.label_smoothing=1", "train.label_smoothing must be in [0, 1)"),
                                                 ("train.lr_schedule=linear", "train.lr_schedule must be one of")])
def test_an_impossible_training_setting_is_refused(dataset_dir, tmp_path, capsys, assignment, message):
    args = ["--data-dir", str(dataset_dir), "--runs-root", str(tmp_path / "runs"), "--set", assignment]
    assert train.main(args) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_each_branch_of_an_ensemble_learns_from_its_own_loss():
    """The gradient reaching one branch's classifier does not depend on the other branch: trained through
    the mean of their logits, the branches would co-adapt instead of forming an ensemble."""
    import tensorflow as tf
    from esc_tf.model import build_model
    config = Config()
    config.model.branches, config.model.stem_filters, config.model.stage_filters = 2, 4, [6, 8]
    model = build_model((64, 31, 1), 3, config.model)
    trainee = train.compiled_for_training(model, config)
    x = np.random.default_rng(0).standard_normal((4, 64, 31, 1)).astype(np.float32)
    y = tf.constant(np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    first, second = (model.get_layer(f"branch{b}_logits") for b in (0, 1))

    def gradient_of_first_classifier() -> np.ndarray:
        with tf.GradientTape() as tape:
            outputs = trainee(x, training=False)
            loss = trainee.compute_loss(x, y, outputs)
        return tape.gradient(loss, first.kernel).numpy()

    before = gradient_of_first_classifier()
    second.set_weights([w * 3 + 1 for w in second.get_weights()])
    np.testing.assert_allclose(gradient_of_first_classifier(), before, rtol=1e-5, atol=1e-7)
    assert np.abs(before).max() > 0


def test_a_branch_ensemble_learns_and_runs_int8_in_tflm(tmp_path):
    from esc_tf.edge import run_edge_stages
    config = default_recipe_config(tmp_path)
    config.model.branches = 2
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
    run_edge_stages(run_dir, progress=False)
    result = json.loads((run_dir / "fold1" / "result.json").read_text())
    assert {"branch0_logits_loss", "branch1_logits_loss", "accuracy"} <= set(result["history"])
    assert result["accuracy"] > 0.8  # chance is 1/3
    edge = json.loads((run_dir / "fold1" / "edge.json").read_text())
    assert edge["variants"]["int8_tflm"]["accuracy"] > 0.8

"""Knowledge distillation: finished runs teach a new one, fold by fold, without seeing its test clips."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from esc_tf import pipeline
from esc_tf.artifacts import ModelMeta, Normalization
from esc_tf.cli.main import main as cli_main
from esc_tf.config import Config, ConfigError, with_value, with_values
from esc_tf.data import dataset as data
from esc_tf.reporting.run_report import write_run_report
from esc_tf.stages import deploy as edge
from esc_tf.stages import train
from esc_tf.teachers import distill
from tests.conftest import CHANCE, MFCC_RECIPE, chance_of_at_least, held_out_hits, small_config


def _constant_model(logits: list[float], input_shape: tuple[int, int, int]) -> keras.Model:
    """A model whose output is ``logits`` whatever its input."""
    inputs = keras.Input(input_shape)
    zero = keras.layers.Lambda(lambda x: tf.reduce_sum(x, axis=[1, 2, 3])[:, None] * 0.0)(inputs)
    outputs = keras.layers.Dense(len(logits), kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(logits))(zero)
    return keras.Model(inputs, outputs)


def _two_constant_teachers(temperature: float = 1.0) -> distill.Teacher:
    shape = (3, 4, 1)
    identity = (np.ones((3, 1, 1), np.float32), np.zeros((3, 1, 1), np.float32))
    return distill.Teacher([_constant_model([0.0, 0.0, np.log(2.0)], shape),
                            _constant_model([np.log(3.0), 0.0, 0.0], shape)],
                           [identity[0]] * 2, [identity[1]] * 2, temperature=temperature)


def test_the_teachers_probabilities_are_their_mean():
    teacher = _two_constant_teachers()
    x = tf.random.normal([300, 3, 4, 1])  # more than one inference chunk (distill.BATCH)
    mean_probs = (np.array([0.25, 0.25, 0.5]) + np.array([0.6, 0.2, 0.2])) / 2
    np.testing.assert_allclose(teacher.probabilities(x).numpy(), np.tile(mean_probs, (300, 1)), rtol=1e-6)


def test_a_temperature_softens_each_teachers_probabilities_before_they_are_averaged():
    teacher = _two_constant_teachers(temperature=2.0)
    # softmax(logits / 2): [1, 1, sqrt 2] and [sqrt 3, 1, 1], each normalised, then averaged.
    first, second = np.array([1, 1, np.sqrt(2)]), np.array([np.sqrt(3), 1, 1])
    expected = (first / first.sum() + second / second.sum()) / 2
    np.testing.assert_allclose(teacher.probabilities(tf.zeros([5, 3, 4, 1])).numpy(), np.tile(expected, (5, 1)),
                               rtol=1e-6)


def _cross_entropy(target: np.ndarray, logits: np.ndarray) -> np.ndarray:
    log_softmax = logits - logits.max(axis=-1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(axis=-1, keepdims=True))
    return -(target * log_softmax).sum(axis=-1)


def test_the_distillation_loss_is_hintons():
    rng = np.random.default_rng(0)
    labels = rng.dirichlet(np.ones(4) * 0.3, size=6).astype(np.float32)  # mixed-up labels
    soft = rng.dirichlet(np.ones(4), size=6).astype(np.float32)
    logits = rng.normal(0, 3, size=(6, 4)).astype(np.float32)
    targets = np.concatenate([labels, soft], axis=1)
    loss = distill.DistillationLoss(weight=0.9, temperature=4.0)(targets, logits).numpy()
    expected = 0.1 * _cross_entropy(labels, logits) + 0.9 * 16 * _cross_entropy(soft, logits / 4)
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)
    # At temperature 1 it is cross-entropy against the blend of labels and teachers.
    blend = distill.DistillationLoss(weight=0.25, temperature=1.0)(targets, logits).numpy()
    np.testing.assert_allclose(blend, _cross_entropy(0.75 * labels + 0.25 * soft, logits).mean(), rtol=1e-5)
    # Plain labels (validation clips, pruning's fine-tuning): cross-entropy against them alone.
    plain = distill.DistillationLoss(weight=0.9, temperature=4.0)(labels, logits).numpy()
    np.testing.assert_allclose(plain, _cross_entropy(labels, logits).mean(), rtol=1e-5)


def test_training_accuracy_reads_the_label_columns_only():
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    teacher_columns = np.eye(3, dtype=np.float32)[[1, 1, 1, 1]] * 10  # would win an argmax over all 6 columns
    logits = np.eye(3, dtype=np.float32)[[0, 1, 0, 2]]
    hits = distill.label_accuracy(np.concatenate([labels, teacher_columns], axis=1), logits).numpy()
    np.testing.assert_array_equal(hits, [1, 1, 0, 1])
    # Plain labels (every run without teachers): Keras's categorical accuracy.
    np.testing.assert_array_equal(distill.label_accuracy(labels, logits).numpy(),
                                  keras.metrics.categorical_accuracy(labels, logits).numpy())


def test_a_teacher_sees_the_features_in_its_own_normalisation():
    rng = np.random.default_rng(0)
    raw = rng.normal(3.0, 2.0, size=(4, 5)).astype(np.float32)  # [coefficients, frames]
    student = Normalization(rng.normal(size=4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32))
    teacher = Normalization(rng.normal(size=4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32))
    scale, offset = distill._renormalization(student, teacher)
    as_student = np.asarray(student.apply(raw))[..., None]
    np.testing.assert_allclose(as_student * scale + offset,
                               np.asarray(teacher.apply(raw))[..., None], rtol=1e-5, atol=1e-5)


def test_the_training_pipeline_feeds_labels_and_each_clips_teacher_probabilities(dataset_dir, tmp_path):
    # plain one-hot labels, so the targets are known exactly
    config = with_value(small_config(dataset_dir, tmp_path), "augment.enabled", False)
    meta = data.load_dataset(config)
    waves = data.load_waveforms(meta, config.audio, progress=False)[:10]
    labels = data.labels(meta)[:10]
    soft = np.random.default_rng(0).dirichlet(np.ones(3), size=10).astype(np.float32)  # one row per clip
    norm = Normalization.identity(config.features.num_mfcc)
    pipeline_targets = np.concatenate([y for _, y in pipeline.train_dataset(
        waves, labels, 3, config, norm, seed=0, soft_targets=soft).as_numpy_iterator()])
    order = np.concatenate([y for _, y in pipeline.train_dataset(
        waves, labels, 3, config, norm, seed=0).as_numpy_iterator()])  # same seed: same shuffle, plain labels
    np.testing.assert_array_equal(pipeline_targets[:, :3], order)
    # each clip's teacher row travels with its label through the shuffle
    clip_of_row = [int(np.flatnonzero((soft == row).all(axis=1))[0]) for row in pipeline_targets[:, 3:]]
    assert sorted(clip_of_row) == list(range(10))
    np.testing.assert_array_equal(order.argmax(axis=1), labels[clip_of_row])


def test_a_run_distilled_from_a_finished_run_trains_scores_and_deploys(exported_run, dataset_dir, tmp_path):
    config = with_values(small_config(dataset_dir, tmp_path), {
        "data.folds": [1], "prune.enabled": False, "distill.teacher_runs": [str(exported_run)],
        "distill.weight": 0.9, "distill.temperature": 4.0})
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
    write_run_report(run_dir, 0.0)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["config"]["distill"] == {"teacher_runs": [str(exported_run)], "teacher_targets": "", "weight": 0.9,
                                          "temperature": 4.0}
    hits, clips = held_out_hits(run_dir / "fold1" / "model.keras", tmp_path / "held_out")
    assert chance_of_at_least(hits, clips, 3) < CHANCE, (hits, clips)
    teacher_report = json.loads((exported_run / "report.json").read_text())
    assert report["teachers"] == [{"run": str(exported_run), "mean_accuracy": teacher_report["mean_accuracy"],
                                   "train_seconds": teacher_report["folds"][0]["wall_seconds"]}]
    assert "## Teachers" in (run_dir / "report.md").read_text()
    edge.run_edge_stages(run_dir, progress=False)  # the deployment model learns from the teacher's deploy/
    write_run_report(run_dir, 0.0)
    assert (run_dir / "deploy" / "model.keras").is_file()
    assert json.loads((run_dir / "deploy" / "export.json").read_text())["int8_tflite_bytes"] > 0


@pytest.mark.parametrize("option, value, message", [
    ("distill.weight", 0.0, "distill.weight: 0.0 is out of range; it must be in (0, 1]"),
    ("distill.temperature", 0.5, "distill.temperature: 0.5 is out of range; it must be >= 1"),
])
def test_distillation_settings_that_cannot_teach_are_refused(option, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        with_value(Config(), option, value)


def test_a_teacher_that_trained_on_the_test_clips_is_refused(exported_run, dataset_dir, tmp_path):
    config = with_value(small_config(dataset_dir, tmp_path), "distill.teacher_runs", [str(exported_run)])
    meta = data.load_dataset(config)
    taught_on = ModelMeta.for_model(exported_run / "fold1" / "model.keras").trained_on
    norm = Normalization.identity(config.features.num_mfcc)
    with pytest.raises(ConfigError, match="trained on 2 of this fold's test clips"):
        distill.load_teacher(config, "fold1", norm, data.class_names(meta), taught_on[:2] + ["other.wav"])
    # The deployment model trained on every clip: it can teach no cross-validation fold.
    fold1 = meta["filename"][meta["fold"] == 1].tolist()
    with pytest.raises(ConfigError, match="trained on 6 of this fold's test clips"):
        distill.load_teacher(config, "deploy", norm, data.class_names(meta), fold1)


@pytest.mark.parametrize("trained_on, message", [
    (lambda names, fold1: names + fold1[:1], "trained on 1 of this fold's test clips"),
    (lambda names, fold1: [], "does not list the clips it trained on"),
])
def test_a_teacher_that_saw_the_test_clips_is_refused_before_training(exported_run, dataset_dir, tmp_path, capsys,
                                                                     trained_on, message):
    teacher = tmp_path / "teacher"
    shutil.copytree(exported_run, teacher)
    meta_path = teacher / "fold1" / "model_meta.json"
    meta = json.loads(meta_path.read_text())
    fold1 = json.loads((teacher / "fold1" / "split.json").read_text())["test"]
    meta["trained_on"] = trained_on(meta["trained_on"], fold1)
    meta_path.write_text(json.dumps(meta))
    args = ["--data-dir", str(dataset_dir), "--config", str(MFCC_RECIPE), "--folds", "1",
            "--set", "audio.clip_seconds=1.0", "--set", f"data.cache_dir={tmp_path / 'cache'}",
            "--set", "features.peak_normalize=true",  # as the teacher (tests.conftest.mfcc_config)
            "--set", f"distill.teacher_runs=[{teacher}]", "--runs-root", str(tmp_path / "runs"),
            "--set", "export.deploy=false"]
    assert cli_main(["train", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and str(teacher / "fold1") in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("change, message", [
    ({"folds": [2]}, "no model.keras"),  # the teacher run has fold 1 only
    ({"num_mfcc": 20}, "[features] settings differ from this run's (teacher vs this run: num_mfcc: 13 vs 20)"),
])
def test_an_unusable_teacher_is_refused_before_anything_is_written(exported_run, dataset_dir, tmp_path, capsys,
                                                                  change, message):
    args = ["--data-dir", str(dataset_dir), "--config", str(MFCC_RECIPE),
            "--set", "audio.clip_seconds=1.0", "--set", f"data.cache_dir={tmp_path / 'cache'}",
            "--set", "features.peak_normalize=true",  # as the teacher (tests.conftest.mfcc_config)
            "--set", f"distill.teacher_runs=[{exported_run}]", "--runs-root", str(tmp_path / "runs"),
            "--set", "export.publish_dir=", "--set", "export.deploy=false"]
    if "folds" in change:
        args += ["--folds", "2"]
    if "num_mfcc" in change:
        args += ["--set", "features.num_mfcc=20"]
    assert cli_main(["train", *args]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "runs").exists()


def test_a_deployment_without_the_teachers_deployment_models_is_refused_before_training(exported_run, dataset_dir,
                                                                                        tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(exported_run, teacher)
    (teacher / "deploy" / "model.keras").unlink()  # as a run exported before deploy/ kept its Keras model
    config = with_value(small_config(dataset_dir, tmp_path), "distill.teacher_runs", [str(teacher)])
    meta = data.load_dataset(config)
    run_dir = tmp_path / "student"
    run_dir.mkdir()
    with pytest.raises(ConfigError, match="no model.keras"):
        edge.deploy(run_dir, meta, data.load_waveforms(meta, config.audio, progress=False), config)
    assert not (run_dir / "deploy").exists()


def test_mixup_mixes_each_clips_teacher_probabilities_with_its_label(dataset_dir, tmp_path):
    """With teacher rows equal to the labels, mixed targets must keep both halves equal: one mixing
    weight and one partner clip for the label and the teacher's probabilities."""
    config = with_values(small_config(dataset_dir, tmp_path), {"augment.enabled": True, "augment.mixup_alpha": 1.0})
    meta = data.load_dataset(config)
    waves = data.load_waveforms(meta, config.audio, progress=False)[:16]
    labels = data.labels(meta)[:16]
    soft = np.eye(3, dtype=np.float32)[labels]
    norm = Normalization.identity(config.features.num_mfcc)
    targets = np.concatenate([y for _, y in pipeline.train_dataset(
        waves, labels, 3, config, norm, seed=0, soft_targets=soft).as_numpy_iterator()])
    assert np.mean(targets[:, :3].max(axis=1) < 0.99) > 0.5  # most rows were mixed
    np.testing.assert_allclose(targets[:, 3:], targets[:, :3], atol=1e-6)

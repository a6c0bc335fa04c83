"""Knowledge distillation: finished runs teach a new one, fold by fold, without seeing its test clips."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from esc_tf import data, distill, edge, pipeline, train
from esc_tf.config import ConfigError
from esc_tf.evaluate import ModelMeta
from esc_tf.features import Normalization, feature_shape
from esc_tf.report import accuracy_table
from tests.conftest import MFCC_RECIPE, small_config


def _constant_model(logits: list[float], input_shape: tuple[int, int, int]) -> keras.Model:
    """A model whose output is ``logits`` whatever its input."""
    inputs = keras.Input(input_shape)
    zero = keras.layers.Lambda(lambda x: tf.reduce_sum(x, axis=[1, 2, 3])[:, None] * 0.0)(inputs)
    outputs = keras.layers.Dense(len(logits), kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(logits))(zero)
    return keras.Model(inputs, outputs)


def test_targets_blend_labels_with_the_teachers_mean_probabilities():
    shape = (3, 4, 1)
    identity = (np.ones((3, 1, 1), np.float32), np.zeros((3, 1, 1), np.float32))
    teacher = distill.Teacher([_constant_model([0.0, 0.0, np.log(2.0)], shape),
                               _constant_model([np.log(3.0), 0.0, 0.0], shape)],
                              [identity[0]] * 2, [identity[1]] * 2, weight=0.25)
    x = tf.random.normal([300, *shape])  # more than one inference chunk (distill.BATCH)
    y = tf.one_hot(np.arange(300) % 3, 3)
    mean_probs = (np.array([0.25, 0.25, 0.5]) + np.array([0.6, 0.2, 0.2])) / 2
    np.testing.assert_allclose(teacher.probabilities(x).numpy(), np.tile(mean_probs, (300, 1)), rtol=1e-6)
    np.testing.assert_allclose(teacher.targets(x, y).numpy(), 0.75 * y.numpy() + 0.25 * mean_probs, rtol=1e-6)


def test_a_teacher_sees_the_features_in_its_own_normalisation():
    rng = np.random.default_rng(0)
    raw = rng.normal(3.0, 2.0, size=(4, 5)).astype(np.float32)  # [coefficients, frames]
    student = Normalization(rng.normal(size=4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32))
    teacher = Normalization(rng.normal(size=4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32))
    scale, offset = distill._renormalization(student, teacher)
    as_student = student.apply(raw).numpy()[..., None]
    np.testing.assert_allclose(as_student * scale + offset,
                               teacher.apply(raw).numpy()[..., None], rtol=1e-5, atol=1e-5)


def test_the_training_pipeline_feeds_the_blended_targets(dataset_dir, tmp_path):
    config = small_config(dataset_dir, tmp_path)
    config.augment.enabled = False  # plain one-hot labels, so the blend is known exactly
    meta = data.load_dataset(config)
    waves = data.load_waveforms(meta, config.audio, progress=False)[:10]
    labels = data.labels(meta)[:10]
    shape = (*feature_shape(config), 1)
    ones, zeros = np.ones((shape[0], 1, 1), np.float32), np.zeros((shape[0], 1, 1), np.float32)
    teacher = distill.Teacher([_constant_model([0.0, np.log(2.0), 0.0], shape)], [ones], [zeros], weight=0.4)
    norm = Normalization.identity(config.features.num_mfcc)
    pipeline_targets = np.concatenate([y for _, y in pipeline.train_dataset(
        waves, labels, 3, config, norm, seed=0, teacher=teacher).as_numpy_iterator()])
    order = np.concatenate([y for _, y in pipeline.train_dataset(
        waves, labels, 3, config, norm, seed=0).as_numpy_iterator()])  # same seed: same shuffle, plain labels
    np.testing.assert_allclose(pipeline_targets, 0.6 * order + 0.4 * np.array([0.25, 0.5, 0.25]), rtol=1e-6)


def test_a_run_distilled_from_a_finished_run_trains_scores_and_deploys(exported_run, dataset_dir, tmp_path):
    config = small_config(dataset_dir, tmp_path)
    config.data.folds = [1]
    config.prune.enabled = False
    config.train.teacher_runs = [str(exported_run)]
    config.train.distill_weight = 0.5
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["config"]["train"]["teacher_runs"] == [str(exported_run)]
    assert report["mean_accuracy"] > 0.6  # chance is 1/3
    teacher_report = json.loads((exported_run / "report.json").read_text())
    assert report["teachers"] == [{"run": str(exported_run), "mean_accuracy": teacher_report["mean_accuracy"],
                                   "train_seconds": teacher_report["folds"][0]["wall_seconds"]}]
    assert "## Teachers" in (run_dir / "report.md").read_text()
    assert "for 1 teachers |" in accuracy_table([run_dir])
    edge.run_edge_stages(run_dir, progress=False)  # the deployment model learns from the teacher's deploy/
    assert (run_dir / "deploy" / "model.keras").is_file()
    assert json.loads((run_dir / "deploy" / "export.json").read_text())["int8_tflite_bytes"] > 0


def test_a_teacher_that_trained_on_the_test_clips_is_refused(exported_run, dataset_dir, tmp_path):
    config = small_config(dataset_dir, tmp_path)
    config.train.teacher_runs = [str(exported_run)]
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
            "--set", f"train.teacher_runs=[{teacher}]", "--runs-root", str(tmp_path / "runs"),
            "--set", "export.deploy=false"]
    assert train.main(args) == 1
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
            "--set", f"train.teacher_runs=[{exported_run}]", "--runs-root", str(tmp_path / "runs"),
            "--set", "export.publish_dir=", "--set", "export.deploy=false"]
    if "folds" in change:
        args += ["--folds", "2"]
    if "num_mfcc" in change:
        args += ["--set", "features.num_mfcc=20"]
    assert train.main(args) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "runs").exists()


def test_a_deployment_without_the_teachers_deployment_models_is_refused_before_training(exported_run, dataset_dir,
                                                                                        tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(exported_run, teacher)
    (teacher / "deploy" / "model.keras").unlink()  # as a run exported before deploy/ kept its Keras model
    config = small_config(dataset_dir, tmp_path)
    config.train.teacher_runs = [str(teacher)]
    meta = data.load_dataset(config)
    run_dir = tmp_path / "student"
    run_dir.mkdir()
    with pytest.raises(ConfigError, match="no model.keras"):
        edge.deploy(run_dir, meta, data.load_waveforms(meta, config.audio, progress=False), config)
    assert not (run_dir / "deploy").exists()

"""Teacher soft targets: computed once per clip, cached by audio and teacher, recomputed when either changes
or the cache entry is damaged; a distilled run reads them back instead of running its teachers again."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from esc_tf import pipeline
from esc_tf.artifacts import Normalization
from esc_tf.audio.features import feature_shape
from esc_tf.config import with_value, with_values
from esc_tf.data import dataset as data
from esc_tf.stages import soft_targets as st
from esc_tf.stages import train
from esc_tf.teachers import distill
from tests.conftest import small_config


def constant_teacher(logits: list[float], config, path) -> distill.Teacher:
    """A saved model whose output is ``logits`` whatever its input, as a teacher."""
    shape = (*feature_shape(config), 1)
    inputs = keras.Input(shape)
    zero = keras.layers.Lambda(lambda x: tf.reduce_sum(x, axis=[1, 2, 3])[:, None] * 0.0)(inputs)
    outputs = keras.layers.Dense(len(logits), kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(logits))(zero)
    model = keras.Model(inputs, outputs)
    model.save(path)
    ones, zeros = np.ones((shape[0], 1, 1), np.float32), np.zeros((shape[0], 1, 1), np.float32)
    return distill.Teacher([model], [ones], [zeros], 1.0, (path,))


@pytest.fixture
def setting(dataset_dir, tmp_path):
    config = with_value(small_config(dataset_dir, tmp_path), "model.time_rolls", 2)
    waves = data.load_waveforms(data.load_dataset(config), config.audio, progress=False)[:6]
    return config, waves, Normalization.identity(config.features.num_mfcc)


def first_element_teacher(config, path) -> distill.Teacher:
    """A saved model whose logits are ``[x, 0, 0]``, x the first coefficient of the input's first frame: a
    rotated view of a clip gets other logits."""
    inputs = keras.Input((*feature_shape(config), 1))
    first = keras.layers.Lambda(lambda x: x[:, 0, 0, :])(inputs)
    outputs = keras.layers.Dense(3, kernel_initializer=keras.initializers.Constant([[1.0, 0.0, 0.0]]),
                                 bias_initializer="zeros")(first)
    model = keras.Model(inputs, outputs)
    model.save(path)
    ones = np.ones((feature_shape(config)[0], 1, 1), np.float32)
    return distill.Teacher([model], [ones], [ones * 0.0], 1.0, (path,))


def test_targets_are_the_teachers_probabilities_averaged_over_each_clips_views(setting, tmp_path):
    config, waves, norm = setting
    teacher = constant_teacher([0.0, np.log(2.0), 0.0], config, tmp_path / "t.keras")
    targets = st.soft_targets(teacher, waves, config, norm, tmp_path / "cache")
    np.testing.assert_allclose(targets, np.tile([0.25, 0.5, 0.25], (6, 1)), rtol=1e-6)
    # A teacher that sees the views apart: the mean of its probabilities on rotations 0 and 1, where
    # rotation r puts frame -r first (np.roll), not its probabilities on one view.
    teacher = first_element_teacher(config, tmp_path / "first.keras")
    targets = st.soft_targets(teacher, waves, config, norm, tmp_path / "cache")
    features = pipeline.feature_array(waves, config, norm)[:, 0, :, 0]
    per_view = [np.stack([np.exp(v), np.ones_like(v), np.ones_like(v)], axis=1) for v in
                (features[:, 0], features[:, -1])]
    per_view = [p / p.sum(axis=1, keepdims=True) for p in per_view]
    assert not np.allclose(per_view[0], per_view[1], atol=1e-3)
    np.testing.assert_allclose(targets, (per_view[0] + per_view[1]) / 2, rtol=1e-5, atol=1e-6)


def test_the_cache_is_read_back_and_keyed_by_audio_and_teacher(setting, tmp_path, monkeypatch):
    config, waves, norm = setting
    cache = tmp_path / "cache"
    teacher = constant_teacher([0.0, np.log(2.0), 0.0], config, tmp_path / "t.keras")
    first = st.soft_targets(teacher, waves, config, norm, cache)
    assert len(list(cache.glob(f"{st.CACHE_PREFIX}*.npy"))) == 1

    def never(*args, **kwargs):
        raise AssertionError("the teachers ran again although their targets were cached")

    with monkeypatch.context() as patched:
        patched.setattr(st, "compute", never)
        np.testing.assert_array_equal(st.soft_targets(teacher, waves, config, norm, cache), first)
    st.soft_targets(teacher, waves[::-1].copy(), config, norm, cache)  # other audio: another entry
    other = constant_teacher([np.log(3.0), 0.0, 0.0], config, tmp_path / "u.keras")
    np.testing.assert_allclose(st.soft_targets(other, waves, config, norm, cache)[0], [0.6, 0.2, 0.2], rtol=1e-6)
    assert len(list(cache.glob(f"{st.CACHE_PREFIX}*.npy"))) == 3


def test_a_damaged_cache_entry_is_computed_again(setting, tmp_path):
    config, waves, norm = setting
    cache = tmp_path / "cache"
    teacher = constant_teacher([0.0, np.log(2.0), 0.0], config, tmp_path / "t.keras")
    first = st.soft_targets(teacher, waves, config, norm, cache)
    (entry,) = cache.glob(f"{st.CACHE_PREFIX}*.npy")
    entry.write_bytes(entry.read_bytes()[:40])
    np.testing.assert_array_equal(st.soft_targets(teacher, waves, config, norm, cache), first)
    np.save(entry, np.full((6, 3), np.nan, np.float32))
    np.testing.assert_array_equal(st.soft_targets(teacher, waves, config, norm, cache), first)


def test_a_distilled_run_computes_its_targets_once_and_reads_them_back(exported_run, dataset_dir, tmp_path,
                                                                       monkeypatch):
    """A tiny student learns from a tiny teacher (a finished run): the first training caches the targets of
    its fitted clips; training the fold again reads them instead of running the teacher."""
    config = with_values(small_config(dataset_dir, tmp_path), {
        "data.folds": [1], "prune.enabled": False, "export.edge_eval": False,
        "distill.teacher_runs": [str(exported_run)], "distill.temperature": 2.0})
    calls = []
    compute = st.compute
    monkeypatch.setattr(st, "compute", lambda *a, **k: calls.append(len(a[1])) or compute(*a, **k))
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
    cached = list((tmp_path / "cache").glob(f"{st.CACHE_PREFIX}*.npy"))
    assert len(calls) == 1 and len(cached) == 1
    fitted = len(json.loads((run_dir / "fold1" / "split.json").read_text())["train"])
    assert calls == [fitted] and np.load(cached[0]).shape == (fitted, 3)  # only the fitted clips: no test clip
    train.run_cross_validation(config, tmp_path / "runs", progress=False, restart=True)
    assert len(calls) == 1  # read back

"""Each augmentation does what it says, is off at zero strength, and never touches eval data."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from esc_tf import augment, pipeline
from esc_tf.config import AugmentConfig, Config
from esc_tf.features import Normalization, feature_shape

SR = 16000


@pytest.fixture
def wave() -> tf.Tensor:
    t = np.arange(SR) / SR
    return tf.constant((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def test_gain_stays_within_bounds(wave):
    tf.random.set_seed(0)
    ratios = [rms(augment.random_gain(wave, 6.0)) / rms(wave) for _ in range(50)]
    assert 10 ** (-6 / 20) - 1e-4 <= min(ratios) and max(ratios) <= 10 ** (6 / 20) + 1e-4
    assert max(ratios) - min(ratios) > 0.5
    assert augment.random_gain(wave, 0.0) is wave


def test_noise_has_the_drawn_snr(wave):
    tf.random.set_seed(0)
    noisy = augment.add_noise(wave, 1.0, (20.0, 20.0)).numpy()
    snr = 10 * np.log10(np.mean(wave.numpy() ** 2) / np.mean((noisy - wave.numpy()) ** 2))
    assert snr == pytest.approx(20.0, abs=0.5)
    assert np.array_equal(augment.add_noise(wave, 0.0, (20.0, 20.0)), wave)


def test_time_shift_is_a_roll(wave):
    tf.random.set_seed(1)
    shifted = augment.time_shift(wave, 4000).numpy()
    matches = [k for k in range(-4000, 4001) if np.array_equal(np.roll(wave.numpy(), k), shifted)]
    assert matches and not np.array_equal(shifted, wave.numpy())


def test_speed_change_moves_the_pitch(wave):
    faster = augment.resample_linear(wave, tf.constant(1.1)).numpy()
    slower = augment.resample_linear(wave, tf.constant(0.9)).numpy()
    def peak_hz(x):
        return np.argmax(np.abs(np.fft.rfft(x))) * SR / len(x)
    assert faster.shape == slower.shape == (SR,)
    assert peak_hz(faster) == pytest.approx(1100, abs=3)
    assert peak_hz(slower) == pytest.approx(900, abs=3)
    assert np.all(faster[-1400:] == 0)  # played faster, the clip ends early


def test_spec_augment_masks_bands_with_zero():
    tf.random.set_seed(3)
    cfg = AugmentConfig(time_masks=2, time_mask_fraction=0.2, freq_masks=1, freq_mask_fraction=0.3)
    ones = tf.ones([13, 100])
    out = np.stack([augment.spec_augment(ones, cfg).numpy() for _ in range(20)])
    assert set(np.unique(out)) <= {0.0, 1.0} and (out == 0).any()
    zero_cols = (out == 0).all(axis=1).sum(axis=1)
    assert zero_cols.max() <= 2 * 20
    off = AugmentConfig(time_masks=0, freq_masks=0)
    assert np.array_equal(augment.spec_augment(ones, off), ones)


def test_mixup_mixes_inputs_and_labels_alike():
    tf.random.set_seed(0)
    x = tf.constant(np.arange(8, dtype=np.float32).reshape(8, 1, 1, 1))
    y = tf.one_hot(tf.range(8) % 4, 4)
    mx, my = augment.mixup(x, y, 0.4)
    assert np.allclose(my.numpy().sum(axis=1), 1.0)
    assert not np.allclose(mx.numpy(), x.numpy())
    assert augment.mixup(x, y, 0.0)[0] is x


def test_eval_pipeline_is_never_augmented_and_train_is():
    config = Config()
    config.audio.clip_seconds = 1.0
    config.train.batch_size = 4
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((6, SR))).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2], np.int32)
    norm = Normalization.identity(13)
    first = np.concatenate([x for x, _ in pipeline.eval_dataset(waves, labels, 3, config, norm).as_numpy_iterator()])
    again = np.concatenate([x for x, _ in pipeline.eval_dataset(waves, labels, 3, config, norm).as_numpy_iterator()])
    assert first.shape == (6, *feature_shape(config), 1)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, pipeline.feature_array(waves, config, norm), rtol=1e-5, atol=1e-5)
    train = pipeline.train_dataset(waves, labels, 3, config, norm, seed=0)
    epoch1 = np.concatenate([x for x, _ in train.as_numpy_iterator()])
    epoch2 = np.concatenate([x for x, _ in train.as_numpy_iterator()])
    assert epoch1.shape == first.shape and not np.allclose(epoch1, epoch2)
    config.augment.enabled = False
    plain = pipeline.train_dataset(waves, labels, 3, config, norm, seed=0)
    xs, ys = zip(*plain.as_numpy_iterator())
    xs, ys = np.concatenate(xs), np.concatenate(ys)
    order = np.argsort([np.argmax(np.all(np.isclose(first, x, atol=1e-5), axis=(1, 2, 3))) for x in xs])
    np.testing.assert_allclose(xs[order], first, atol=1e-5)
    assert set(ys.sum(axis=1)) == {1.0}  # one-hot, no mixup

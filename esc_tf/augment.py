"""Training-time augmentations as TensorFlow ops (run inside tf.data, new draws every epoch).

Waveform: random gain, additive white noise at a random SNR, circular time shift, speed
change by resampling (tempo and pitch together). Features: SpecAugment time and frequency
masks. Batch: mixup. Each is switched off by a zero strength in :class:`AugmentConfig`;
evaluation data never passes through this module.
"""
from __future__ import annotations

import tensorflow as tf

from esc_tf.config import AugmentConfig


def random_gain(wave: tf.Tensor, max_db: float) -> tf.Tensor:
    """Scale by a gain drawn uniformly in [-max_db, +max_db] dB."""
    if max_db <= 0:
        return wave
    db = tf.random.uniform([], -max_db, max_db)
    return wave * tf.pow(10.0, db / 20.0)


def add_noise(wave: tf.Tensor, prob: float, snr_db: tuple[float, float]) -> tf.Tensor:
    """With probability ``prob``, add white noise at an SNR drawn uniformly in ``snr_db``."""
    if prob <= 0:
        return wave

    def noisy() -> tf.Tensor:
        snr = tf.random.uniform([], snr_db[0], snr_db[1])
        signal_power = tf.reduce_mean(tf.square(wave)) + 1e-10
        noise_std = tf.sqrt(signal_power / tf.pow(10.0, snr / 10.0))
        return wave + tf.random.normal(tf.shape(wave)) * noise_std
    # tf.cond, not tf.where: the noise is only generated for the clips that get it
    return tf.cond(tf.random.uniform([]) < prob, noisy, lambda: wave)


def time_shift(wave: tf.Tensor, max_samples: int) -> tf.Tensor:
    """Circularly shift by up to ``max_samples`` either way."""
    if max_samples <= 0:
        return wave
    shift = tf.random.uniform([], -max_samples, max_samples + 1, dtype=tf.int32)
    return tf.roll(wave, shift, axis=0)


def resample_linear(wave: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
    """Play ``wave`` at ``rate`` times its speed (linear interpolation), keeping its length."""
    length = tf.shape(wave)[0]
    positions = tf.range(length, dtype=tf.float32) * rate
    left = tf.cast(tf.floor(positions), tf.int32)
    frac = positions - tf.cast(left, tf.float32)
    valid = left < length - 1
    left = tf.minimum(left, length - 2)
    out = tf.gather(wave, left) * (1.0 - frac) + tf.gather(wave, left + 1) * frac
    return tf.where(valid, out, tf.zeros_like(out))  # slowed-down clips end in silence


def speed_change(wave: tf.Tensor, prob: float, speed_range: tuple[float, float]) -> tf.Tensor:
    """With probability ``prob``, time-stretch and pitch-shift together by resampling."""
    if prob <= 0:
        return wave
    rate = tf.random.uniform([], speed_range[0], speed_range[1])
    return tf.cond(tf.random.uniform([]) < prob, lambda: resample_linear(wave, rate), lambda: wave)


def augment_waveform(wave: tf.Tensor, config: AugmentConfig, sample_rate: int) -> tf.Tensor:
    """All waveform augmentations of ``config`` on one clip ``[samples]``."""
    wave = speed_change(wave, config.speed_prob, tuple(config.speed_range))
    wave = time_shift(wave, int(config.shift_seconds * sample_rate))
    wave = random_gain(wave, config.gain_db)
    return add_noise(wave, config.noise_prob, tuple(config.noise_snr_db))


def _mask_axis(feats: tf.Tensor, axis: int, count: int, max_width: int) -> tf.Tensor:
    """Zero ``count`` random bands of up to ``max_width`` along ``axis`` of ``[coeffs, frames]``."""
    size = tf.shape(feats)[axis]
    index = tf.range(size)
    for _ in range(count):
        width = tf.random.uniform([], 0, max_width + 1, dtype=tf.int32)
        start = tf.random.uniform([], 0, tf.maximum(size - width, 0) + 1, dtype=tf.int32)
        keep = tf.logical_or(index < start, index >= start + width)
        shape = [-1, 1] if axis == 0 else [1, -1]
        feats = feats * tf.cast(tf.reshape(keep, shape), feats.dtype)
    return feats


def spec_augment(feats: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """SpecAugment masks on normalised ``[coefficients, frames]`` features (0 = the mean)."""
    coeffs, frames = feats.shape
    feats = _mask_axis(feats, 1, config.time_masks, int(config.time_mask_fraction * frames))
    return _mask_axis(feats, 0, config.freq_masks, int(config.freq_mask_fraction * coeffs))


def mixup(x: tf.Tensor, y: tf.Tensor, alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Mix each example of a batch with a shuffled partner, weight ~ Beta(alpha, alpha)."""
    if alpha <= 0:
        return x, y
    batch = tf.shape(x)[0]
    g1 = tf.random.gamma([batch], alpha)
    g2 = tf.random.gamma([batch], alpha)
    lam = g1 / (g1 + g2)
    partner = tf.random.shuffle(tf.range(batch))
    lam_x = tf.reshape(lam, [-1] + [1] * (len(x.shape) - 1))
    mixed_x = lam_x * x + (1.0 - lam_x) * tf.gather(x, partner)
    mixed_y = lam[:, None] * y + (1.0 - lam[:, None]) * tf.gather(y, partner)
    return mixed_x, mixed_y

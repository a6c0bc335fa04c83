"""Training-time augmentations as TensorFlow ops (run inside tf.data, new draws every epoch).

The expensive part of the front end (STFT + mel filters) runs once per fold; the waveform
augmentations are applied to those cached mel magnitudes, a batch ``[clips, frames, mels]`` at
a time with independent draws per clip, which is why they cost almost nothing per epoch:

- random gain: exact (the mel magnitudes are linear in the amplitude);
- circular time shift in whole hops: the frames of the waveform rolled by ``k * hop`` samples,
  exactly, except the ``k`` frames that wrap around the end (off by ``frame - hop`` samples);
- white noise at a random SNR: magnitudes of real white noise through the same front end
  (a bank computed once), scaled to the SNR and added in power, ``sqrt(S^2 + N^2)`` — the
  expected value for uncorrelated phases, measured against the waveform computation in
  ``tests/test_augment.py``;
- speed change (tempo and pitch together): the frames are resampled in time by the rate and
  each mel band reads the frequency ``f / rate``, as resampling the waveform would do.

Then on normalised features: a random whole-band mel shift (log-mel); Freq-MixStyle (each band's mean and
spread over time mixed with another clip's); SpecAugment time and frequency masks; mixup of the model
inputs. Each is switched off by a zero strength in :class:`AugmentConfig`; evaluation data never passes here.

Every draw comes from a ``tf.random.Generator`` passed in: its state lives in a variable, so a
tf.data pipeline draws new values on every pass (epoch) and is still reproducible from a seed.
Plain ``tf.random`` ops inside a dataset function restart with each new iterator and repeat
the same draws every epoch once a global seed is set.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from esc_tf.audio.features import check_mel_shift, mel_magnitudes
from esc_tf.config import AugmentConfig, ConfigError, FeatureConfig


def _clips(mel: tf.Tensor) -> tf.Tensor:
    return tf.shape(mel)[0]


def _size(x: tf.Tensor, axis: int) -> int | tf.Tensor:
    """The static size of ``axis`` when known (keeps shapes static for Keras), else the dynamic one."""
    return x.shape[axis] if x.shape[axis] is not None else tf.shape(x)[axis]


def _draw_indices(rng: tf.random.Generator, count: tf.Tensor, low: tf.Tensor | int,
                  high: tf.Tensor | int) -> tf.Tensor:
    """``count`` integers, each uniform in ``[low, high]`` (bounds may differ per clip)."""
    low_f, high_f = tf.cast(low, tf.float32), tf.cast(high, tf.float32)
    u = rng.uniform([count])
    return tf.cast(tf.minimum(tf.floor(low_f + u * (high_f - low_f + 1.0)), high_f), tf.int32)


def random_gain(mel: tf.Tensor, max_db: float, rng: tf.random.Generator) -> tf.Tensor:
    """Scale each clip of ``[clips, frames, mels]`` by a gain drawn uniformly in [-max_db, +max_db] dB."""
    if max_db <= 0:
        return mel
    db = rng.uniform([_clips(mel), 1, 1], -max_db, max_db)
    return mel * tf.pow(10.0, db / 20.0)


def white_noise_bank(features: FeatureConfig, sample_rate: int, clip_samples: int, count: int = 16,
                     seed: int = 0) -> np.ndarray:
    """Mel magnitudes ``[count, frames, mels]`` of unit-variance white noise clips."""
    noise = np.random.default_rng(seed).standard_normal((count, clip_samples)).astype(np.float32)
    return mel_magnitudes(tf.constant(noise), features, sample_rate).numpy()


def _roll_frames(mel: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """``np.roll(mel[i], shift[i], axis=0)`` for every clip ``i`` of ``[clips, frames, mels]``."""
    frames = _size(mel, 1)
    source = tf.math.floormod(tf.range(frames)[None, :] - shift[:, None], frames)
    return tf.gather(mel, source, axis=1, batch_dims=1)


def _apply_to_some(mel: tf.Tensor, prob: float, rng: tf.random.Generator,
                   change: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> tf.Tensor:
    """``change(mel[chosen], chosen)`` for a random ``prob`` share of the clips; the others unchanged.

    Only the chosen clips are computed: over a whole epoch that is most of the cost saved.
    """
    chosen = tf.where(rng.uniform([_clips(mel)]) < prob)  # [n, 1] row numbers
    return tf.tensor_scatter_nd_update(mel, chosen, change(tf.gather_nd(mel, chosen), chosen[:, 0]))


def add_in_power(mel: tf.Tensor, other: tf.Tensor) -> tf.Tensor:
    """Mel magnitudes of two sounds played together: ``sqrt(A^2 + B^2)``, the expected magnitude of a sum
    of sounds with uncorrelated phases (the noise and between-class mixing both add sounds this way)."""
    return tf.sqrt(tf.square(mel) + tf.square(other))


def add_noise(mel: tf.Tensor, signal_power: tf.Tensor, bank: tf.Tensor, prob: float,
              snr_db: tuple[float, float], rng: tf.random.Generator) -> tf.Tensor:
    """With probability ``prob`` per clip, add white noise at an SNR drawn uniformly in ``snr_db``.

    ``signal_power`` ``[clips]`` is each clip's mean squared sample; ``bank`` comes from
    :func:`white_noise_bank`. A random bank entry, rolled in time, is scaled to the SNR.
    """
    if prob <= 0:
        return mel

    def noisy(some: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
        clips, frames = _clips(some), _size(some, 1)
        snr = rng.uniform([clips], snr_db[0], snr_db[1])
        noise_std = tf.sqrt((tf.gather(signal_power, rows) + 1e-10) / tf.pow(10.0, snr / 10.0))
        noise = tf.gather(bank, _draw_indices(rng, clips, 0, tf.shape(bank)[0] - 1))
        noise = _roll_frames(noise, _draw_indices(rng, clips, 0, frames - 1)) * noise_std[:, None, None]
        return add_in_power(some, noise)
    return _apply_to_some(mel, prob, rng, noisy)


def time_shift(mel: tf.Tensor, max_frames: int, rng: tf.random.Generator) -> tf.Tensor:
    """Circularly shift each clip by up to ``max_frames`` frames either way."""
    if max_frames <= 0:
        return mel
    return _roll_frames(mel, _draw_indices(rng, _clips(mel), -max_frames, max_frames))


def _linear_weights(positions: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Left neighbour index and fraction for linear interpolation at ``positions`` in ``[0, size - 1]``."""
    positions = tf.clip_by_value(positions, 0.0, size - 1.0)
    left = tf.minimum(tf.cast(tf.floor(positions), tf.int32), size - 2)
    return left, positions - tf.cast(left, tf.float32)


def _hz_to_mel(hz: tf.Tensor) -> tf.Tensor:
    return 1127.0 * tf.math.log1p(hz / 700.0)  # the HTK scale tf.signal uses


def resample_mel(mel: tf.Tensor, rate: tf.Tensor, features: FeatureConfig) -> tf.Tensor:
    """Mel magnitudes ``[clips, frames, mels]`` of each clip played at ``rate[i]`` times its speed.

    Frequency: band ``m`` (centre ``f_m``) reads the input at ``f_m / rate``, interpolated
    between neighbouring bands (one small matrix product per clip).
    Time: output frame ``t`` reads input frame ``t * rate``, interpolated; past the end, silence.
    """
    frames, bands = mel.shape[1], features.num_mel_bins
    low = _hz_to_mel(tf.constant(features.fmin, tf.float32))
    step = (_hz_to_mel(tf.constant(features.fmax, tf.float32)) - low) / (bands + 1)
    centres_hz = 700.0 * (tf.exp((low + step * tf.range(1, bands + 1, dtype=tf.float32)) / 1127.0) - 1.0)
    # Each band's offset from its own centre, so that rate 1 is exactly the identity (no float round trip).
    moved = (_hz_to_mel(centres_hz[None, :] / rate[:, None]) - _hz_to_mel(centres_hz)[None, :]) / step
    left, frac = _linear_weights(tf.range(bands, dtype=tf.float32)[None, :] + moved, bands)
    warp = (tf.one_hot(left, bands, axis=1) * (1.0 - frac)[:, None, :]
            + tf.one_hot(left + 1, bands, axis=1) * frac[:, None, :])  # [clips, input band, output band]
    out = tf.matmul(mel, warp)
    source_frame = tf.range(frames, dtype=tf.float32)[None, :] * rate[:, None]
    left, frac = _linear_weights(source_frame, frames)
    frac = frac[:, :, None]
    out = tf.gather(out, left, batch_dims=1) * (1.0 - frac) + tf.gather(out, left + 1, batch_dims=1) * frac
    inside = (source_frame <= frames - 1.0)[:, :, None]
    return tf.where(inside, out, tf.zeros_like(out))


def speed_change(mel: tf.Tensor, prob: float, speed_range: tuple[float, float],
                 features: FeatureConfig, rng: tf.random.Generator) -> tf.Tensor:
    """With probability ``prob`` per clip, change tempo and pitch together by a rate in ``speed_range``."""
    if prob <= 0:
        return mel
    return _apply_to_some(mel, prob, rng, lambda some, _: resample_mel(
        some, rng.uniform([_clips(some)], speed_range[0], speed_range[1]), features))


def augment_mel(mel: tf.Tensor, signal_power: tf.Tensor, noise_bank: tf.Tensor | None,
                config: AugmentConfig, features: FeatureConfig, sample_rate: int,
                rng: tf.random.Generator) -> tf.Tensor:
    """All waveform-level augmentations of ``config`` on mel magnitudes ``[clips, frames, mels]``."""
    mel = speed_change(mel, config.speed_prob, tuple(config.speed_range), features, rng)
    mel = time_shift(mel, int(round(config.shift_seconds * sample_rate / features.hop_length)), rng)
    if noise_bank is not None:
        mel = add_noise(mel, signal_power, noise_bank, config.noise_prob, tuple(config.noise_snr_db), rng)
    return random_gain(mel, config.gain_db, rng)  # after the noise: the SNR does not depend on the gain


def _keep_mask(clips: tf.Tensor, size: int, count: int, max_width: int, rng: tf.random.Generator) -> tf.Tensor:
    """``[clips, size]`` 1/0 mask with ``count`` random bands of up to ``max_width`` zeroed per clip."""
    index = tf.range(size)[None, :]
    keep = tf.ones([clips, size], tf.bool)
    for _ in range(count):
        width = _draw_indices(rng, clips, 0, max_width)
        start = _draw_indices(rng, clips, tf.zeros_like(width), tf.maximum(size - width, 0))
        keep &= (index < start[:, None]) | (index >= (start + width)[:, None])
    return tf.cast(keep, tf.float32)


def spec_augment(feats: tf.Tensor, config: AugmentConfig, rng: tf.random.Generator) -> tf.Tensor:
    """SpecAugment masks on normalised ``[clips, coefficients, frames]`` features (0 = the mean)."""
    if config.time_masks <= 0 and config.freq_masks <= 0:
        return feats
    clips, coeffs, frames = _clips(feats), feats.shape[1], feats.shape[2]
    time_keep = _keep_mask(clips, frames, config.time_masks, int(config.time_mask_fraction * frames), rng)
    freq_keep = _keep_mask(clips, coeffs, config.freq_masks, int(config.freq_mask_fraction * coeffs), rng)
    return feats * freq_keep[:, :, None] * time_keep[:, None, :]


def random_mel_shift(feats: tf.Tensor, max_bands: int, rng: tf.random.Generator) -> tf.Tensor:
    """Each clip of log-mel features ``[clips, mels, frames]`` moved by its own whole number of bands, uniform
    in ``[-max_bands, max_bands]``, the edge band repeated (as :func:`esc_tf.pipeline.shift_mels`)."""
    if max_bands <= 0:
        return feats
    mels = feats.shape[1]
    bands = _draw_indices(rng, _clips(feats), -max_bands, max_bands)
    source = tf.clip_by_value(tf.range(mels)[None, :] - bands[:, None], 0, mels - 1)
    return tf.gather(feats, source, axis=1, batch_dims=1)


def freq_mixstyle(feats: tf.Tensor, prob: float, alpha: float, rng: tf.random.Generator,
                  epsilon: float = 1e-6) -> tf.Tensor:
    """Freq-MixStyle (Schmid et al., DCASE 2022): with probability ``prob`` per clip of ``[clips, bands, frames]``,
    each band is re-standardised to a mix, weight ~ Beta(alpha, alpha), of its own mean and standard deviation
    over time and those of a random partner clip: another recording chain's colour, the sound's shape kept."""
    if prob <= 0:
        return feats
    clips = _clips(feats)
    mean = tf.reduce_mean(feats, axis=2, keepdims=True)
    std = tf.sqrt(tf.math.reduce_variance(feats, axis=2, keepdims=True) + epsilon)
    partner = shuffled_order(clips, rng)
    weight = _beta(rng, clips, alpha)[:, None, None]
    mixed_mean = weight * mean + (1.0 - weight) * tf.gather(mean, partner)
    mixed_std = weight * std + (1.0 - weight) * tf.gather(std, partner)
    restyled = (feats - mean) / std * mixed_std + mixed_mean
    chosen = rng.uniform([clips]) < prob
    return tf.where(chosen[:, None, None], restyled, feats)


def shuffled_order(count: tf.Tensor, rng: tf.random.Generator) -> tf.Tensor:
    """A random permutation of ``range(count)``."""
    return tf.argsort(rng.uniform([count]))


def _beta(rng: tf.random.Generator, count: tf.Tensor, alpha: float) -> tf.Tensor:
    """``count`` draws from Beta(alpha, alpha), as a ratio of two Gamma(alpha) draws."""
    seeds = rng.make_seeds(2)
    g1 = tf.random.stateless_gamma([count], seeds[:, 0], alpha)
    g2 = tf.random.stateless_gamma([count], seeds[:, 1], alpha)
    return g1 / (g1 + g2)


def check_augment_config(config: AugmentConfig, features: FeatureConfig) -> None:
    """Refuse mel shifts or Freq-MixStyle the pipeline cannot make."""
    check_mel_shift("augment.mel_shift", config.mel_shift, features)
    if config.freq_mixstyle_prob > 0 and config.freq_mixstyle_alpha <= 0:
        raise ConfigError(f"augment.freq_mixstyle_alpha must be > 0 (Beta(alpha, alpha)), not "
                          f"{config.freq_mixstyle_alpha}")


def mixup(x: tf.Tensor, y: tf.Tensor, alpha: float, rng: tf.random.Generator) -> tuple[tf.Tensor, tf.Tensor]:
    """Mix each example of ``x`` with a shuffled partner from ``x``, weight ~ Beta(alpha, alpha)."""
    if alpha <= 0:
        return x, y
    batch = tf.shape(x)[0]
    lam = _beta(rng, batch, alpha)
    partner = shuffled_order(batch, rng)
    lam_x = tf.reshape(lam, [-1] + [1] * (len(x.shape) - 1))
    mixed_x = lam_x * x + (1.0 - lam_x) * tf.gather(x, partner)
    mixed_y = lam[:, None] * y + (1.0 - lam[:, None]) * tf.gather(y, partner)
    return mixed_x, mixed_y

"""The front end, defined once: waveform -> magnitude STFT -> mel -> log -> DCT (MFCC).

Training, evaluation, prediction and the device tables all come from here. The spectrum
is the *magnitude* (not power) so that CMSIS-DSP ``arm_mfcc_f32`` and the C front end in
``firmware_stub/`` can reproduce it with the tables from :func:`frontend_tables`.

Feature tensors are laid out ``[coefficients, frames]`` (13 x T for the default MFCC), the
image the CNN reads as ``(coefficients, frames, 1)``.

Normalisation is per coefficient, ``(x - mean) / std``, with mean and std measured on the
training clips only (:func:`normalization_stats`) and shipped to the device as constants.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from esc_tf.artifacts import Normalization
from esc_tf.config import AudioConfig, Config, ConfigError, FeatureConfig


def check_feature_config(features: FeatureConfig, audio: AudioConfig) -> None:
    """Reject settings the device front end cannot reproduce."""
    if features.frame_length != features.fft_length:
        raise ValueError("features.frame_length must equal features.fft_length (the device FFT "
                         "windows exactly one frame)")
    if features.fft_length & (features.fft_length - 1):
        raise ValueError(f"features.fft_length must be a power of two, not {features.fft_length}")
    if not 0 <= features.fmin < features.fmax <= audio.sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2 ({audio.sample_rate / 2}); "
                         f"got fmin={features.fmin}, fmax={features.fmax}")
    if features.kind == "mfcc" and not 1 <= features.num_mfcc <= features.num_mel_bins:
        raise ValueError("features.num_mfcc must be between 1 and num_mel_bins")


def num_frames(features: FeatureConfig, audio: AudioConfig) -> int:
    """Frames per clip (no padding at the end, as on the device)."""
    return 1 + (audio.clip_samples - features.frame_length) // features.hop_length


def num_coefficients(features: FeatureConfig) -> int:
    """Coefficients per frame: MFCCs for ``kind="mfcc"``, else mel bands."""
    return features.num_mfcc if features.kind == "mfcc" else features.num_mel_bins


def feature_shape(config: Config) -> tuple[int, int]:
    """``(coefficients, frames)`` of one clip."""
    return num_coefficients(config.features), num_frames(config.features, config.audio)


def views_per_clip(config: Config) -> int:
    """Model inferences a clip is scored on: ``model.time_rolls`` rotations, each at ``2 * model.mel_shifts + 1``
    mel shifts."""
    return config.model.time_rolls * (2 * config.model.mel_shifts + 1)


def check_scoring_config(config: Config) -> None:
    """Refuse more rotations than the clip has frames, or mel shifts the features cannot take."""
    frames = feature_shape(config)[1]
    if config.model.time_rolls > frames:
        raise ConfigError(f"model.time_rolls must be between 1 and the clip's {frames} frames, "
                          f"not {config.model.time_rolls}")
    check_mel_shift("model.mel_shifts", config.model.mel_shifts, config.features)


def check_mel_shift(option: str, bands: int, features: FeatureConfig) -> None:
    """Refuse a shift of ``bands`` whole mel bands (``option``) on features that are not log-mels, or as
    wide as the bands."""
    if bands and features.kind != "logmel":
        raise ConfigError(f"{option} moves log-mel bands; with features.kind {features.kind!r} it must be 0")
    if not 0 <= bands < features.num_mel_bins:
        raise ConfigError(f"{option} must be between 0 and {features.num_mel_bins - 1} (the mel bands - 1), "
                          f"not {bands}")


PEAK_FLOOR = 2.0 ** -15  # one step of 16-bit PCM: a digitally silent window is left as it is


def window_span(features: FeatureConfig, samples: int) -> int:
    """Samples that the frames of ``samples`` samples cover (the frames end before a trailing part hop)."""
    return (samples - features.frame_length) // features.hop_length * features.hop_length + features.frame_length


def level_normalized(wave: tf.Tensor, features: FeatureConfig) -> tf.Tensor:
    """``wave`` ``[..., samples]`` divided by its peak absolute sample over the samples its frames span
    (at least :data:`PEAK_FLOOR`), when ``features.peak_normalize``; otherwise ``wave`` itself.

    The device does the same per scored window: it keeps each frame's linear mel magnitudes and peak, and
    scales the window's mels by the inverse of its largest peak before the log (``firmware_stub``).
    """
    if not features.peak_normalize:
        return wave
    wave = tf.convert_to_tensor(wave, tf.float32)
    span = window_span(features, wave.shape[-1])
    peak = tf.reduce_max(tf.abs(wave[..., :span]), axis=-1, keepdims=True)
    return wave / tf.maximum(peak, PEAK_FLOOR)


def mel_weight_matrix(features: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """``[fft_length // 2 + 1, num_mel_bins]`` HTK-mel triangular filters (unnormalised)."""
    return tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=features.num_mel_bins,
        num_spectrogram_bins=features.fft_length // 2 + 1,
        sample_rate=sample_rate,
        lower_edge_hertz=features.fmin,
        upper_edge_hertz=features.fmax,
    )


def magnitude_spectrogram(wave: tf.Tensor, features: FeatureConfig) -> tf.Tensor:
    """``[..., frames, fft_length // 2 + 1]`` magnitude of the Hann-windowed STFT."""
    stft = tf.signal.stft(wave, frame_length=features.frame_length, frame_step=features.hop_length,
                          fft_length=features.fft_length, window_fn=tf.signal.hann_window)
    return tf.abs(stft)


def mel_magnitudes(wave: tf.Tensor, features: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """``[..., frames, num_mel_bins]`` mel-filtered STFT magnitudes (linear, before the log).

    The expensive part of the front end. It is linear in the waveform's amplitude, which is
    what lets training cache it once and augment in the mel domain (:mod:`esc_tf.augment`).
    """
    return tf.tensordot(magnitude_spectrogram(wave, features), mel_weight_matrix(features, sample_rate), 1)


def log_mel_spectrogram(wave: tf.Tensor, features: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """``[..., frames, num_mel_bins]`` natural log of mel-filtered magnitudes (of the level-normalised wave)."""
    return tf.math.log(mel_magnitudes(level_normalized(wave, features), features, sample_rate) + features.log_offset)


def features_from_mel(mel: tf.Tensor, features: FeatureConfig) -> tf.Tensor:
    """Mel magnitudes ``[..., frames, mels]`` -> un-normalised features ``[..., coefficients, frames]``."""
    out = tf.math.log(mel + features.log_offset)
    if features.kind == "mfcc":
        # a [mels, num_mfcc] product: the same numbers as tf.signal.mfccs_from_log_mel_spectrograms
        # (tested), at a fraction of its FFT-based cost in the per-epoch training pipeline
        out = tf.tensordot(out, tf.constant(dct_matrix(features).T), 1)
    rank = len(out.shape)
    return tf.transpose(out, list(range(rank - 2)) + [rank - 1, rank - 2])


def compute_features(wave: tf.Tensor, features: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """Waveform(s) ``[..., samples]`` -> un-normalised features ``[..., coefficients, frames]`` (of the
    level-normalised wave: :func:`level_normalized`)."""
    return features_from_mel(mel_magnitudes(level_normalized(wave, features), features, sample_rate), features)


def normalization_stats(waves: np.ndarray, config: Config, batch_size: int = 64,
                        mel: np.ndarray | None = None) -> Normalization:
    """Mean and std of every coefficient over all frames of ``waves`` (training clips only).

    ``mel``: the same clips' mel magnitudes when already computed (``pipeline.mel_cache``), so
    the STFT is not run a second time.
    """
    coeffs = num_coefficients(config.features)
    if not config.features.normalize:
        return Normalization.identity(coeffs)
    total = np.zeros(coeffs, np.float64)
    total_sq = np.zeros(coeffs, np.float64)
    count = 0
    for start in range(0, len(waves), batch_size):
        if mel is None:
            feats = compute_features(tf.constant(waves[start:start + batch_size]), config.features,
                                     config.audio.sample_rate)
        else:
            feats = features_from_mel(tf.constant(mel[start:start + batch_size]), config.features)
        feats = feats.numpy().astype(np.float64)
        total += feats.sum(axis=(0, 2))
        total_sq += (feats ** 2).sum(axis=(0, 2))
        count += feats.shape[0] * feats.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    return Normalization(mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32))


def dct_matrix(features: FeatureConfig) -> np.ndarray:
    """``[num_mfcc, num_mel_bins]`` matrix with ``mfcc = D @ log_mel``, taken from tf.signal itself."""
    with tf.init_scope():  # eager even when called while a tf.function or tf.data graph is traced
        identity = tf.eye(features.num_mel_bins)
        return tf.signal.mfccs_from_log_mel_spectrograms(identity).numpy()[:, : features.num_mfcc].T


def frontend_tables(config: Config, normalization: Normalization) -> dict[str, np.ndarray]:
    """Everything a device needs to compute the training features, as float32 arrays.

    ``window`` (periodic Hann, fft_length), ``mel`` (dense ``[bins, mels]``), ``dct``
    (``[num_mfcc, mels]``, MFCC only), ``mean`` and ``std``.
    """
    f = config.features
    tables = {
        "window": tf.signal.hann_window(f.frame_length).numpy(),
        "mel": mel_weight_matrix(f, config.audio.sample_rate).numpy(),
        "mean": normalization.mean,
        "std": normalization.std,
    }
    if f.kind == "mfcc":
        tables["dct"] = dct_matrix(f)
    return {k: np.asarray(v, np.float32) for k, v in tables.items()}

"""tf.data pipelines: decoded waveforms -> (augment) -> features -> normalise -> batches.

Training batches are augmented afresh every epoch; evaluation batches are computed once,
never augmented, and cached.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from esc_tf import augment
from esc_tf.config import Config
from esc_tf.features import Normalization, compute_features


def _features_op(config: Config, normalization: Normalization):
    def op(wave: tf.Tensor) -> tf.Tensor:
        return normalization.apply(compute_features(wave, config.features, config.audio.sample_rate))
    return op


def train_dataset(waves: np.ndarray, labels: np.ndarray, num_classes: int, config: Config,
                  normalization: Normalization, seed: int | None = None) -> tf.data.Dataset:
    """Shuffled, augmented (when enabled), batched ``(features[..., 1], one_hot)`` pairs."""
    aug = config.augment
    features = _features_op(config, normalization)
    sample_rate = config.audio.sample_rate

    def prepare(wave: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if aug.enabled:
            wave = augment.augment_waveform(wave, aug, sample_rate)
        feats = features(wave)
        if aug.enabled:
            feats = augment.spec_augment(feats, aug)
        return feats[..., None], tf.one_hot(label, num_classes)

    ds = tf.data.Dataset.from_tensor_slices((waves, labels))
    ds = ds.shuffle(len(waves), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(config.train.batch_size)
    if aug.enabled and aug.mixup_alpha > 0:
        ds = ds.map(lambda x, y: augment.mixup(x, y, aug.mixup_alpha), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(waves: np.ndarray, labels: np.ndarray, num_classes: int, config: Config,
                 normalization: Normalization) -> tf.data.Dataset:
    """Un-augmented, cached, batched ``(features[..., 1], one_hot)`` pairs in input order."""
    features = _features_op(config, normalization)
    ds = tf.data.Dataset.from_tensor_slices((waves, labels))
    ds = ds.map(lambda w, y: (features(w)[..., None], tf.one_hot(y, num_classes)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.cache().batch(config.train.batch_size).prefetch(tf.data.AUTOTUNE)


def feature_array(waves: np.ndarray, config: Config, normalization: Normalization) -> np.ndarray:
    """Normalised features ``[clips, coefficients, frames, 1]`` for models and calibration."""
    ds = tf.data.Dataset.from_tensor_slices(waves).map(
        lambda w: _features_op(config, normalization)(w)[..., None], num_parallel_calls=tf.data.AUTOTUNE)
    return np.concatenate(list(ds.batch(64).as_numpy_iterator()), axis=0) if len(waves) else \
        np.zeros((0,), np.float32)

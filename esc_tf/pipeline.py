"""tf.data pipelines: decoded waveforms -> (augment) -> features -> normalise -> batches.

Training computes the mel magnitudes of its clips once (:func:`mel_cache`) and augments them
afresh every epoch in the mel domain (see :mod:`esc_tf.augment`), so an epoch costs the
log, DCT and augmentation only, vectorised over the whole epoch. Evaluation batches are computed once, never augmented, and
cached.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from esc_tf import augment
from esc_tf.artifacts import Normalization
from esc_tf.audio.features import compute_features, feature_shape, features_from_mel, level_normalized, mel_magnitudes
from esc_tf.config import Config


def _features_op(config: Config, normalization: Normalization):
    def op(wave: tf.Tensor) -> tf.Tensor:
        return normalization.apply(compute_features(wave, config.features, config.audio.sample_rate))
    return op


def mel_cache(waves: np.ndarray, config: Config, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Mel magnitudes ``[clips, frames, mels]`` and mean squared sample ``[clips]`` of the level-normalised
    ``waves`` (:func:`esc_tf.audio.features.level_normalized`)."""
    f = config.features

    @tf.function
    def mel_and_power(w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        w = level_normalized(w, f)
        return mel_magnitudes(w, f, config.audio.sample_rate), tf.reduce_mean(tf.square(w), axis=-1)

    pairs = [mel_and_power(tf.constant(waves[i:i + batch_size], tf.float32)) for i in range(0, len(waves), batch_size)]
    mel = np.concatenate([m.numpy() for m, _ in pairs], axis=0)
    power = np.concatenate([p.numpy() for _, p in pairs], axis=0)
    return mel, power


def _batches(x: tf.Tensor, y: tf.Tensor, batch_size: int) -> tf.data.Dataset:
    """Consecutive batches of ``x`` and ``y``; whole batches are sliced in one reshape, not clip by clip."""
    count = x.shape[0]
    full = count // batch_size * batch_size
    ds = tf.data.Dataset.from_tensor_slices((tf.reshape(x[:full], [-1, batch_size, *x.shape[1:]]),
                                             tf.reshape(y[:full], [-1, batch_size, *y.shape[1:]])))
    return ds.concatenate(tf.data.Dataset.from_tensors((x[full:], y[full:]))) if full < count else ds


def cached_features(mel: np.ndarray, config: Config, normalization: Normalization,
                    batch_size: int = 64) -> np.ndarray:
    """Normalised, un-augmented features ``[clips, coefficients, frames, 1]`` from :func:`mel_cache`
    output: the same numbers as :func:`feature_array` on the waveforms, without a second STFT."""
    op = tf.function(lambda m: normalization.apply(features_from_mel(m, config.features))[..., None])
    return np.concatenate([op(tf.constant(mel[i:i + batch_size])).numpy() for i in range(0, len(mel), batch_size)])


def train_dataset(waves: np.ndarray, labels: np.ndarray, num_classes: int, config: Config,
                  normalization: Normalization, seed: int | None = None,
                  cache: tuple[np.ndarray, np.ndarray] | None = None,
                  soft_targets: np.ndarray | None = None) -> tf.data.Dataset:
    """Shuffled, augmented (when enabled), batched ``(features[..., 1], one_hot)`` pairs.

    ``cache``: :func:`mel_cache` of ``waves`` when the caller already has it.
    ``soft_targets``: a teacher's probabilities per clip ``[clips, classes]``
    (:mod:`esc_tf.stages.soft_targets`), set beside each clip's label in its target (``[clips, 2 * classes]``,
    read by :class:`esc_tf.teachers.distill.DistillationLoss`) before mixup, so mixup mixes both alike.

    Each pass over the dataset (each Keras epoch) draws a new order and new augmentations.
    The whole epoch is augmented by one ``tf.function`` called from the pipeline, then cut into
    batches. Measured by ``benchmarks/pipeline_benchmark.py``: the same ops run several times
    slower as per-batch tf.data map functions (op overhead, tf.data's own executor), and on two
    shared cores any pipeline time is taken from the training step.
    """
    aug, f, sample_rate = config.augment, config.features, config.audio.sample_rate
    augment.check_augment_config(aug, f)
    mel_array, power_array = cache if cache is not None else mel_cache(waves, config)
    mels, powers, label_ids = tf.constant(mel_array), tf.constant(power_array), tf.constant(labels, tf.int32)
    soft = None if soft_targets is None else tf.constant(np.asarray(soft_targets, np.float32))
    bank = None
    if aug.enabled and aug.noise_prob > 0:
        bank = tf.constant(augment.white_noise_bank(f, sample_rate, config.audio.clip_samples,
                                                    seed=0 if seed is None else seed))
    rng = tf.random.Generator.from_non_deterministic_state() if seed is None else tf.random.Generator.from_seed(seed)

    @tf.function
    def augmented_epoch() -> tuple[tf.Tensor, tf.Tensor]:
        order = augment.shuffled_order(len(waves), rng)
        mel, power, label = tf.gather(mels, order), tf.gather(powers, order), tf.gather(label_ids, order)
        y = tf.one_hot(label, num_classes)
        if soft is not None:
            y = tf.concat([y, tf.gather(soft, order)], axis=-1)
        if aug.enabled:
            mel = augment.augment_mel(mel, power, bank, aug, f, sample_rate, rng)
        feats = normalization.apply(features_from_mel(mel, f))
        if aug.enabled:
            feats = augment.random_mel_shift(feats, aug.mel_shift, rng)
            feats = augment.freq_mixstyle(feats, aug.freq_mixstyle_prob, aug.freq_mixstyle_alpha, rng)
            feats = augment.spec_augment(feats, aug, rng)
        x = feats[..., None]
        if aug.enabled:
            x, y = augment.mixup(x, y, aug.mixup_alpha, rng)
        return x, y

    x_shape = [len(waves), *feature_shape(config), 1]
    y_shape = [len(waves), num_classes if soft is None else 2 * num_classes]

    def epoch(_: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = tf.py_function(augmented_epoch, [], [tf.float32, tf.float32])
        return tf.ensure_shape(x, x_shape), tf.ensure_shape(y, y_shape)

    ds = tf.data.Dataset.from_tensors(0).map(epoch).flat_map(lambda x, y: _batches(x, y, config.train.batch_size))
    num_batches = -(-len(waves) // config.train.batch_size)  # known length: progress bars, pruning schedules
    return ds.apply(tf.data.experimental.assert_cardinality(num_batches)).prefetch(tf.data.AUTOTUNE)


def continuous(epoch_dataset: tf.data.Dataset, lookahead: int = 8) -> tuple[tf.data.Dataset, int]:
    """``epoch_dataset`` repeated without end, and its steps per epoch (for ``fit(steps_per_epoch=)``).

    One iterator then spans all epochs, so the prefetch buffer augments the next epoch while
    the last ``lookahead`` batches of the current one train, instead of the model waiting
    for it at every epoch start.
    """
    steps = int(epoch_dataset.cardinality().numpy())
    if steps <= 0:
        raise ValueError("continuous() needs a dataset of known, finite length (one epoch)")
    return epoch_dataset.repeat().prefetch(lookahead), steps


def eval_dataset(waves: np.ndarray, labels: np.ndarray, num_classes: int, config: Config,
                 normalization: Normalization) -> tf.data.Dataset:
    """Un-augmented, cached, batched ``(features[..., 1], one_hot)`` pairs in input order."""
    features = _features_op(config, normalization)
    ds = tf.data.Dataset.from_tensor_slices((waves, labels))
    ds = ds.map(lambda w, y: (features(w)[..., None], tf.one_hot(y, num_classes)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.cache().batch(config.train.batch_size).prefetch(tf.data.AUTOTUNE)


def shift_mels(feats: np.ndarray, bands: int) -> np.ndarray:
    """Features ``[clips, mels, frames, ...]`` moved up (``bands`` > 0) or down by whole mel bands, the edge
    band repeated: output band ``m`` is input band ``clip(m - bands, 0, mels - 1)``."""
    source = np.clip(np.arange(feats.shape[1]) - bands, 0, feats.shape[1] - 1)
    return feats[:, source]


def model_inputs(feats: np.ndarray, config: Config) -> np.ndarray:
    """Clip features ``[clips, coefficients, frames, 1]`` -> every input a clip is scored on, a clip's
    inputs consecutive: the clip moved by each mel shift ``-model.mel_shifts`` .. ``+model.mel_shifts``
    (:func:`shift_mels`), each of those rotated in time by 0, 1, ..., ``model.time_rolls - 1`` frames
    (``np.roll``: the last frames wrap to the front)."""
    rolls, shifts = config.model.time_rolls, config.model.mel_shifts
    if rolls == 1 and shifts == 0:
        return feats
    views = [np.roll(shift_mels(feats, s), r, axis=2) for s in range(-shifts, shifts + 1) for r in range(rolls)]
    return np.stack(views, axis=1).reshape(-1, *feats.shape[1:])


def feature_array(waves: np.ndarray, config: Config, normalization: Normalization) -> np.ndarray:
    """Normalised features ``[clips, coefficients, frames, 1]`` for models and calibration."""
    ds = tf.data.Dataset.from_tensor_slices(waves).map(
        lambda w: _features_op(config, normalization)(w)[..., None], num_parallel_calls=tf.data.AUTOTUNE)
    return np.concatenate(list(ds.batch(64).as_numpy_iterator()), axis=0) if len(waves) else \
        np.zeros((0,), np.float32)

"""Conversion to ``.tflite``: float, and full-integer int8 calibrated on training clips.

int8 conversion uses int8 input and output tensors and per-channel weight scales (the
TFLite default for convolution and fully connected kernels). Calibration clips come only
from the training part of a split, drawn class-stratified, without augmentation.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf
import tf_keras as keras

from esc_tf.native_logs import native_notices_filtered


def representative_indices(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Up to ``count`` positions into ``labels``, spread evenly over the classes."""
    rng = np.random.default_rng(seed)
    if count >= len(labels):
        return np.arange(len(labels))
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picked: list[int] = []
    depth = 0
    while len(picked) < count:
        for rows in per_class:
            if depth < len(rows) and len(picked) < count:
                picked.append(int(rows[depth]))
        depth += 1
    return np.sort(np.array(picked))


def to_float_tflite(model: keras.Model) -> bytes:
    """Float32 ``.tflite`` with TFLite builtin ops only."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with native_notices_filtered():
        return converter.convert()


def to_int8_tflite(model: keras.Model, calibration: np.ndarray) -> bytes:
    """Full-integer int8 ``.tflite`` calibrated on ``calibration`` features ``[n, *input_shape]``."""
    if len(calibration) == 0:
        raise ValueError("int8 calibration needs at least one training clip")

    def representative() -> Iterator[list[np.ndarray]]:
        for x in calibration:
            yield [x[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with native_notices_filtered():
        return converter.convert()

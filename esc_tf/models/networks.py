"""AudioCNN builders (tf_keras, so tfmot can prune them) and their presets.

Input is ``(coefficients, frames, 1)``: 64 log-mels x 155 frames for the default front end
(13 MFCCs x 311 frames in ``configs/mfcc_cnn.yaml``).

- ``seed``: the original design. Conv2D 16 3x3 -> ReLU -> MaxPool 2x2 -> Conv2D 32 3x3 ->
  ReLU -> MaxPool -> Dropout 0.3 -> Flatten -> Dense 64 -> Dense classes. The Flatten head
  grows with the clip length (hundreds of KB as int8).
- ``cnn``: three Conv-BN-ReLU-MaxPool blocks (32, 64, 128 channels), global average
  pooling, dropout and a Dense classifier: under 128 KB as an int8 model whatever the
  clip length, but its TFLM arena is ~165 KB on 13 x 311 MFCCs (measured: see README).
- ``dscnn`` (the default): strided stem and depthwise-separable blocks, built for a 64 KB
  TFLM arena.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import tf_keras as keras
from tf_keras import layers

from esc_tf.config import ModelConfig

Builder = Callable[[tuple[int, int, int], int, ModelConfig], keras.Model]


def build_seed(input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig) -> keras.Model:
    """The seed AudioCNN of the original design (Flatten -> Dense 64 head)."""
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(config.dropout),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(num_classes),
    ], name="audiocnn_seed")


def _conv_block(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)  # few steps per epoch: 0.99 lags the weights
    x = layers.ReLU()(x)
    return layers.MaxPooling2D(2, padding="same")(x)


def build_cnn(input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig) -> keras.Model:
    """Conv-BN-ReLU blocks with a global-pooling head: small and independent of clip length."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (32, 64, 128):
        x = _conv_block(x, filters)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(config.dropout)(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="audiocnn_cnn")


def _separable_block(x, filters: int):
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(filters, 1, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    return layers.ReLU()(x)


def build_dscnn(input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig) -> keras.Model:
    """Strided stem + depthwise-separable blocks with pooling: built for a <= 64 KB TFLM arena.

    The strided stem (``config.stem_filters`` channels, stride 2) and the pool right after it keep
    the largest activation pair small; the wide blocks come after the feature map has shrunk. One
    block per entry of ``config.stage_filters``, a 2x2 max pool halving the map between them (none
    before the last ``config.unpooled_last_stages``), then a global mean and the classifier.
    """
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(config.stem_filters, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    pooled_gaps = max(len(config.stage_filters) - 1 - config.unpooled_last_stages, 0)
    for i, filters in enumerate(config.stage_filters):
        x = _separable_block(x, filters)
        if i < pooled_gaps:
            x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(config.dropout)(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="audiocnn_dscnn")


PRESETS: dict[str, Builder] = {"seed": build_seed, "cnn": build_cnn, "dscnn": build_dscnn}


def build_model(input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig) -> keras.Model:
    """Build the preset named in ``config``; outputs are logits (softmax is applied by the loss).

    Layer names start afresh for every model: they become the tensor names of its ``.tflite``, whose
    bytes must not depend on how many models the process built before (a deployment model trained after
    the folds equals the one ``esc-tf deploy`` trains alone)."""
    keras.backend.reset_uids()
    return PRESETS[config.preset](input_shape, num_classes, config)


def recalibrate_batch_norm(model: keras.Model, features: np.ndarray, batch_size: int = 64) -> None:
    """Set every BatchNormalization layer's moving mean and variance to the exact statistics of
    its input over ``features`` (un-augmented training clips), layer by layer in order.

    The moving averages Keras keeps are biased toward their initial values (mean 0, variance 1)
    and toward augmented inputs; after a short training (few steps) the initial variance can
    dominate and an otherwise trained network predicts one class at inference time.
    """
    norms = [i for i, layer in enumerate(model.layers) if isinstance(layer, layers.BatchNormalization)]
    if not norms:
        return
    # Probe a fresh clone: a model returned by tfmot's strip_pruning keeps layer inputs that point into
    # the wrapped model's graph, so sub-models cannot be cut from it directly.
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    for i in norms:
        probe = keras.Model(twin.inputs, twin.layers[i].input)
        total = total_sq = 0.0
        count = 0
        for start in range(0, len(features), batch_size):
            acts = probe(features[start:start + batch_size], training=False).numpy().astype(np.float64)
            axes = tuple(range(acts.ndim - 1))
            total = total + acts.sum(axis=axes)
            total_sq = total_sq + np.square(acts).sum(axis=axes)
            count += acts.size // acts.shape[-1]
        mean = (total / count).astype(np.float32)
        variance = np.maximum(total_sq / count - (total / count) ** 2, 0.0).astype(np.float32)
        for target in (twin.layers[i], model.layers[i]):  # the twin too: later probes must see this layer's new statistics
            target.moving_mean.assign(mean)
            target.moving_variance.assign(variance)


def as_if_trained(model: keras.Model, seed: int = 0) -> keras.Model:
    """Give ``model`` (in place) distinct random biases and BatchNorm parameters and statistics, as training
    leaves them; returns it.

    Converted untrained, the zero biases and identity BatchNorms fold into identical bias tensors, which the
    TFLite converter stores once: the int8 file comes out 3-6 KB smaller than the trained model's.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, variance = (w.shape for w in layer.get_weights())
            layer.set_weights([1 + 0.1 * rng.standard_normal(gamma), 0.1 * rng.standard_normal(beta),
                               0.1 * rng.standard_normal(mean), 1 + 0.1 * rng.random(variance)])
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(0.1 * rng.standard_normal(layer.bias.shape))
    return model


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference, from the Conv, depthwise Conv and Dense layers."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            macs += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            in_c = layer.input.shape[-1] // layer.groups
            macs += h * w * c * layer.kernel_size[0] * layer.kernel_size[1] * in_c
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)


def save_model(model: keras.Model, path: Path) -> Path:
    """Save ``model`` as ``path`` (``.keras``) whole or not at all: Keras writes a temporary file in the same
    folder, renamed over ``path`` once complete, so a full disk leaves the previous model, not half of one."""
    path = Path(path)
    partial = path.with_name(f".partial-{path.name}")  # Keras needs the .keras suffix to pick its format
    try:
        model.save(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path

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

from typing import Callable

import numpy as np
import tf_keras as keras
from tf_keras import layers

from esc_tf.config import ConfigError, ModelConfig

ENSEMBLE_OUTPUT = "ensemble_logits"  # the layer averaging the branches' logits (model.branches > 1)
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


POOLS: dict[str, Callable[[], layers.Layer]] = {
    "max": lambda: layers.MaxPooling2D(2, padding="same"),
    "max3": lambda: layers.MaxPooling2D(3, strides=2, padding="same"),
    "avg3": lambda: layers.AveragePooling2D(3, strides=2, padding="same"),  # TFLite, like Keras, averages valid cells only
}


def _mean_and_max_over_time(x):
    """Mean over the mel rows, then the sum of the mean and the max over time (PANNs' clip head)."""
    x = layers.AveragePooling2D((x.shape[1], 1))(x)
    return layers.Add()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])


def _mean_over_time_per_mel_row(x):
    """Mean over time of each mel row of the last map, the rows side by side: the classifier sees in which
    part of the spectrum a pattern lies, which a global mean discards."""
    return layers.Flatten()(layers.AveragePooling2D((1, x.shape[2]))(x))


HEADS: dict[str, Callable] = {"mean": lambda x: layers.GlobalAveragePooling2D()(x), "mean+max": _mean_and_max_over_time,
                              "mel-rows": _mean_over_time_per_mel_row}


def _full_conv_block(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    return layers.ReLU()(x)


SQUEEZE_EXCITE_REDUCTION = 16  # channels / this in the bottleneck (Hu et al.'s default)


def _squeeze_excite(x):
    """Rescale the channels of ``x`` by sigmoid gates computed from their means over the map."""
    channels = x.shape[-1]
    gates = layers.GlobalAveragePooling2D(keepdims=True)(x)
    gates = layers.Conv2D(max(1, channels // SQUEEZE_EXCITE_REDUCTION), 1, activation="relu")(gates)
    gates = layers.Conv2D(channels, 1, activation="sigmoid")(gates)
    return layers.Multiply()([x, gates])


def _separable_block(x, filters: int, kernel: int = 3, squeeze_excite: bool = False):
    x = layers.DepthwiseConv2D(kernel, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(filters, 1, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    return _squeeze_excite(x) if squeeze_excite else x


def build_dscnn(input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig,
                stages: tuple[tuple[int, ...], ...] | None = None) -> keras.Model:
    """Strided stem + depthwise-separable blocks with pooling: built for a <= 64 KB TFLM arena.

    The strided stem (``config.stem_filters`` channels, ``config.stem_strides``) and the pool right
    after it keep the largest activation pair small; the wide blocks come after the feature map has shrunk.
    The first ``config.full_conv_stages`` stages use full convolutions instead of separable blocks; the separable
    blocks of the stages in ``config.squeeze_excite_stages`` end with squeeze-and-excitation.
    ``stages`` lists the blocks' widths per resolution, with a pool (``config.pool``) halving the map between stages;
    by default one block per entry of ``config.stage_filters``.
    """
    if stages is None:
        stages = tuple((filters,) for filters in config.stage_filters)
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(config.stem_filters, 3, strides=tuple(config.stem_strides), padding="same",
                      use_bias=False)(inputs)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    stem = POOLS[config.pool]()(x)
    branches = [_dscnn_branch(stem, num_classes, config, stages,
                              name=f"branch{b}_logits" if config.branches > 1 else None)
                for b in range(config.branches)]
    outputs = layers.Average(name=ENSEMBLE_OUTPUT)(branches) if len(branches) > 1 else branches[0]
    return keras.Model(inputs, outputs, name="audiocnn_dscnn")


def _dscnn_branch(x, num_classes: int, config: ModelConfig, stages: tuple[tuple[int, ...], ...],
                  name: str | None):
    """The blocks, pools, head and classifier after the stem: logits."""
    for i, stage in enumerate(stages):
        for filters in stage:
            if i < config.full_conv_stages:
                x = _full_conv_block(x, filters)
            else:
                x = _separable_block(x, filters, config.depthwise_kernel,
                                     squeeze_excite=i + 1 in config.squeeze_excite_stages)
        if i < len(stages) - 1:
            x = POOLS[config.pool]()(x)
    x = HEADS[config.head](x)
    x = layers.Dropout(config.dropout)(x)
    return layers.Dense(num_classes, name=name)(x)


def branch_logits(model: keras.Model) -> list:
    """The logits of each branch of a ``model.branches`` ensemble (the inputs of its averaging output
    layer); empty for a network with one branch."""
    last = model.layers[-1]
    return list(last.input) if last.name == ENSEMBLE_OUTPUT else []


def build_dscnn_deep(input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig) -> keras.Model:
    """``dscnn`` with two blocks at each of the first three resolutions (issue #5 experiment;
    fixed widths, ``config.stage_filters`` does not apply). Measured: fits 64 KB of arena on
    40 log-mels with a 24-channel stem, not on the default 64 log-mels (~76 KB)."""
    return build_dscnn(input_shape, num_classes, config, stages=((48, 48), (96, 96), (128, 128), (160,)))


PRESETS: dict[str, Builder] = {"seed": build_seed, "cnn": build_cnn, "dscnn": build_dscnn,
                               "dscnn_deep": build_dscnn_deep}
BRANCHING_PRESETS = ("dscnn", "dscnn_deep")


def check_model_config(config: ModelConfig) -> None:
    """Refuse an unknown preset, pool or head, impossible stem strides or an even depthwise kernel (before any audio
    is decoded)."""
    if config.preset not in PRESETS:
        raise ConfigError(f"unknown model preset {config.preset!r}; choose from {', '.join(PRESETS)}")
    for option, choices in (("pool", POOLS), ("head", HEADS)):
        if getattr(config, option) not in choices:
            raise ConfigError(f"unknown model.{option} {getattr(config, option)!r}; choose from {', '.join(choices)}")
    strides = config.stem_strides
    if len(strides) != 2 or min(strides) < 1:
        raise ConfigError(f"model.stem_strides must be two positive (mel, frame) strides, not {strides}")
    if config.full_conv_stages < 0:
        raise ConfigError(f"model.full_conv_stages must be 0 or more, not {config.full_conv_stages}")
    separable = range(config.full_conv_stages + 1, len(config.stage_filters) + 1)
    if any(stage not in separable for stage in config.squeeze_excite_stages):
        raise ConfigError(f"model.squeeze_excite_stages must list stages of separable blocks, {separable.start} to "
                          f"{separable.stop - 1} (1 = first; model.full_conv_stages={config.full_conv_stages}), not "
                          f"{config.squeeze_excite_stages}")
    if config.branches < 1:
        raise ConfigError(f"model.branches must be 1 or more, not {config.branches}")
    if config.branches > 1 and config.preset not in BRANCHING_PRESETS:
        raise ConfigError(f"model.branches applies to the {' and '.join(BRANCHING_PRESETS)} presets, not "
                          f"{config.preset!r}")
    if config.depthwise_kernel < 1 or config.depthwise_kernel % 2 == 0:
        raise ConfigError(f"model.depthwise_kernel must be odd and positive (a centred kernel), not "
                          f"{config.depthwise_kernel}")


def build_model(input_shape: tuple[int, int, int], num_classes: int, config: ModelConfig) -> keras.Model:
    """Build the preset named in ``config``; outputs are logits (softmax is applied by the loss)."""
    check_model_config(config)
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

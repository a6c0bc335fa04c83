"""The AudioCNN presets."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from esc_tf.config import Config, ModelConfig
from esc_tf.features import feature_shape
from esc_tf.model import PRESETS, build_model


def test_seed_preset_is_the_original_design():
    model = build_model((13, 311, 1), 50, ModelConfig(preset="seed"))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dense"]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 32] and all(c.kernel_size == (3, 3) for c in convs)
    assert model.layers[4].rate == pytest.approx(0.3)
    assert [d.units for d in model.layers if isinstance(d, keras.layers.Dense)] == [64, 50]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_build_predict_and_round_trip(preset):
    model = build_model((13, 61, 1), 7, ModelConfig(preset=preset))
    x = np.random.default_rng(0).standard_normal((2, 13, 61, 1)).astype(np.float32)
    assert model(x).shape == (2, 7)
    clone = keras.Model.from_config(model.get_config()) if preset != "seed" else \
        keras.Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x), model(x), rtol=1e-5, atol=1e-5)


def test_default_preset_int8_model_is_under_128_kb():
    """Measured by converting the 50-class default model for 5 s clips to full-integer int8."""
    shape = feature_shape(Config())
    model = build_model((*shape, 1), 50, ModelConfig())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.standard_normal((1, *shape, 1)).astype(np.float32)]
                                                for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    assert len(converter.convert()) < 128 * 1024


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model preset"):
        build_model((13, 61, 1), 3, ModelConfig(preset="huge"))

"""The AudioCNN presets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

from esc_tf.artifacts import ModelError
from esc_tf.audio.features import feature_shape
from esc_tf.config import Config, ConfigError, ModelConfig, load_config, option_fields, with_value, with_values
from esc_tf.models.networks import PRESETS, build_model
from esc_tf.quantize import to_int8_tflite
from esc_tf.stages.export import check_budgets_before_training, int8_before_training


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


def test_a_models_tflite_bytes_do_not_depend_on_the_models_built_before_it():
    """The same weights give the same .tflite whether the model is the first of the process or not."""
    config = ModelConfig(preset="dscnn", stage_filters=[8, 8], unpooled_last_stages=0)
    calibration = np.random.default_rng(0).standard_normal((2, 13, 61, 1)).astype(np.float32)
    first = build_model((13, 61, 1), 5, config)
    build_model((13, 61, 1), 7, ModelConfig(preset="cnn"))  # another model in between
    later = build_model((13, 61, 1), 5, config)
    later.set_weights(first.get_weights())
    assert [layer.name for layer in later.layers] == [layer.name for layer in first.layers]
    assert to_int8_tflite(later, calibration) == to_int8_tflite(first, calibration)


def _default() -> Config:
    return Config()


RECIPES = Path(__file__).resolve().parents[2] / "configs"


def _micro_wide() -> Config:
    return load_config(RECIPES / "micro_wide.yaml")


def _most_accurate() -> Config:
    return load_config(RECIPES / "most_accurate.yaml")


@pytest.mark.parametrize("make_config", [_default, _micro_wide, _most_accurate])
def test_microcontroller_recipes_fit_128_kb_flash_and_64_kb_arena(make_config):
    """Measured: the 50-class model for the recipe's 5 s input, converted to full-integer
    int8, and the smallest arena the TFLM interpreter allocates in."""
    config = make_config()
    assert (config.export.flash_budget_bytes, config.export.arena_budget_bytes) == (128 * 1024, 64 * 1024)
    check_budgets_before_training(config, num_classes=50)  # raises ModelError over either budget


def test_a_model_over_the_arena_budget_is_refused():
    config = with_value(Config(), "model.stem_filters", 32)  # the stem's output alone: 32 x 78 x 32 int8, ~80 KB
    with pytest.raises(ModelError, match="arena"):
        check_budgets_before_training(config, num_classes=50)


def test_stage_widths_come_from_the_config():
    config = with_values(Config(), {"model.stem_filters": 8, "model.stage_filters": [12, 20]})
    model = build_model((64, 155, 1), 50, config.model)
    pointwise = [layer.filters for layer in model.layers
                 if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert pointwise == [8, 12, 20]


def test_the_dscnn_is_a_strided_stem_then_separable_blocks_with_2x2_max_pools_and_a_global_mean():
    config = with_value(Config(), "model.unpooled_last_stages", 0).model
    model = build_model((64, 155, 1), 50, config)
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert len(pools) == len(config.stage_filters)  # after the stem, then between the blocks
    assert all(layer.pool_size == (2, 2) and layer.strides == (2, 2) for layer in pools)
    assert model.layers[1].strides == (2, 2)
    assert all(layer.kernel_size == (3, 3) for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D))
    assert isinstance(model.layers[-3], keras.layers.GlobalAveragePooling2D)


def test_unpooled_last_stages_keep_the_resolution_of_the_stage_before_them():
    shapes = {}
    for unpooled in (0, 1, 2):
        model = build_model((64, 155, 1), 50, with_value(Config(), "model.unpooled_last_stages", unpooled).model)
        shapes[unpooled] = [layer.output_shape[1:3] for layer in model.layers
                            if isinstance(layer, keras.layers.DepthwiseConv2D)]
        assert model.count_params() == build_model((64, 155, 1), 50, ModelConfig()).count_params()
    assert ModelConfig().unpooled_last_stages == 2  # the default: the last two stages at 8 x 20
    assert shapes[0] == [(16, 39), (8, 20), (4, 10), (2, 5)]
    assert shapes[1] == [(16, 39), (8, 20), (4, 10), (4, 10)]
    assert shapes[2] == [(16, 39), (8, 20), (8, 20), (8, 20)]


def test_the_presets_a_config_accepts_are_the_built_ones():
    check = option_fields()["model.preset"].metadata["check"]
    assert all(check.allows(preset) for preset in PRESETS) and not check.allows("huge")
    with pytest.raises(ConfigError, match="model.preset: 'huge' is out of range"):
        with_value(Config(), "model.preset", "huge")


def test_the_size_measured_before_training_is_the_trained_models():
    """Untrained, the zero biases fold into identical tensors the converter stores once; the budget check
    gives the network trained-like biases, so a recipe it passes is not refused after hours of training."""
    config = Config()
    shape = (*feature_shape(config), 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, *shape)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = build_model(shape, 50, config.model)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(x, np.eye(50)[rng.integers(0, 50, 8)], batch_size=4, epochs=1, verbose=0)
    trained = len(to_int8_tflite(model, x[:4]))
    untrained = len(to_int8_tflite(build_model(shape, 50, config.model), x[:4]))
    assert abs(len(int8_before_training(config, 50)) - trained) < 64
    assert trained - untrained > 2000  # measured: 2,856 B for the default network


def test_a_model_is_saved_whole_or_not_at_all(tmp_path, monkeypatch):
    from esc_tf.models.networks import save_model
    model = build_model((13, 20, 1), 3, Config().model)
    path = save_model(model, tmp_path / "model.keras")
    before = path.read_bytes()

    def disk_full(target, *args, **kwargs):
        Path(target).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(model, "save", disk_full)
    with pytest.raises(OSError):
        save_model(model, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]

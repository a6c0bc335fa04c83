"""The AudioCNN presets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

from esc_tf.config import Config, ConfigError, ModelConfig, load_config
from esc_tf.evaluate import ModelError, measure_arena
from esc_tf.export import check_budgets_before_training, check_for_device, int8_before_training
from esc_tf.features import model_input_shape
from esc_tf.model import PRESETS, branch_logits, build_model
from esc_tf.quantize import to_int8_tflite


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


def _default() -> Config:
    return Config()


RECIPES = Path(__file__).resolve().parents[1] / "configs"


def _micro_wide() -> Config:
    return load_config(RECIPES / "micro_wide.yaml")


def _most_accurate() -> Config:
    return load_config(RECIPES / "most_accurate.yaml")


def _dscnn_deep_as_measured() -> Config:
    """dscnn_deep as its esc50-16k run used it: 40 log-mels, 24-channel stem."""
    config = Config()
    config.model.preset, config.model.stem_filters, config.features.num_mel_bins = "dscnn_deep", 24, 40
    return config


@pytest.mark.parametrize("make_config", [_default, _micro_wide, _most_accurate, _dscnn_deep_as_measured])
def test_microcontroller_recipes_fit_128_kb_flash_and_64_kb_arena(make_config):
    """Measured: the 50-class model for the recipe's 5 s input, converted to full-integer
    int8, and the smallest arena the TFLM interpreter allocates in."""
    config = make_config()
    assert (config.export.flash_budget_bytes, config.export.arena_budget_bytes) == (128 * 1024, 64 * 1024)
    check_budgets_before_training(config, num_classes=50)  # raises ModelError over either budget


def test_a_model_over_the_arena_budget_is_refused():
    config = _dscnn_deep_as_measured()
    config.features.num_mel_bins, config.model.stem_filters = 64, 16  # measured: ~76 KB of arena
    with pytest.raises(ModelError, match="arena"):
        check_budgets_before_training(config, num_classes=50)


def test_stage_widths_come_from_the_config():
    config = Config()
    config.model.stem_filters, config.model.stage_filters = 8, [12, 20]
    model = build_model((64, 155, 1), 50, config.model)
    pointwise = [layer.filters for layer in model.layers
                 if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert pointwise == [8, 12, 20]


@pytest.mark.parametrize("front_end, strides", [({"hop_length": 256}, [2, 4]), ({"num_mel_bins": 128}, [4, 2])])
def test_stem_strides_bring_a_finer_front_end_to_the_default_stem_output(front_end, strides):
    default = Config()
    finer = Config()
    for name, value in front_end.items():
        setattr(finer.features, name, value)
    finer.model.stem_strides = strides
    stem_outputs = []
    for config in (default, finer):
        model = build_model((*model_input_shape(config), 1), 50, config.model)
        stem = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
        stem_outputs.append(stem.output.shape)
    assert model_input_shape(finer) != model_input_shape(default)
    assert stem_outputs[0] == stem_outputs[1]


def test_the_depthwise_kernel_comes_from_the_config_and_a_5x5_micro_wide_fits_the_budgets():
    config = _micro_wide()
    config.model.depthwise_kernel = 5
    model = build_model((64, 155, 1), 50, config.model)
    kernels = {layer.kernel_size for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)}
    assert kernels == {(5, 5)}
    check_budgets_before_training(config, num_classes=50)


@pytest.mark.parametrize("kernel", [0, 4])
def test_an_even_depthwise_kernel_is_refused(kernel):
    with pytest.raises(ConfigError, match="depthwise_kernel"):
        build_model((64, 155, 1), 50, ModelConfig(depthwise_kernel=kernel))


@pytest.mark.parametrize("pool, layer_type, pool_size", [("max", keras.layers.MaxPooling2D, (2, 2)),
                                                         ("max3", keras.layers.MaxPooling2D, (3, 3)),
                                                         ("avg3", keras.layers.AveragePooling2D, (3, 3))])
def test_the_pool_comes_from_the_config_and_keeps_the_map_sizes(pool, layer_type, pool_size):
    config = ModelConfig(pool=pool)
    model = build_model((64, 155, 1), 50, config)
    pools = [layer for layer in model.layers if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D))]
    assert len(pools) == 1 + len(config.stage_filters) - 1
    assert all(type(layer) is layer_type and layer.pool_size == pool_size and layer.strides == (2, 2)
               for layer in pools)
    default_shapes = [layer.output.shape for layer in build_model((64, 155, 1), 50, ModelConfig()).layers]
    assert [layer.output.shape for layer in model.layers] == default_shapes


@pytest.mark.parametrize("option, value", [("pool", "avg3"), ("head", "mean+max"), ("head", "mel-rows"),
                                           ("full_conv_stages", 1), ("squeeze_excite_stages", [3]),
                                           ("stage_filters", [48, 128, 208, 208])])
def test_the_measured_variants_of_the_most_accurate_recipe_run_in_tflm_within_the_budgets(option, value):
    config = _most_accurate()
    setattr(config.model, option, value)
    check_budgets_before_training(config, num_classes=50)  # converts to int8 and allocates it in TFLM


def test_leading_stages_can_be_full_convolutions():
    config = ModelConfig(full_conv_stages=1, depthwise_kernel=5)
    model = build_model((64, 155, 1), 50, config)
    full = [layer.filters for layer in model.layers if type(layer) is keras.layers.Conv2D and layer.kernel_size == (3, 3)]
    assert full == [config.stem_filters, config.stage_filters[0]]
    assert [layer.kernel_size for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)] == [(5, 5)] * 3
    with pytest.raises(ConfigError, match="full_conv_stages"):
        build_model((64, 155, 1), 50, ModelConfig(full_conv_stages=-1))


@pytest.mark.parametrize("option, value", [("pool", "median"), ("head", "attention")])
def test_an_unknown_pool_or_head_is_refused(option, value):
    with pytest.raises(ConfigError, match=f"model.{option}"):
        build_model((64, 155, 1), 50, ModelConfig(**{option: value}))


def test_the_mean_and_max_head_is_the_mean_over_mels_then_mean_plus_max_over_time():
    model = build_model((64, 155, 1), 50, ModelConfig(head="mean+max", stem_filters=4, stage_filters=[6, 8]))
    last_map = next(layer for layer in model.layers if isinstance(layer, keras.layers.AveragePooling2D)).input
    probe = keras.Model(model.inputs, [last_map, model.layers[-3].output])
    maps, pooled = probe(np.random.default_rng(0).standard_normal((2, 64, 155, 1)).astype(np.float32))
    over_mels = maps.numpy().mean(axis=1)
    np.testing.assert_allclose(pooled, over_mels.mean(axis=1) + over_mels.max(axis=1), rtol=1e-5, atol=1e-6)


def test_squeeze_excitation_gates_the_channels_of_the_chosen_stages_only():
    config = ModelConfig(stem_filters=4, stage_filters=[6, 8, 10], squeeze_excite_stages=[2])
    model = build_model((64, 155, 1), 50, config)
    (gate,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Multiply)]
    block_output, gates = gate.input
    assert block_output.shape[-1] == 8 and tuple(gates.shape[1:]) == (1, 1, 8)
    probe = keras.Model(model.inputs, [block_output, gates, gate.output])
    x, g, y = probe(np.random.default_rng(0).standard_normal((2, 64, 155, 1)).astype(np.float32))
    assert 0 < g.numpy().min() and g.numpy().max() < 1  # sigmoid gates
    np.testing.assert_allclose(y, x.numpy() * g.numpy(), rtol=1e-6)
    for stages, full_conv_stages in (([3], 0), ([0], 0), ([1], 1)):  # no such stage; a full-convolution stage
        with pytest.raises(ConfigError, match="squeeze_excite_stages"):
            build_model((64, 155, 1), 50, ModelConfig(stage_filters=[6, 8], squeeze_excite_stages=stages,
                                                      full_conv_stages=full_conv_stages))


def test_the_mel_rows_head_keeps_each_mel_row_mean_over_time():
    model = build_model((64, 155, 1), 50, ModelConfig(head="mel-rows", stem_filters=4, stage_filters=[6, 8]))
    last_map = next(layer for layer in model.layers if isinstance(layer, keras.layers.AveragePooling2D)).input
    probe = keras.Model(model.inputs, [last_map, model.layers[-3].output])
    maps, pooled = probe(np.random.default_rng(0).standard_normal((2, 64, 155, 1)).astype(np.float32))
    rows, channels = maps.shape[1], maps.shape[3]
    assert rows > 1 and pooled.shape == (2, rows * channels)
    np.testing.assert_allclose(pooled, maps.numpy().mean(axis=2).reshape(2, -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strides", [[2], [2, 0], [1, 2, 2]])
def test_impossible_stem_strides_are_refused(strides):
    with pytest.raises(ConfigError, match="stem_strides"):
        build_model((64, 155, 1), 50, ModelConfig(stem_strides=strides))


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model preset"):
        build_model((13, 61, 1), 3, ModelConfig(preset="huge"))


def test_branches_share_the_stem_and_output_the_mean_of_their_logits():
    config = ModelConfig(branches=3, stem_filters=4, stage_filters=[6, 8])
    model = build_model((64, 155, 1), 5, config)
    stems = [layer for layer in model.layers if type(layer) is keras.layers.Conv2D and layer.kernel_size == (3, 3)]
    assert len(stems) == 1
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)] == \
        ["branch0_logits", "branch1_logits", "branch2_logits"]
    probe = keras.Model(model.inputs, [model.output, *branch_logits(model)])
    mean, *each = probe(np.random.default_rng(0).standard_normal((2, 64, 155, 1)).astype(np.float32))
    np.testing.assert_allclose(mean, np.mean(each, axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(each[0], each[1])  # each branch starts from its own weights
    assert branch_logits(build_model((64, 155, 1), 5, ModelConfig())) == []


def test_two_branches_need_the_arena_of_one_and_the_measured_ensemble_is_over_the_flash_budget():
    """TFLM runs the branches one after the other and the shared stem's output, the largest activation,
    is freed before the first branch runs, so a second branch adds only its per-channel data to the
    arena. configs/micro_ensemble.yaml, as measured, is 135 KB of int8 (over 128 KB); 32/96/120/120 fits."""
    config = load_config(RECIPES / "micro_ensemble.yaml")
    assert config.model.branches == 2
    with pytest.raises(ModelError, match="flash budget"):
        check_budgets_before_training(config, num_classes=50)
    config.model.stage_filters = [32, 96, 120, 120]
    fitting = check_for_device(int8_before_training(config, 50), config.export)  # raises over either budget
    config.model.branches = 1
    one = measure_arena(int8_before_training(config, 50))
    assert fitting.arena_measured - one < 10_000  # interleaved branches would hold two stem outputs: ~18 KB more


def test_the_size_measured_before_training_is_the_trained_models():
    """Untrained, the zero biases fold into identical tensors the converter stores once; the budget check
    gives the network trained-like biases, so a recipe it passes is not refused after hours of training."""
    config = Config()
    shape = (*model_input_shape(config), 1)
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


@pytest.mark.parametrize("model_config, message", [(ModelConfig(branches=0), "model.branches must be 1 or more"),
                                                   (ModelConfig(preset="cnn", branches=2), "applies to the dscnn")])
def test_impossible_branches_are_refused(model_config, message):
    with pytest.raises(ConfigError, match=message):
        build_model((64, 155, 1), 50, model_config)

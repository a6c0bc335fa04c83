"""The one config object: files, overrides and their errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from esc_tf.config import Config, ConfigError, apply_override, describe_options, load_config, save_config


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_through_files(tmp_path, suffix):
    config = apply_override(Config(), "augment.noise_snr_db=[5, 15]")
    config = apply_override(config, "data.folds=[1, 3]")
    save_config(config, tmp_path / f"c{suffix}")
    loaded = load_config(tmp_path / f"c{suffix}")
    assert loaded == config
    assert loaded.augment.noise_snr_db == (5.0, 15.0) and loaded.data.folds == [1, 3]


def test_partial_file_keeps_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 7\nmodel:\n  preset: seed\n")
    config = load_config(tmp_path / "c.yaml")
    assert config.train.epochs == 7 and config.model.preset == "seed"
    assert config.train.batch_size == Config().train.batch_size


@pytest.mark.parametrize("text, message", [
    ("train:\n  epoch: 7\n", "unknown option"),
    ("trainer:\n  epochs: 7\n", "unknown config section"),
    ("train:\n  epochs: seven\n", "train.epochs"),
    ("train:\n  epochs: 7.5\n", "integer"),
    ("augment:\n  enabled: maybe\n", "augment.enabled"),
    ("- a\n- b\n", "mapping"),
    ("train: [\n", "not valid YAML"),
])
def test_bad_files_name_the_file_and_the_option(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_overrides_are_typed():
    config = apply_override(Config(), "train.learning_rate=3e-4")
    assert config.train.learning_rate == pytest.approx(3e-4)
    assert apply_override(config, "augment.enabled=false").augment.enabled is False
    assert apply_override(config, "data.folds=2").data.folds == [2]
    for bad in ("train.lr=1", "epochs=3", "train.epochs"):
        with pytest.raises(ConfigError):
            apply_override(config, bad)


def test_every_option_is_described():
    text = describe_options()
    for section, fields in Config().to_dict().items():
        for name in fields:
            assert f"{section}.{name} =" in text


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "none.yaml")


def test_recipe_files_load_and_the_micro_recipe_is_the_default():
    configs = Path(__file__).resolve().parents[1] / "configs"
    assert load_config(configs / "micro_logmel.yaml") == Config()
    config = load_config(configs / "mfcc_cnn.yaml")
    assert (config.model.preset, config.features.kind, config.features.num_mfcc) == ("cnn", "mfcc", 13)
    wide, accurate = load_config(configs / "micro_wide.yaml"), load_config(configs / "most_accurate.yaml")
    assert accurate.model.stage_filters == wide.model.stage_filters
    assert (accurate.model.time_rolls, accurate.model.mel_shifts, accurate.augment.mel_shift) == (16, 1, 2)
    assert (accurate.train.epochs, accurate.features.log_offset) == (300, 1e-3)

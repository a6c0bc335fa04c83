"""The one config object: files, overrides, ranges, roles, retired options and their errors."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from esc_tf.artifacts import save_config
from esc_tf.config import (
    MOVED,
    RETIRED,
    SAVED_MARK,
    SECTIONS,
    Config,
    ConfigError,
    apply_override,
    config_from_dict,
    describe_options,
    load_config,
    option_fields,
    option_value,
    options_with_role,
    value_before,
    with_value,
    with_values,
)

ROOT = Path(__file__).resolve().parents[1]


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


def test_recipe_files_load_and_differ_from_the_default_only_where_they_say():
    configs = ROOT / "configs"
    default = Config()
    accurate = load_config(configs / "most_accurate.yaml")
    assert with_values(accurate, {"model.time_rolls": default.model.time_rolls,
                                  "model.mel_shifts": default.model.mel_shifts,
                                  "model.stage_filters": default.model.stage_filters,
                                  "model.unpooled_last_stages": default.model.unpooled_last_stages,
                                  "features.log_offset": default.features.log_offset,
                                  "features.peak_normalize": default.features.peak_normalize}) == default
    assert (accurate.model.time_rolls, accurate.model.mel_shifts) == (16, 1)  # 48 views
    assert (accurate.features.log_offset, default.features.log_offset) == (1e-3, 0.3)  # as each was measured
    recipes = [accurate, *(load_config(configs / name) for name in ("micro_wide.yaml", "micro_logmel.yaml",
                                                                    "mfcc_cnn.yaml"))]
    assert default.features.peak_normalize and not any(r.features.peak_normalize for r in recipes)
    assert (accurate.model.stage_filters, accurate.model.unpooled_last_stages) == ([48, 128, 192, 192], 0)
    assert (default.model.time_rolls, default.model.mel_shifts, default.augment.mel_shift) == (4, 0, 2)
    assert (default.model.stage_filters, default.model.unpooled_last_stages) == ([48, 128, 160, 160], 2)
    wide, small = load_config(configs / "micro_wide.yaml"), load_config(configs / "micro_logmel.yaml")
    assert (wide.model.stage_filters, wide.model.unpooled_last_stages) == (accurate.model.stage_filters, 0)
    assert (wide.model.time_rolls, wide.augment.mel_shift, small.model.time_rolls) == (1, 0, 1)
    assert small.model.stage_filters == [48, 96, 160, 160] and small.train.epochs == 120
    config = load_config(configs / "mfcc_cnn.yaml")
    assert (config.model.preset, config.features.kind, config.features.num_mfcc) == ("cnn", "mfcc", 13)


@pytest.mark.parametrize("key, value, allowed", [
    ("train.batch_size", 0, ">= 1"),
    ("train.epochs", -3, ">= 1"),
    ("train.learning_rate", 0.0, "> 0"),
    ("augment.noise_prob", 1.5, "in [0, 1]"),
    ("augment.speed_prob", -0.1, "in [0, 1]"),
    ("augment.freq_mixstyle_prob", 2, "in [0, 1]"),
    ("augment.mel_shift", -1, ">= 0"),
    ("augment.speed_range", [1.1, 0.9], "low <= high"),
    ("data.val_fraction", 1.0, "in [0, 1)"),
    ("data.test_size", 0.0, "in (0, 1)"),
    ("data.folds", [1, 6], "in [1, 5]"),
    ("data.subset", "esc20", "one of 'all', 'esc10', 'not-esc10'"),
    ("data.split", "random", "one of"),
    ("features.kind", "cqt", "one of 'logmel', 'mfcc'"),
    ("model.preset", "resnet", "one of"),
    ("model.dropout", 1.0, "in [0, 1)"),
    ("model.time_rolls", 0, ">= 1"),
    ("model.mel_shifts", -2, ">= 0"),
    ("train.lr_schedule", "onecycle", "one of 'cosine', 'plateau'"),
    ("distill.weight", 0.0, "in (0, 1]"),
    ("distill.temperature", 0.5, ">= 1"),
    ("prune.target_sparsity", 1.0, "in [0, 1)"),
    ("export.arena_margin", -0.1, ">= 0"),
    ("export.flash_budget_bytes", -1, ">= 0"),
    ("export.arena_budget_bytes", -1, ">= 0"),
    ("features.fft_length", 10 ** 12, "in [16, 65536]"),  # would ask for terabytes
    ("audio.clip_seconds", 1e9, "in (0, 600]"),
    ("audio.sample_rate", 10, "in [1000, 192000]"),
])
def test_values_out_of_range_are_refused_naming_the_option_value_and_range(key, value, allowed):
    for build in (lambda: with_value(Config(), key, value),
                  lambda: config_from_dict({key.split(".")[0]: {key.split(".")[1]: value}})):
        with pytest.raises(ConfigError) as err:
            build()
        message = str(err.value)
        assert message.startswith(f"{key}: ") and allowed in message and "out of range" in message


def test_a_file_with_a_value_out_of_range_names_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  batch_size: 0\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: train\.batch_size: 0 is out of range; it must be >= 1"):
        load_config(tmp_path / "c.yaml")


def test_values_at_the_edges_of_their_ranges_pass():
    config = with_values(Config(), {
        "train.batch_size": 1, "train.epochs": 1, "augment.noise_prob": 1.0, "augment.speed_prob": 0.0,
        "data.val_fraction": 0.0, "data.folds": [1, 5], "model.dropout": 0.0, "model.time_rolls": 1,
        "prune.target_sparsity": 0.0, "export.arena_margin": 0.0, "export.flash_budget_bytes": 0,
        "distill.weight": 1.0, "distill.temperature": 1.0, "train.lr_schedule": "plateau"})
    assert config.train.batch_size == 1 and config.data.folds == [1, 5] and config.distill.weight == 1.0


def test_every_recipe_and_the_defaults_pass_the_range_checks():
    assert config_from_dict(Config().to_dict()) == Config()
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        assert config_from_dict(load_config(path).to_dict()) == load_config(path)


def test_configs_are_frozen():
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train = config.train  # type: ignore[misc]
    changed = with_values(config, {"train.epochs": 3, "model.time_rolls": 2})
    assert (changed.train.epochs, changed.model.time_rolls) == (3, 2) and config.train.epochs == 300


def test_the_role_lists_are_derived_from_the_fields():
    """What transfer, rescoring and run-folder hashing need, declared on the fields."""
    assert options_with_role("network") == ("model.preset", "model.stem_filters", "model.stage_filters")
    assert options_with_role("scoring") == ("model.time_rolls", "model.mel_shifts")
    assert set(options_with_role("late")) == {
        "augment.mel_shift", "augment.freq_mixstyle_prob", "augment.freq_mixstyle_alpha", "model.time_rolls",
        "model.mel_shifts", "model.unpooled_last_stages", "train.init_from", "distill.teacher_runs",
        "distill.teacher_targets", "distill.weight", "distill.temperature",
        "features.peak_normalize"}
    with pytest.raises(ValueError, match="unknown option role"):
        options_with_role("fast")


def test_every_option_declares_its_roles_and_range_on_its_field():
    for key, f in option_fields().items():
        assert set(f.metadata) == {"check", "roles", "before"}, key
        if "late" not in f.metadata["roles"]:
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            assert f.metadata["before"] == default, key  # only a late option remembers an older behaviour
    assert len(option_fields()) == sum(len(fields) for fields in Config().to_dict().values())


def test_a_model_meta_written_by_an_older_version_still_loads():
    """The config of a model_meta.json written while the retired options existed (the one published before the
    current model), and the current published one."""
    stored = json.loads((Path(__file__).parent / "config_written_by_an_older_version.json").read_text())
    assert any(name in stored.get(key.partition(".")[0], {}) for key in RETIRED for name in [key.partition(".")[2]])
    config = config_from_dict(stored)
    assert config.model.preset == stored["model"]["preset"]
    assert config.distill.teacher_runs == stored["train"].get("teacher_runs", [])
    published = json.loads((ROOT / "tflite" / "model_meta.json").read_text())["config"]
    assert config_from_dict(published).model.time_rolls == 4


def test_a_file_esc_tf_wrote_before_an_option_existed_reads_as_what_esc_tf_did_then():
    """A run's config.yaml or a model_meta.json lacking a late option was written before it existed: it takes the
    option's value_before, not today's default; a user's partial config file takes today's defaults."""
    saved = Config().to_dict()
    del saved["model"]["time_rolls"], saved["augment"]["mel_shift"], saved["model"]["unpooled_last_stages"]
    assert (config_from_dict(saved).model.time_rolls, config_from_dict(saved).augment.mel_shift) == (4, 2)
    earlier = config_from_dict(saved, written_by_esc_tf=True)
    assert (earlier.model.time_rolls, earlier.augment.mel_shift) == (value_before("model.time_rolls"), 0) == (1, 0)
    assert (earlier.model.unpooled_last_stages, config_from_dict(saved).model.unpooled_last_stages) == (0, 2)
    assert config_from_dict(Config().to_dict(), written_by_esc_tf=True) == Config()


def test_a_config_file_is_read_as_esc_tf_wrote_it_when_it_did(tmp_path):
    """load_config finds by itself whether esc-tf wrote a file: the mark save_config writes, or a run's
    config.yaml (inputs.json or report.json beside it); a person's recipe takes today's defaults."""
    saved = Config().to_dict()
    del saved["features"]["peak_normalize"]
    text = yaml.safe_dump(saved)
    (tmp_path / "recipe.yaml").write_text(text)
    (tmp_path / "marked.yaml").write_text(SAVED_MARK + "\n" + text)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(text)
    (run / "report.json").write_text("{}")
    assert load_config(tmp_path / "recipe.yaml").features.peak_normalize is True
    assert load_config(tmp_path / "marked.yaml").features.peak_normalize is False
    assert load_config(run / "config.yaml").features.peak_normalize is False
    assert load_config(tmp_path / "recipe.yaml", written_by_esc_tf=True).features.peak_normalize is False
    save_config(Config(), tmp_path / "written.yaml")
    assert (tmp_path / "written.yaml").read_text().startswith(SAVED_MARK)
    assert load_config(tmp_path / "written.yaml") == Config()


def test_every_config_file_in_the_repository_loads():
    """Recipes and the configs of every committed report, including those written before a value was renamed."""
    paths = [*ROOT.glob("configs/*.yaml"), *ROOT.glob("reports/*/config.yaml")]
    assert len(paths) > 10
    for path in paths:
        load_config(path)
    assert load_config(ROOT / "reports" / "esc10-default" / "config.yaml").model.preset == "cnn"


@pytest.mark.parametrize("assignment, message", [
    ("train.epochs=.inf", "train.epochs: inf is not a valid int"),
    ("train.learning_rate=.nan", "train.learning_rate: nan is not a valid float .expected a finite number"),
    ("data.folds=[1.7]", r"data.folds: \[1.7\] is not a valid list\[int\] .expected an integer"),
    ("data.folds=[true]", "data.folds: .* is not a valid list"),
])
def test_values_that_are_not_numbers_of_the_option_are_refused(assignment, message):
    with pytest.raises(ConfigError, match=message):
        apply_override(Config(), assignment)


def test_retired_options_at_their_old_default_are_dropped_and_moved_ones_follow():
    old = {"model": {"branches": 1, "input_frames": 0, "stage_filters": [8, 8]},
           "augment": {"filter_db": 0.0, "mix_domain": "features"},
           "train": {"weight_decay": 0.0, "teacher_runs": ["/a/run"], "distill_weight": 0.25}}
    config = config_from_dict(old)
    assert config.model.stage_filters == [8, 8]
    assert (config.distill.teacher_runs, config.distill.weight) == (["/a/run"], 0.25)
    assert set(MOVED.values()) <= set(option_fields())


@pytest.mark.parametrize("section, name, value", [
    ("model", "branches", 2), ("augment", "filter_db", 6.0), ("train", "weight_decay", 0.01),
    ("model", "input_frames", 95), ("augment", "mix_domain", "sound"), ("train", "lr_schedule", "onecycle"),
])
def test_retired_options_or_values_are_refused_naming_the_option(section, name, value):
    with pytest.raises(ConfigError, match=rf"^{section}\.{name}: ") as err:
        config_from_dict({section: {name: value}})
    if f"{section}.{name}" in RETIRED:
        assert "removed" in str(err.value) and "docs/experiments.md" in str(err.value)


def test_overriding_a_retired_or_moved_option_says_so():
    with pytest.raises(ConfigError, match="train.label_smoothing: the option was removed"):
        with_value(Config(), "train.label_smoothing", 0.1)
    with pytest.raises(ConfigError, match="now distill.weight"):
        apply_override(Config(), "train.distill_weight=0.3")


VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12),
                   st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=4)), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*SECTIONS, "nonsense"]), st.one_of(
    VALUES, st.dictionaries(st.sampled_from(sorted({k.partition(".")[2] for k in option_fields()} | {"nonsense"})),
                            VALUES, max_size=4)), max_size=4))
def test_any_mapping_gives_a_config_or_one_config_error(values):
    """Whatever a config file holds, building it ends in a Config whose every option is in range, or in a
    ConfigError naming what is wrong: never another exception."""
    try:
        config = config_from_dict(values)
    except ConfigError as exc:
        assert str(exc)
        return
    for key, f in option_fields().items():
        check = f.metadata["check"]
        assert check is None or check.allows(option_value(config, key)), key

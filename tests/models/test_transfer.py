"""Transfer (train.init_from): a model of other classes starts a run; sources that could leak are refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from esc_tf.config import Config, ConfigError, load_config, with_value, with_values
from esc_tf.data import dataset as data
from esc_tf.models import transfer
from esc_tf.models.networks import build_model
from esc_tf.reporting.run_report import write_run_report
from esc_tf.stages import deploy as edge
from esc_tf.stages import train
from esc_tf.teachers import distill
from tests.conftest import CHANCE, CLASSES, OTHER_CLASSES, chance_of_at_least, held_out_hits, make_dataset, small_config


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory) -> Path:
    """The three ESC-10 test classes plus two classes outside ESC-10."""
    return make_dataset(tmp_path_factory.mktemp("mixed"), classes=CLASSES + OTHER_CLASSES, folds=(1, 2, 3))


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, mixed_dataset) -> Path:
    """A model of the two classes outside ESC-10, with its deploy/ model."""
    tmp = tmp_path_factory.mktemp("source")
    config = with_values(small_config(mixed_dataset, tmp),
                         {"data.subset": "not-esc10", "data.folds": [1], "prune.enabled": False})
    run_dir = train.run_cross_validation(config, tmp / "runs", progress=False)
    edge.run_edge_stages(run_dir, progress=False)
    write_run_report(run_dir, 0.0)
    return run_dir


def esc10_config(dataset: Path, tmp_path: Path, source: Path | str) -> Config:
    return with_values(small_config(dataset, tmp_path), {
        "data.subset": "esc10", "data.folds": [1], "prune.enabled": False, "export.deploy": False,
        "train.init_from": str(source)})


def test_subsets_split_the_classes_between_esc10_and_the_others(mixed_dataset):
    meta = data.read_metadata(mixed_dataset)
    assert data.class_names(data.select_subset(meta, "esc10")) == ["dog", "rain", "chainsaw"]
    assert data.class_names(data.select_subset(meta, "not-esc10")) == ["cat", "door_wood_knock"]


def test_every_layer_but_the_classifier_is_copied():
    config = Config()
    source, target = build_model((64, 40, 1), 7, config.model), build_model((64, 40, 1), 3, config.model)
    before = target.layers[-1].get_weights()
    copied = transfer.transfer_weights(source, target)
    assert copied == len([layer for layer in target.layers if layer.weights]) - 1
    for s, t in zip(source.layers[:-1], target.layers[:-1]):
        for a, b in zip(s.get_weights(), t.get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(before, target.layers[-1].get_weights()):
        np.testing.assert_array_equal(a, b)  # the classifier keeps its fresh weights
    narrower = with_value(Config(), "model.stage_filters", [48, 96, 160, 160])
    with pytest.raises(ConfigError, match="has weights"):
        transfer.transfer_weights(build_model((64, 40, 1), 7, narrower.model), target)


def test_a_run_starts_from_the_source_and_reports_it(source_run, mixed_dataset, tmp_path, monkeypatch):
    config = esc10_config(mixed_dataset, tmp_path, source_run)
    loaded = []
    original = transfer.transfer_weights
    monkeypatch.setattr(transfer, "transfer_weights", lambda s, t: loaded.append(s) or original(s, t))
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
    write_run_report(run_dir, 0.0)
    assert len(loaded) == 1 and loaded[0].output_shape[-1] == 2  # fold 1 began from the 2-class model
    result = json.loads((run_dir / "fold1" / "result.json").read_text())
    assert len(result["y_pred"]) == 6
    # two epochs from another task's features reach about 2/3 here: 48 clips keep a clear margin
    hits, clips = held_out_hits(run_dir / "fold1" / "model.keras", tmp_path / "held_out", clips_per_class=16)
    assert chance_of_at_least(hits, clips, 3) < CHANCE, (hits, clips)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["init_from"]["model_dir"] == str((source_run / "deploy").resolve())
    assert report["init_from"]["classes"] == 2 and report["init_from"]["train_seconds"] > 0
    assert "Initialised from" in (run_dir / "report.md").read_text()


def _refused(config: Config, tmp_path: Path, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train.run_cross_validation(config, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_source_that_knows_this_runs_classes_is_refused(source_run, mixed_dataset, tmp_path):
    # this run's classes now include the source's
    config = with_value(esc10_config(mixed_dataset, tmp_path, source_run), "data.subset", "all")
    _refused(config, tmp_path, "knows 2 of this run's classes")


def test_a_source_that_reads_other_features_or_builds_another_network_is_refused(source_run, mixed_dataset,
                                                                                 tmp_path):
    config = with_value(esc10_config(mixed_dataset, tmp_path, source_run), "features.num_mel_bins", 32)
    _refused(config, tmp_path, r"\[features\] settings differ.*num_mel_bins: 40 vs 32")
    for option, value, shown in (("model.preset", "dscnn", "'cnn' vs 'dscnn'"), ("model.stem_filters", 8, "16 vs 8"),
                                 ("model.stage_filters", [8, 8], r"\[48, 128, 160, 160\] vs \[8, 8\]")):
        config = with_value(esc10_config(mixed_dataset, tmp_path, source_run), option, value)
        _refused(config, tmp_path, f"builds another network.*{option}: {shown}")


def test_settings_that_do_not_shape_the_weights_may_differ(source_run, mixed_dataset, tmp_path):
    config = with_values(esc10_config(mixed_dataset, tmp_path, source_run), {"model.dropout": 0.1, "train.epochs": 7})
    names = data.select_subset(data.read_metadata(mixed_dataset), "esc10")
    assert transfer.check_source(config, data.class_names(names), names["filename"].tolist()) is not None


def _edited_source(source_run: Path, tmp_path: Path, edit) -> Path:
    """A copy of the source's deploy/ folder with its model_meta.json changed by ``edit(meta_dict)``."""
    copy = tmp_path / "edited" / "deploy"
    shutil.copytree(source_run / "deploy", copy)
    meta = json.loads((copy / "model_meta.json").read_text())
    edit(meta)
    (copy / "model_meta.json").write_text(json.dumps(meta))
    return copy.parent


def test_a_source_that_trained_on_this_datasets_clips_is_refused(source_run, mixed_dataset, tmp_path):
    clip = data.read_metadata(mixed_dataset)["filename"].iloc[0]  # an ESC-10 clip, as FLAC under another folder
    edited = _edited_source(source_run, tmp_path, lambda m: m["trained_on"].append(clip.replace(".wav", ".flac")))
    _refused(esc10_config(mixed_dataset, tmp_path, edited), tmp_path, "trained on 1 of this dataset's clips")


def test_a_source_that_was_itself_started_from_another_run_is_refused(source_run, mixed_dataset, tmp_path):
    edited = _edited_source(source_run, tmp_path, lambda m: m["config"]["train"].update(init_from="/elsewhere"))
    _refused(esc10_config(mixed_dataset, tmp_path, edited), tmp_path, "itself started from or taught")


def test_a_teacher_started_from_a_model_of_the_students_classes_is_refused(source_run, tmp_path):
    """A teacher may know the student's classes; the model it started from may not."""
    teacher = _edited_source(source_run, tmp_path, lambda m: m["config"]["train"].update(
        init_from=str(source_run)))  # a source of the same two classes
    config = load_config(source_run / "config.yaml")
    meta = json.loads((source_run / "deploy" / "model_meta.json").read_text())
    with pytest.raises(ConfigError, match="its train.init_from .* knows 2 of this run's classes"):
        distill.checked_teacher_meta(teacher / "deploy", config, meta["class_names"], [])


def test_a_missing_source_is_refused(mixed_dataset, tmp_path):
    _refused(esc10_config(mixed_dataset, tmp_path, tmp_path / "nowhere"), tmp_path, "no model.keras")

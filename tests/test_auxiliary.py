"""Auxiliary classes (train.auxiliary_dir): other classes train alongside, then leave the classifier."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from esc_tf import auxiliary, edge, train
from esc_tf.config import Config, ConfigError
from esc_tf.evaluate import ModelMeta
from esc_tf.model import build_model
from esc_tf.report import accuracy_table
from tests.conftest import CLASSES, OTHER_CLASSES, make_dataset, small_config


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory) -> Path:
    """The three ESC-10 test classes plus two classes outside ESC-10."""
    return make_dataset(tmp_path_factory.mktemp("mixed"), classes=CLASSES + OTHER_CLASSES, folds=(1, 2, 3))


def joint_config(dataset: Path, tmp_path: Path) -> Config:
    config = small_config(dataset, tmp_path)
    config.data.subset, config.data.folds = "esc10", [1]
    config.prune.enabled = False
    config.train.auxiliary_dir = str(dataset)  # its not-esc10 clips
    return config


def _refused(config: Config, tmp_path: Path, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train.run_cross_validation(config, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_keeping_classes_keeps_their_logits():
    config = Config()
    wide = build_model((64, 40, 1), 5, config.model)
    kept = auxiliary.keep_classes(wide, 3, build_model((64, 40, 1), 3, config.model))
    x = np.random.default_rng(0).normal(size=(4, 64, 40, 1)).astype(np.float32)
    assert kept.output_shape[-1] == 3
    np.testing.assert_allclose(kept(x, training=False).numpy(), wide(x, training=False).numpy()[:, :3],
                               rtol=1e-5, atol=1e-5)


def test_auxiliary_labels_follow_this_runs_classes():
    aux = auxiliary.AuxiliaryClips(np.ones((2, 4), np.float32), np.array([1, 0]), ["cat", "door_wood_knock"],
                                   ["a.wav", "b.wav"])
    waves, labels, outputs = auxiliary.with_auxiliary(np.zeros((3, 4), np.float32), np.array([0, 2, 1]), 3, aux)
    assert outputs == 5 and labels.tolist() == [0, 2, 1, 4, 3] and waves.shape == (5, 4)
    assert waves[3:].min() == 1.0


def test_a_joint_run_trains_on_both_and_keeps_this_runs_classes(mixed_dataset, tmp_path, monkeypatch):
    config = joint_config(mixed_dataset, tmp_path)
    config.export.deploy = True
    outputs = []
    original = train.build_model
    monkeypatch.setattr(train, "build_model", lambda shape, n, cfg: outputs.append(n) or original(shape, n, cfg))
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
    assert outputs == [5, 3]  # trained with 3 + 2 outputs, then cut to this run's 3
    meta = ModelMeta.for_model(run_dir / "fold1" / "model.keras")
    assert meta.class_names == ["dog", "rain", "chainsaw"]
    others = pd.read_csv(mixed_dataset / "meta" / "esc50.csv").query("not esc10")["filename"]
    assert set(others) <= set(meta.trained_on)  # the auxiliary clips are recorded as training clips
    result = json.loads((run_dir / "fold1" / "result.json").read_text())
    assert set(result["y_pred"]) <= {0, 1, 2} and result["accuracy"] > 1 / 3
    report = json.loads((run_dir / "report.json").read_text())
    assert report["auxiliary"] == {"dir": str(mixed_dataset.resolve()), "subset": "not-esc10", "classes": 2,
                                   "clips": len(others)}
    assert "Auxiliary classes" in (run_dir / "report.md").read_text()
    assert f"| {mixed_dataset.name} (esc10) + 2 auxiliary classes |" in accuracy_table([run_dir])

    edge.run_edge_stages(run_dir, progress=False)  # the int8 model and the deployment model have 3 outputs
    fold = json.loads((run_dir / "fold1" / "edge.json").read_text())
    assert set(fold["variants"]["int8_tflm"]["y_pred"]) <= {0, 1, 2}
    deployed = ModelMeta.for_model(run_dir / "deploy" / "model.keras")
    assert deployed.class_names == ["dog", "rain", "chainsaw"] and set(others) <= set(deployed.trained_on)
    assert outputs[-1] == 3 and outputs.count(5) == 2


def test_auxiliary_classes_shared_with_this_run_are_refused(mixed_dataset, tmp_path):
    config = joint_config(mixed_dataset, tmp_path)
    config.train.auxiliary_subset = "all"
    _refused(config, tmp_path, "holds 3 of this run's classes")


def test_auxiliary_clips_that_are_this_runs_clips_are_refused(mixed_dataset, tmp_path):
    renamed = tmp_path / "renamed"
    shutil.copytree(mixed_dataset, renamed)
    csv = renamed / "meta" / "esc50.csv"
    meta = pd.read_csv(csv)
    meta.loc[meta["esc10"], "category"] = "x_" + meta.loc[meta["esc10"], "category"]  # this run's clips, other names
    meta.loc[meta["esc10"], "esc10"] = False
    meta.to_csv(csv, index=False)
    config = joint_config(mixed_dataset, tmp_path)
    config.train.auxiliary_dir = str(renamed)
    _refused(config, tmp_path, "of its clips are this run's clips too")


def test_auxiliary_classes_with_teachers_are_refused(mixed_dataset, tmp_path):
    config = joint_config(mixed_dataset, tmp_path)
    config.train.teacher_runs = [str(tmp_path / "teacher")]
    with pytest.raises(ConfigError, match="use one or the other"):
        auxiliary.load_auxiliary_metadata(config, pd.read_csv(mixed_dataset / "meta" / "esc50.csv"))


def test_auxiliary_classes_with_a_branch_ensemble_are_refused(mixed_dataset, tmp_path):
    config = joint_config(mixed_dataset, tmp_path)
    config.model.preset, config.model.branches, config.export.deploy = "dscnn", 2, False
    _refused(config, tmp_path, "model.branches 2 has several")

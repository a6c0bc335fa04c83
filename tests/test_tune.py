"""Hyperparameter search and multi-seed aggregation."""
from __future__ import annotations

import json

import pytest

from esc_tf import tune
from esc_tf.config import ConfigError


def test_grid_and_random_sampling(tmp_path):
    space = {"train.learning_rate": [1e-3, 3e-4], "augment.mixup_alpha": [0.0, 0.2, 0.4]}
    grid = tune.sample_trials(space, None)
    assert len(grid) == 6 and {"train.learning_rate": 3e-4, "augment.mixup_alpha": 0.4} in grid
    draws = tune.sample_trials({"train.learning_rate": {"loguniform": [1e-4, 1e-2]},
                                "model.preset": {"choice": ["seed", "cnn"]}}, 20, seed=1)
    assert len(draws) == 20 and all(1e-4 <= d["train.learning_rate"] <= 1e-2 for d in draws)
    assert {d["model.preset"] for d in draws} == {"seed", "cnn"}
    with pytest.raises(ConfigError, match="--trials"):
        tune.sample_trials({"train.learning_rate": {"uniform": [0, 1]}}, None)


def test_space_keys_are_validated(tmp_path):
    (tmp_path / "s.yaml").write_text("train.lr: [1, 2]\n")
    with pytest.raises(ConfigError, match="train.lr"):
        tune.load_space(tmp_path / "s.yaml")


def test_search_ranks_by_validation_and_aggregates_seeds(dataset_dir, tmp_path, capsys):
    (tmp_path / "space.yaml").write_text("model.preset: [seed, dscnn]\n")
    code = tune.main(["--data-dir", str(dataset_dir), "--space", str(tmp_path / "space.yaml"), "--folds", "1",
                      "--seeds", "1,2", "--runs-root", str(tmp_path / "tune"), "--set", "audio.clip_seconds=1.0",
                      "--set", "train.epochs=2", "--set", "train.verbose=0", "--set", "data.val_fraction=0.125",
                      "--set", f"data.cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    ranked = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert len(ranked) == 2 and all(t["runs"] == 2 for t in ranked)  # 2 seeds x 1 fold
    assert ranked[0]["val_mean"] >= ranked[1]["val_mean"]
    assert len({d for t in ranked for d in t["run_dirs"]}) == 4
    assert "| rank |" in (tmp_path / "tune" / "tune.md").read_text()


def test_a_search_needs_validation_clips(dataset_dir, tmp_path, capsys):
    (tmp_path / "space.yaml").write_text("data.val_fraction: [0.0, 0.25]\n")
    code = tune.main(["--data-dir", str(dataset_dir), "--space", str(tmp_path / "space.yaml"),
                      "--set", "audio.clip_seconds=1.0", "--set", "train.epochs=1", "--set", "train.verbose=0",
                      "--runs-root", str(tmp_path / "tune")])
    assert code == 1 and "data.val_fraction" in capsys.readouterr().err
    assert not (tmp_path / "tune").exists()  # refused before any trial trained


def test_a_multi_seed_run_without_validation_clips_has_no_validation_score(dataset_dir, tmp_path):
    code = tune.main(["--data-dir", str(dataset_dir), "--folds", "1", "--seeds", "1,2", "--set", "model.preset=seed",
                      "--runs-root", str(tmp_path / "tune"), "--set", "audio.clip_seconds=1.0",
                      "--set", "train.epochs=1", "--set", "train.verbose=0",
                      "--set", f"data.cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    (trial,) = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert trial["val_mean"] is None and trial["runs"] == 2 and 0 <= trial["test_mean"] <= 1
    assert "| — |" in (tmp_path / "tune" / "tune.md").read_text()

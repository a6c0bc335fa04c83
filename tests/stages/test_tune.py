"""Hyperparameter search (Optuna over the CV folds) and multi-seed aggregation."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from esc_tf.artifacts import FoldResult
from esc_tf.cli.main import main as cli_main
from esc_tf.config import Config, ConfigError, with_value
from esc_tf.stages import tune

SPACE = """\
train.learning_rate: {loguniform: [1e-4, 1e-2]}
augment.mixup_alpha: {uniform: [0.0, 0.4]}
train.epochs: {int: [1, 3]}
model.preset: {choice: [seed, dscnn]}
augment.speed_range: [[0.9, 1.1], [0.8, 1.2]]
"""


def test_space_file_maps_to_optuna_suggestions(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)
    space = tune.load_space(tmp_path / "space.yaml")
    assert space["train.learning_rate"] == {"loguniform": [1e-4, 1e-2]}  # "1e-4" (a YAML string) coerced
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    points = [tune.suggest_point(study.ask(), space) for _ in range(30)]
    assert all(1e-4 <= p["train.learning_rate"] <= 1e-2 and 0 <= p["augment.mixup_alpha"] <= 0.4 for p in points)
    assert {p["train.epochs"] for p in points} == {1, 2, 3}
    assert {p["model.preset"] for p in points} == {"seed", "dscnn"}
    assert {tuple(p["augment.speed_range"]) for p in points} == {(0.9, 1.1), (0.8, 1.2)}
    config = tune.fold_config(Config(), points[0], seed=7, fold=2)
    assert config.train.seed == 7 and config.data.folds == [2] and config.model.preset == points[0]["model.preset"]


@pytest.mark.parametrize("entry, option", [
    ("train.lr: [1, 2]", "train.lr"),
    ("train.epochs: [abc]", "train.epochs"),
    ("train.learning_rate: {uniform: [1]}", "train.learning_rate"),
    ("train.learning_rate: {loguniform: [0, 1]}", "train.learning_rate"),
    ("train.epochs: {uniform: [1, 3]}", "train.epochs"),
    ("train.learning_rate: {normal: [0, 1]}", "train.learning_rate"),
    ("train.learning_rate: 0.001", "train.learning_rate"),
])
def test_a_malformed_space_is_refused_naming_file_and_option(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               entry: str, option: str) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(f"augment.mixup_alpha: [0.0, 0.2]\n{entry}\n")
    with pytest.raises(ConfigError, match=option):
        tune.load_space(space)
    code = cli_main(["tune", "--data-dir", str(tmp_path / "none"), "--space", str(space),
                     "--runs-root", str(tmp_path / "tune")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(space) in err and option in err
    assert not (tmp_path / "tune").exists()


# --------------------------------------------------------------------------- the search, with fake folds

SCORES = {0.01: (0.9, 0.6), 0.02: (0.8, 0.95), 0.03: (0.1, 0.1)}  # learning rate -> (validation, test)


class FakeFolds:
    """Stands in for training one fold: scores by learning rate, and remembers what it trained."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple[float, int, int]] = []
        self.stop_at = stop_at

    def __call__(self, config: Config, runs_root: Path) -> tuple[FoldResult, Path]:
        if len(self.calls) == self.stop_at:
            raise KeyboardInterrupt
        lr, fold = config.train.learning_rate, config.data.folds[0]
        self.calls.append((lr, config.train.seed, fold))
        val, test = SCORES[lr]
        result = FoldResult(name=f"fold{fold}", accuracy=test, y_true=[], y_pred=[], test_files=[],
                            epochs_trained=1, wall_seconds=0.0,
                            history={"val_loss": [1.0, 0.5], "val_accuracy": [0.0, val]})
        return result, runs_root / f"lr{lr}-seed{config.train.seed}"


@pytest.fixture
def base() -> Config:
    return with_value(Config(), "data.folds", [1, 2])


def learning_rates(trials: list[dict]) -> list[float]:
    return [t["point"]["train.learning_rate"] for t in trials]


def enqueue(out_dir: Path, rates: list[float]) -> None:
    """Fix the points the next trials of the search in ``out_dir`` draw."""
    study = optuna.create_study(storage=f"sqlite:///{out_dir / 'study.db'}", study_name=tune.STUDY_NAME,
                                direction="maximize", load_if_exists=True)
    for lr in rates:
        study.enqueue_trial({"train.learning_rate": lr})


def test_a_bad_trial_is_pruned_and_the_best_is_chosen_by_validation(base: Config, tmp_path: Path) -> None:
    space = {"train.learning_rate": {"choice": [0.01, 0.02, 0.03]}}
    enqueue(tmp_path, [0.01, 0.02, 0.03])
    folds = FakeFolds()
    tune.run_search(base, space, seeds=[1, 2], trials=3, out_dir=tmp_path, runs_root=tmp_path, run_fold=folds)
    ranked = json.loads((tmp_path / "tune.json").read_text())
    assert learning_rates(ranked) == [0.01, 0.02, 0.03]  # 0.02 has the better test score, 0.01 the better val
    assert [t["state"] for t in ranked] == ["complete", "complete", "pruned"]
    assert [t["runs"] for t in ranked] == [4, 4, 1]  # the bad trial stopped after its first fold
    assert ranked[0]["val_mean"] == pytest.approx(0.9) and ranked[0]["test_mean"] == pytest.approx(0.6)
    assert [c for c in folds.calls if c[0] == 0.03] == [(0.03, 1, 1)]
    table = (tmp_path / "tune.md").read_text()
    assert "| 1 | 0 | 0.01 | 0.9000 ± 0.0000 | 0.6000 ± 0.0000 | 4 | complete |" in table
    assert "| — | 2 | 0.03 | 0.1000 ± 0.0000 | 0.1000 ± 0.0000 | 1 | pruned |" in table


def test_a_stopped_search_resumes_without_rerunning_finished_trials(base: Config, tmp_path: Path) -> None:
    space = {"train.learning_rate": {"choice": [0.01, 0.02]}}
    enqueue(tmp_path, [0.01, 0.02])
    with pytest.raises(KeyboardInterrupt):  # stopped in the second trial's second fold
        tune.run_search(base, space, [1], 2, tmp_path, tmp_path, run_fold=FakeFolds(stop_at=3))
    resumed = FakeFolds()
    summary = tune.run_search(base, space, [1], 2, tmp_path, tmp_path, run_fold=resumed)
    assert resumed.calls == [(0.02, 1, 1), (0.02, 1, 2)]  # only the stopped trial's point, again
    assert sorted(learning_rates(summary)) == [0.01, 0.02] and all(t["runs"] == 2 for t in summary)
    again = FakeFolds()
    assert len(tune.run_search(base, space, [1], 2, tmp_path, tmp_path, run_fold=again)) == 2
    assert again.calls == []
    enqueue(tmp_path, [0.01])
    more = FakeFolds()
    assert len(tune.run_search(base, space, [1], 3, tmp_path, tmp_path, run_fold=more)) == 3
    assert more.calls == [(0.01, 1, 1), (0.01, 1, 2)]  # one new trial
    with pytest.raises(ConfigError, match="study.db.*seeds"):
        tune.run_search(base, space, [1, 2], 3, tmp_path, tmp_path, run_fold=FakeFolds())


# --------------------------------------------------------------------------- the command, on audio


def test_search_ranks_by_validation_aggregates_seeds_and_resumes(dataset_dir: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "space.yaml").write_text("train.learning_rate: {loguniform: [1e-4, 1e-2]}\n")
    argv = ["tune", "--data-dir", str(dataset_dir), "--space", str(tmp_path / "space.yaml"), "--trials", "2",
            "--folds", "1", "--seeds", "1,2", "--runs-root", str(tmp_path / "tune"), "--set", "audio.clip_seconds=1.0",
            "--set", "train.epochs=2", "--set", "train.verbose=0", "--set", "data.val_fraction=0.125",
            "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "model.preset=seed"]
    assert cli_main(argv) == 0
    ranked = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert len(ranked) == 2 and all(t["runs"] == 2 and t["state"] == "complete" for t in ranked)  # 2 seeds x 1 fold
    assert ranked[0]["val_mean"] >= ranked[1]["val_mean"]
    assert len({d for t in ranked for d in t["run_dirs"]}) == 4
    assert f"best: trial {ranked[0]['trial']} " in capsys.readouterr().out
    assert "| rank |" in (tmp_path / "tune" / "tune.md").read_text()
    results = sorted((tmp_path / "tune").glob("*/fold1/*.json"))
    stamps = [p.stat().st_mtime_ns for p in results]
    assert cli_main(argv) == 0  # resumed: both trials are done, nothing trains
    assert "fold1: train" not in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in results] == stamps
    assert json.loads((tmp_path / "tune" / "tune.json").read_text()) == ranked


def test_a_search_needs_validation_clips(dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "space.yaml").write_text("data.val_fraction: [0.0, 0.25]\n")
    code = cli_main(["tune", "--data-dir", str(dataset_dir), "--space", str(tmp_path / "space.yaml"),
                     "--set", "audio.clip_seconds=1.0", "--set", "train.epochs=1", "--set", "train.verbose=0",
                     "--runs-root", str(tmp_path / "tune")])
    assert code == 1 and "data.val_fraction" in capsys.readouterr().err
    assert not (tmp_path / "tune").exists()  # refused before any trial trained


def test_a_multi_seed_run_without_validation_clips_has_no_validation_score(dataset_dir: Path, tmp_path: Path) -> None:
    code = cli_main(["tune", "--data-dir", str(dataset_dir), "--folds", "1", "--seeds", "1,2",
                     "--set", "model.preset=seed", "--runs-root", str(tmp_path / "tune"),
                     "--set", "audio.clip_seconds=1.0", "--set", "train.epochs=1", "--set", "train.verbose=0",
                     "--set", f"data.cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    (trial,) = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert trial["val_mean"] is None and trial["runs"] == 2 and 0 <= trial["test_mean"] <= 1
    assert "| — |" in (tmp_path / "tune" / "tune.md").read_text()
    assert not (tmp_path / "tune" / "study.db").exists()  # no search, no study


def test_the_folds_of_a_search_share_one_decoded_dataset(dataset_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from esc_tf.config import with_values
    from tests.conftest import small_config
    decoded = []
    real = tune.load_waveforms
    monkeypatch.setattr(tune, "load_waveforms", lambda *a, **k: decoded.append(1) or real(*a, **k))
    base = with_values(small_config(dataset_dir, tmp_path), {"train.epochs": 1, "export.edge_eval": False,
                                                            "export.deploy": False, "train.lr_schedule": "cosine",
                                                            "data.val_fraction": 0.0})
    trainer = tune.FoldTrainer()
    results = [trainer(tune.fold_config(base, {}, seed, fold), tmp_path / "runs")[0]
               for seed in (1, 2) for fold in (1, 2)]
    assert [r.name for r in results] == ["fold1", "fold2", "fold1", "fold2"]
    assert len(decoded) == 1  # once for the search, not once per fold

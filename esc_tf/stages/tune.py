"""Hyperparameter search with Optuna, and multi-seed aggregation, over the CV folds.

The search space is a YAML/JSON mapping of ``section.option`` to a list of values (categorical),
``{choice: [...]}``, ``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}`` or ``{int: [lo, hi]}``.
Every trial is a normal cross-validation run (resumable, in its own run folder) repeated for
each seed, trained one test fold at a time: after each fold the trial reports its mean
validation accuracy so far, and a median pruner stops trials that fall behind. The study lives
in ``OUT/study.db``, so a stopped search resumes where it was.

Trials are ranked by **validation** accuracy (the early-stopping clips carved from the
training folds), never by test-fold accuracy, so choosing the winner does not peek at the
test folds; test accuracy is reported beside it, as mean ± std over seeds × folds.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml

from esc_tf.artifacts import FoldResult, load_fold_result, write_json_atomic, write_text_atomic
from esc_tf.config import Config, ConfigError, with_value, with_values
from esc_tf.data.dataset import load_dataset, load_waveforms
from esc_tf.stages.train import run_cross_validation, run_dir_for

RANGES = ("uniform", "loguniform", "int")
STUDY_NAME = "esc-tf-tune"
TPE_STARTUP_TRIALS = 5  # random draws before TPE models the results
PRUNER_STARTUP_TRIALS = 2  # finished trials before the median pruner may stop one
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
FoldRunner = Callable[[Config, Path], tuple[FoldResult, Path]]


# --------------------------------------------------------------------------- search space


def load_space(path: str | Path) -> dict[str, dict[str, list[Any]]]:
    """Read and check a search space; returns ``{option: {kind: values}}`` with values of the option's type."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read search space: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a mapping of section.option to values")
    space = {}
    for key, spec in raw.items():
        try:
            space[str(key)] = _parse_spec(str(key), spec)
        except ConfigError as exc:
            where = "" if str(key) in str(exc) else f"option {key}: "
            raise ConfigError(f"{path}: {where}{exc}") from None
    return space


def _parse_spec(key: str, spec: Any) -> dict[str, list[Any]]:
    """One entry of the space as ``{kind: values}``, each value coerced to the option's type."""
    if isinstance(spec, list) and spec:
        return {"choice": [_coerced(key, v) for v in spec]}
    kind, arg = next(iter(spec.items())) if isinstance(spec, dict) and len(spec) == 1 else (None, None)
    if kind == "choice" and isinstance(arg, list) and arg:
        return {"choice": [_coerced(key, v) for v in arg]}
    if kind in RANGES and isinstance(arg, list) and len(arg) == 2:
        lo, hi = (_coerced(key, v) for v in arg)
        if kind == "int" and not all(isinstance(v, int) and not isinstance(v, bool) for v in arg):
            raise ConfigError(f"int bounds must be integers, got {arg}")
        if kind != "int" and not isinstance(lo, float):
            raise ConfigError(f"{kind} needs a float option; use {{int: [lo, hi]}} or a list of values")
        if not lo < hi or (kind == "loguniform" and lo <= 0):
            raise ConfigError(f"{kind} bounds must satisfy {'0 < ' if kind == 'loguniform' else ''}lo < hi, "
                              f"got {arg}")
        return {kind: [lo, hi]}
    raise ConfigError(f"expected a list of values, {{choice: [...]}} or {{uniform|loguniform|int: [lo, hi]}}, "
                      f"got {spec!r}")


def _coerced(key: str, value: Any) -> Any:
    """``value`` as the config stores it for ``key`` (raises ConfigError for an unknown key or a bad value)."""
    section, _, name = key.partition(".")
    return with_value(Config(), key, value).to_dict()[section][name]


def suggest_point(trial: optuna.Trial, space: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """Draw one point of the space through the trial's ``suggest_*`` methods."""
    point = {}
    for key, spec in space.items():
        (kind, values), = spec.items()
        if kind == "choice":
            point[key] = _suggest_choice(trial, key, values)
        elif kind == "int":
            point[key] = trial.suggest_int(key, *values)
        else:
            point[key] = trial.suggest_float(key, *values, log=kind == "loguniform")
    return point


def _suggest_choice(trial: optuna.Trial, key: str, values: list[Any]) -> Any:
    """A categorical draw; Optuna stores only scalars, so lists (e.g. ranges) travel as JSON text."""
    if all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
        return trial.suggest_categorical(key, values)
    return json.loads(trial.suggest_categorical(key, [json.dumps(v) for v in values]))


def check_validation_clips(base: Config, space: dict[str, dict[str, list[Any]]]) -> None:
    """Refuse a search whose trials could have no validation clips to be ranked by."""
    key = "data.val_fraction"
    lowest = min(next(iter(space[key].values()))) if key in space else base.data.val_fraction
    if lowest <= 0:
        raise ConfigError(f"{key}: a search ranks its trials by validation accuracy, and some trial would "
                          f"have data.val_fraction {lowest}: add --set data.val_fraction=0.125 (or keep it "
                          "above 0 in the space)")


# --------------------------------------------------------------------------- one trial


def trial_base(base: Config) -> Config:
    """``base`` as a search trains it: cross-validation only, without the edge stages or a deployment model."""
    return with_values(base, {"export.edge_eval": False, "export.deploy": False})


def planned_folds(base: Config) -> list[int | None]:
    """The test folds a trial trains one after the other (``[None]``: the single stratified split)."""
    if base.data.split != "folds":
        return [None]
    return list(base.data.folds) or sorted(int(f) for f in load_dataset(base)["fold"].unique())


def fold_config(base: Config, point: dict[str, Any], seed: int, fold: int | None) -> Config:
    """``base`` with the point's values, the seed and (unless None) the one test fold applied."""
    config = with_value(base, "train.seed", seed)
    for key, value in point.items():
        config = with_value(config, key, value)
    return config if fold is None else with_value(config, "data.folds", [fold])


class FoldTrainer:
    """A :data:`FoldRunner` that trains the config's one fold in its run folder (a finished fold is reused).

    A search trains many folds on one dataset: each dataset is read and decoded once for the whole search,
    not once per fold (a point may change the data or audio options, so they key the datasets kept).
    """

    def __init__(self) -> None:
        self.datasets: dict[tuple, tuple[pd.DataFrame, np.ndarray]] = {}

    def __call__(self, config: Config, runs_root: Path) -> tuple[FoldResult, Path]:
        key = (str(config.resolved_data_dir().resolve()), config.data.subset, config.audio, config.data.cache_dir)
        if key not in self.datasets:
            meta = load_dataset(config)
            self.datasets[key] = meta, load_waveforms(meta, config.audio, config.data.cache_dir, progress=False)
        run_dir = run_cross_validation(config, runs_root, progress=False, dataset=self.datasets[key])
        name = f"fold{config.data.folds[0]}" if config.data.split == "folds" else "stratified"
        return load_fold_result(run_dir / name), run_dir


def fold_runs(base: Config, point: dict[str, Any], seeds: list[int], folds: list[int | None], runs_root: Path,
              run_fold: FoldRunner) -> Iterator[dict[str, Any]]:
    """Train the point for every seed and fold, yielding one record per finished fold."""
    for seed in seeds:
        for fold in folds:
            result, run_dir = run_fold(fold_config(base, point, seed, fold), runs_root)
            yield {"seed": seed, "fold": result.name, "val": validation_accuracy(result),
                   "test": result.accuracy, "run_dir": str(run_dir)}


def validation_accuracy(result: FoldResult) -> float | None:
    """Validation accuracy at the epoch whose weights were kept (lowest validation loss); None when
    the run had no validation clips (``data.val_fraction: 0``)."""
    if "val_loss" not in result.history:
        return None
    best = int(np.argmin(result.history["val_loss"]))
    return float(result.history["val_accuracy"][best])


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over every (seed, fold) record of one trial."""
    val = [r["val"] for r in records if r["val"] is not None]
    test = [r["test"] for r in records]
    return {"val_mean": float(np.mean(val)) if val else None,  # None: no validation clips (JSON null)
            "val_std": float(np.std(val, ddof=1)) if len(val) > 1 else 0.0,
            "test_mean": float(np.mean(test)), "test_std": float(np.std(test, ddof=1)) if len(test) > 1 else 0.0,
            "runs": len(records), "run_dirs": list(dict.fromkeys(r["run_dir"] for r in records))}


# --------------------------------------------------------------------------- the search


def open_study(out_dir: Path, setup: dict[str, Any], seed: int) -> optuna.Study:
    """The search's study in ``out_dir/study.db`` (created, or loaded to resume): TPE sampler, median pruner."""
    study = optuna.create_study(
        storage=f"sqlite:///{(out_dir / 'study.db').resolve()}", study_name=STUDY_NAME, direction="maximize",
        load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=TPE_STARTUP_TRIALS),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS))
    stored = study.user_attrs.get("setup")
    if stored is None:
        study.set_user_attr("setup", setup)
    elif stored != setup:
        changed = ", ".join(k for k in setup if stored.get(k) != setup[k])
        raise ConfigError(f"{out_dir / 'study.db'}: holds a search with other {changed}; "
                          "use another --out (or delete the file) to start a new one")
    return study


def requeue_unfinished(study: optuna.Study) -> None:
    """Queue once more the points of trials stopped before they finished (their finished folds are reused)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        stopped = t.state in (optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING)
        if stopped and t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Completed and pruned trials, in the order they ran."""
    return study.get_trials(deepcopy=False, states=FINISHED)


def objective(base: Config, space: dict[str, dict[str, list[Any]]], seeds: list[int], folds: list[int | None],
              runs_root: Path, run_fold: FoldRunner) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: mean validation accuracy over seeds × folds, reported after every fold."""
    def evaluate(trial: optuna.Trial) -> float:
        point = suggest_point(trial, space)
        trial.set_user_attr("point", point)
        print(f"[trial {trial.number}] {point} x seeds {seeds}", flush=True)
        records: list[dict[str, Any]] = []
        for step, record in enumerate(fold_runs(base, point, seeds, folds, runs_root, run_fold)):
            records.append(record)
            trial.set_user_attr("records", records)
            trial.report(aggregate(records)["val_mean"], step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return aggregate(records)["val_mean"]
    return evaluate


def trial_summary(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One row of the summary: the point, its scores so far and whether it finished or was pruned."""
    state = "pruned" if trial.state == optuna.trial.TrialState.PRUNED else "complete"
    return {"trial": trial.number, "state": state, "point": trial.user_attrs["point"],
            **aggregate(trial.user_attrs["records"])}


def run_search(base: Config, space: dict[str, dict[str, list[Any]]], seeds: list[int], trials: int,
               out_dir: Path, runs_root: Path, run_fold: FoldRunner | None = None) -> list[dict[str, Any]]:
    """Run (or resume) the search until ``trials`` trials have finished; writes the summary and returns it,
    best trial first."""
    base, run_fold = trial_base(base), run_fold or FoldTrainer()
    folds = planned_folds(base)
    out_dir.mkdir(parents=True, exist_ok=True)
    setup = {"space": space, "seeds": seeds, "folds": folds, "base": run_dir_for(base, "").name}
    study = open_study(out_dir, setup, seed=base.train.seed)
    requeue_unfinished(study)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        write_summary(out_dir, [trial_summary(t) for t in finished_trials(study)])
        row = trial_summary(trial)
        print(f"[trial {trial.number}] {row['state']}: val {row['val_mean']:.4f}, test {row['test_mean']:.4f} "
              f"± {row['test_std']:.4f} over {row['runs']} runs", flush=True)

    remaining = trials - len(finished_trials(study))
    if remaining > 0:
        study.optimize(objective(base, space, seeds, folds, runs_root, run_fold), n_trials=remaining,
                       callbacks=[after_trial])
    return write_summary(out_dir, [trial_summary(t) for t in finished_trials(study)])


def run_seeds(base: Config, seeds: list[int], out_dir: Path, runs_root: Path,
              run_fold: FoldRunner | None = None) -> dict[str, Any]:
    """Cross-validate ``base`` itself for every seed (no search); writes and returns its summary row."""
    base = trial_base(base)
    folds = planned_folds(base)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = list(fold_runs(base, {}, seeds, folds, runs_root, run_fold or FoldTrainer()))
    row = {"trial": 0, "state": "complete", "point": {}, **aggregate(records)}
    write_summary(out_dir, [row])
    return row


def write_summary(out_dir: Path, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``tune.json`` and ``tune.md``: finished trials ranked by validation accuracy, then the pruned ones;
    returns them in that order."""
    def order(t: dict[str, Any]) -> tuple[bool, float]:
        return t["state"] == "pruned", -np.inf if t["val_mean"] is None else -t["val_mean"]

    ranked = sorted(trials, key=order)
    write_json_atomic(out_dir / "tune.json", ranked)
    keys = list(dict.fromkeys(k for t in ranked for k in t["point"]))
    lines = ["# Hyperparameter search", "", "Ranked by validation accuracy (carved from the training folds); "
             "test accuracy is mean ± std over seeds × test folds. A pruned trial was stopped early, after "
             "the runs it lists.", "",
             "| rank | trial | " + " | ".join(keys) + (" | " if keys else "") + "val | test | runs | state |",
             "|---|---|" + "---|" * (len(keys) + 4)]
    for i, t in enumerate(ranked, 1):
        values = "".join(f"{_cell(t['point'].get(k))} | " for k in keys)
        val = "—" if t["val_mean"] is None else f"{t['val_mean']:.4f} ± {t['val_std']:.4f}"
        rank = "—" if t["state"] == "pruned" else str(i)
        lines.append(f"| {rank} | {t['trial']} | {values}{val} | "
                     f"{t['test_mean']:.4f} ± {t['test_std']:.4f} | {t['runs']} | {t['state']} |")
    write_text_atomic(out_dir / "tune.md", "\n".join(lines) + "\n")
    return ranked


def _cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)

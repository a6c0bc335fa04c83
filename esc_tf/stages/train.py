"""Cross-validated training of a recipe on the official folds (the train stage).

Every fold trains on the training folds only: its normalisation statistics are measured on
them, its early-stopping validation clips (when ``data.val_fraction`` > 0) are carved from
them (grouped by source recording), and its test fold is touched only for the final evaluation. Each
finished fold leaves ``fold*/result.json``; re-running the same command skips those.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import tf_keras as keras
from sklearn.metrics import accuracy_score

from esc_tf import __version__, artifacts, augment, pipeline
from esc_tf.artifacts import (
    INPUTS_FILE,
    MODEL_FILE,
    RESULT_FILE,
    FoldResult,
    ModelMeta,
    Normalization,
    check_free_space,
    check_writable,
    load_fold_result,
    save_config,
    write_json_atomic,
)
from esc_tf.audio.features import check_feature_config, check_scoring_config, feature_shape, normalization_stats
from esc_tf.config import MOVED, RETIRED, Config, ConfigError, option_value, options_with_role, value_before, with_value
from esc_tf.data import dataset as data_mod
from esc_tf.data.dataset import Split
from esc_tf.models import transfer
from esc_tf.models.networks import build_model, recalibrate_batch_norm, save_model
from esc_tf.runtime.predictors import clip_scores, keras_predictor
from esc_tf.stages.export import check_budgets_before_training
from esc_tf.stages.progress import EpochProgress
from esc_tf.stages.soft_targets import soft_targets
from esc_tf.stages.strategy import training_strategy
from esc_tf.teachers.distill import DistillationLoss, check_teachers, label_accuracy, load_teacher, uses_teachers
from esc_tf.teachers.targets import TeacherTargets, load_for_dataset

# Retired options that run-folder hashes held from the start (the others came late, and at their defaults were
# left out): hashed at the value they implied, so a run folder named while they existed keeps its name.
HASHED_RETIRED = ("train.class_weights",)


def run_dir_for(config: Config, runs_root: str | Path = "runs") -> Path:
    """A stable run folder for a config, so the same command finds and resumes it.

    Folds to run, verbosity and devices do not change the folder; everything that changes results does.
    """
    d = _results_options(config)
    d["data"]["data_dir"] = str(config.resolved_data_dir().resolve())
    fingerprint = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
    name = f"{config.resolved_data_dir().resolve().name}-{config.data.subset}-{config.model.preset}-" \
           f"{config.data.split}-{fingerprint}"
    return Path(runs_root) / name


def _results_options(config: Config) -> dict:
    """:func:`_hashed_options` without those that leave results alone: which folds run, the cache folder,
    verbosity and devices."""
    d = _hashed_options(config)
    d["data"].pop("folds")
    d["data"].pop("cache_dir")
    d["train"].pop("verbose")
    d["train"].pop("distribute")  # where a run trains does not make it another run
    return d


def recipe_fingerprint(config: Config) -> str:
    """What the folds of a run are trained and scored with, as a short hash: every option that changes
    a fold's result, but not where the dataset lies (its listing is checked on its own) nor the options of
    the stages after training (``prune.*``, ``export.*``), which ``esc-tf deploy`` may set later."""
    d = _results_options(config)
    d["data"].pop("data_dir")
    d.pop("prune", None)
    d.pop("export", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _hashed_options(config: Config) -> dict:
    """The options a run folder's hash covers, under the names they had when run folders were first hashed:
    late options (``options_with_role("late")``) only when they do something esc-tf did not do before them
    (:func:`value_before`), moved options under their old names, :data:`HASHED_RETIRED` at the value they
    implied."""
    d = config.to_dict()
    for key in options_with_role("late"):
        if option_value(config, key) == value_before(key):
            section, _, name = key.partition(".")
            d[section].pop(name)
    for old, new in MOVED.items():
        section, _, name = new.partition(".")
        if name in d[section]:
            old_section, _, old_name = old.partition(".")
            d[old_section][old_name] = d[section].pop(name)
    for key in HASHED_RETIRED:
        section, _, name = key.partition(".")
        d[section][name] = RETIRED[key]
    return {section: fields for section, fields in d.items() if fields}


def _lr_callback(config: Config) -> keras.callbacks.Callback:
    """``train.lr_schedule``: halve on a validation plateau, or the cosine of :func:`scheduled_learning_rate`."""
    t = config.train
    if t.lr_schedule == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                 patience=max(1, t.early_stopping_patience // 3),
                                                 min_lr=t.learning_rate / 64, verbose=0)
    return keras.callbacks.LearningRateScheduler(lambda epoch: scheduled_learning_rate(epoch, config))


def scheduled_learning_rate(epoch: int, config: Config) -> float:
    """Learning rate of ``epoch`` (from 0) under the cosine schedule: ``train.learning_rate`` annealed
    to 0 over ``train.epochs``."""
    t = config.train
    return t.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / t.epochs))


def make_optimizer(config: Config) -> keras.optimizers.Optimizer:
    """Adam at ``train.learning_rate`` (the schedule's callback moves it)."""
    return keras.optimizers.Adam(config.train.learning_rate)


def training_loss(config: Config) -> keras.losses.Loss:
    """Cross-entropy on logits; with teachers, the distillation loss
    (:class:`esc_tf.teachers.distill.DistillationLoss`)."""
    if uses_teachers(config):
        return DistillationLoss(config.distill.weight, config.distill.temperature)
    return keras.losses.CategoricalCrossentropy(from_logits=True)


def training_accuracy() -> keras.metrics.Metric:
    """Accuracy against the labels of the training targets (with teachers, their columns are ignored)."""
    return keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")


def check_schedule(config: Config, has_validation: bool) -> None:
    """Refuse a schedule that needs validation clips when there are none."""
    if not has_validation and config.train.lr_schedule == "plateau":
        raise ConfigError("train.lr_schedule 'plateau' watches the validation loss; with data.val_fraction 0 "
                          "use 'cosine'")


class _EpochLogger(keras.callbacks.Callback):
    """Records the learning rate with the other metrics of each epoch."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(keras.backend.get_value(self.model.optimizer.learning_rate))


SoftTargets = Callable[[Normalization, np.ndarray], np.ndarray]  # (normalisation, mel cache) -> [clips, classes]


def teacher_soft_targets(config: Config, part: str, meta: pd.DataFrame, waves: np.ndarray, fit_rows: np.ndarray,
                         test_fold: int | None, test_files: list[str], table: TeacherTargets | None,
                         cache_dir: Path) -> SoftTargets | None:
    """Where the teachers' probabilities on ``fit_rows`` come from for ``part`` (``foldN`` or ``deploy``):
    the out-of-fold table of ``distill.teacher_targets``, the models of ``distill.teacher_runs`` (computed
    once and cached, :mod:`esc_tf.stages.soft_targets`), or nowhere (None)."""
    if table is not None:
        files = meta["filename"].iloc[fit_rows].tolist()
        return lambda normalization, mel: table.probabilities(files, test_fold, config.distill.temperature)
    if not config.distill.teacher_runs:
        return None

    def from_runs(normalization: Normalization, mel: np.ndarray) -> np.ndarray:
        teacher = load_teacher(config, part, normalization, data_mod.class_names(meta), test_files)
        return soft_targets(teacher, waves[fit_rows], config, normalization, config.data.cache_dir or cache_dir,
                            mel=mel)
    return from_runs


def teacher_table(config: Config, meta: pd.DataFrame, waves: np.ndarray) -> TeacherTargets | None:
    """The table of ``distill.teacher_targets``, checked against these clips, or None when unset."""
    if not config.distill.teacher_targets:
        return None
    if config.distill.teacher_runs:
        raise ConfigError("distill.teacher_targets and distill.teacher_runs are both set; a run learns from one "
                          "kind of teacher: unset one of them")
    if config.data.split != "folds":
        raise ConfigError("distill.teacher_targets: its teachers hold out official folds, so it needs "
                          "data.split 'folds' (--split folds)")
    return load_for_dataset(config.distill.teacher_targets, meta["filename"].tolist(), meta["fold"].to_numpy(),
                            data_mod.labels(meta), data_mod.class_names(meta), waves)


def fit_model(waves: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, val_rows: np.ndarray,
              num_classes: int, config: Config, workdir: Path, seed: int,
              soft_targets_for: SoftTargets | None = None,
              ) -> tuple[keras.Model, Normalization, dict[str, list[float]]]:
    """Train on ``fit_rows`` with early stopping on ``val_rows``; normalisation from ``fit_rows`` only.

    With no ``val_rows`` (``data.val_fraction: 0``) every training clip is fitted and the model
    of the last epoch is kept: the schedule, not a validation score, decides when training ends.
    ``soft_targets_for(normalization, mel)`` gives the teachers' probabilities on the fitted clips
    (:func:`teacher_soft_targets`), which join their labels in the targets.
    """
    check_schedule(config, has_validation=len(val_rows) > 0)
    keras.utils.set_random_seed(seed)
    fit_waves, fit_y = waves[fit_rows], y[fit_rows]
    cache = pipeline.mel_cache(fit_waves, config)  # one STFT of the training clips serves all below
    normalization = normalization_stats(fit_waves, config, mel=cache[0])
    soft = soft_targets_for(normalization, cache[0]) if soft_targets_for is not None else None
    train_ds = pipeline.train_dataset(fit_waves, fit_y, num_classes, config, normalization, seed=seed,
                                      cache=cache, soft_targets=soft)
    val_ds = None
    if len(val_rows):
        val_ds = pipeline.eval_dataset(waves[val_rows], y[val_rows], num_classes, config, normalization)
    with training_strategy(config.train.distribute).scope():
        model = build_model((*feature_shape(config), 1), num_classes, config.model)
        transfer.initialise(model, config)
        model.compile(optimizer=make_optimizer(config), loss=training_loss(config), metrics=[training_accuracy()])
    callbacks: list[keras.callbacks.Callback] = [
        _EpochLogger(),
        keras.callbacks.TensorBoard(log_dir=str(workdir / "tensorboard"), write_graph=False),
    ]
    if val_ds is not None:
        callbacks += [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.train.early_stopping_patience,
                                          restore_best_weights=True),
            keras.callbacks.ModelCheckpoint(str(workdir / "checkpoint.weights.h5"), monitor="val_loss",
                                            save_best_only=True, save_weights_only=True),
        ]
    if config.train.verbose == 1:  # one bar per fold; Keras's own bar would print a line per step
        callbacks.append(EpochProgress(workdir.name, config.train.epochs))
    callbacks.append(_lr_callback(config))
    train_ds, steps_per_epoch = pipeline.continuous(train_ds)
    history = model.fit(train_ds, steps_per_epoch=steps_per_epoch, validation_data=val_ds,
                        epochs=config.train.epochs, callbacks=callbacks,
                        verbose=0 if config.train.verbose == 1 else config.train.verbose)
    if config.train.recalibrate_batch_norm:
        recalibrate_batch_norm(model, pipeline.cached_features(cache[0], config, normalization))
    return model, normalization, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def train_fold(split: Split, meta: pd.DataFrame, waves: np.ndarray, config: Config,
               fold_dir: Path, table: TeacherTargets | None = None) -> FoldResult:
    """Train one model on ``split.train``, stop on ``split.val``, score it on ``split.test``."""
    start = time.time()
    split.check_disjoint()
    y = data_mod.labels(meta)
    num_classes = int(y.max()) + 1
    test_files = meta["filename"].iloc[split.test].tolist()
    model, normalization, history = fit_model(
        waves, y, split.train, split.val, num_classes, config, fold_dir, seed=config.train.seed + (split.test_fold or 0),
        soft_targets_for=teacher_soft_targets(config, split.name, meta, waves, split.train, split.test_fold,
                                              test_files, table, fold_dir))
    test_features = pipeline.feature_array(waves[split.test], config, normalization)
    y_pred = clip_scores(keras_predictor(model), test_features, config).argmax(axis=1)
    save_model(model, fold_dir / MODEL_FILE)
    write_json_atomic(fold_dir / "normalization.json", normalization.to_dict())
    trained_on = meta["filename"].iloc[np.concatenate([split.train, split.val])].tolist()
    ModelMeta(config, normalization, data_mod.class_names(meta), trained_on).save(fold_dir)
    return FoldResult(
        name=split.name,
        accuracy=float(accuracy_score(y[split.test], y_pred)),
        y_true=y[split.test].tolist(),
        y_pred=y_pred.tolist(),
        test_files=test_files,
        epochs_trained=len(history["loss"]),
        wall_seconds=time.time() - start,
        history=history,
    )


def write_split(split: Split, meta: pd.DataFrame, fold_dir: Path) -> None:
    """Record which clips each part of the split used, for audit."""
    names = meta["filename"].to_numpy()
    write_json_atomic(fold_dir / "split.json", {
        "train": names[split.train].tolist(), "val": names[split.val].tolist(),
        "test": names[split.test].tolist(), "test_fold": split.test_fold})


RUN_FOLDER_BYTES = 100_000_000  # models, exports and logs of a run, with room to spare


RESUME_REMEDY = "run again with --restart to train it anew, or pass --run-dir for a new folder"
RECORDED_LATER = ("recipe",)  # inputs.json keys that older run folders lack: compared only where recorded


def check_same_inputs(run_dir: Path, inputs: dict[str, str], remedy: str = RESUME_REMEDY) -> None:
    """Refuse to go on with a run folder started on other data, options (``recipe``), teacher table or
    esc-tf version than ``inputs``; ``remedy`` ends the message. A key of :data:`RECORDED_LATER` that the
    folder lacks (written before esc-tf recorded it) is not compared."""
    path = run_dir / INPUTS_FILE
    if not path.is_file():
        return
    before = json.loads(path.read_text())
    what = {"data": "dataset", "esc_tf": "esc-tf version", "teacher_targets": "teacher table",
            "recipe": "training options"}
    changed = [f"the {what.get(key, key)} ({before.get(key)} then, {value} now)"
               for key, value in inputs.items()
               if before.get(key) != value and (key in before or key not in RECORDED_LATER)]
    if changed:
        raise ConfigError(f"{run_dir}: {' and '.join(changed)} changed since this run started, so its finished "
                          f"folds cannot be used; {remedy}")


def record_recipe(run_dir: Path, config: Config) -> None:
    """Record in ``inputs.json`` that the run's folds now stand for ``config`` (after they were scored again)."""
    path = run_dir / INPUTS_FILE
    inputs = json.loads(path.read_text()) if path.is_file() else {}
    write_json_atomic(path, {**inputs, "recipe": recipe_fingerprint(config)})


def check_run_folder(run_dir: Path) -> None:
    """Refuse a ``--run-dir`` that holds files but is not a run folder (no ``inputs.json`` or ``config.yaml``):
    a run writes, and ``--restart`` deletes, only its own folder."""
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (run_dir / INPUTS_FILE).is_file() \
            and not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: this folder holds other files and is not a run folder of esc-tf; pass a "
                          "new or empty folder (or a run's own folder) to --run-dir")


def run_cross_validation(config: Config, runs_root: str | Path = "runs", run_dir: str | Path | None = None,
                         progress: bool = True, restart: bool = False,
                         dataset: tuple[pd.DataFrame, np.ndarray] | None = None) -> Path:
    """Validate the data, then train every requested fold (skipping finished ones).

    Nothing is written before the dataset has been validated and decoded, so bad input leaves
    no run folder behind; the output folder is checked for writing before that. A run folder
    resumes only on the data and training options it started with (``inputs.json``); ``restart`` starts it
    anew.
    ``dataset``: the config's metadata and decoded clips when a caller already holds them (a search
    trains many folds on one dataset). Returns the run folder.
    """
    check_feature_config(config.features, config.audio)
    check_scoring_config(config)
    check_schedule(config, has_validation=config.data.val_fraction > 0)
    augment.check_augment_config(config.augment, config.features)
    # absolute, so the report and a resumed run find them from any folder
    if config.distill.teacher_runs:
        config = with_value(config, "distill.teacher_runs",
                            [str(Path(r).resolve()) for r in config.distill.teacher_runs])
    if config.distill.teacher_targets:
        config = with_value(config, "distill.teacher_targets", str(Path(config.distill.teacher_targets).resolve()))
    if config.train.init_from:
        config = with_value(config, "train.init_from", str(Path(config.train.init_from).resolve()))

    run_dir = Path(run_dir) if run_dir else run_dir_for(config, runs_root)
    check_run_folder(run_dir)
    check_writable(run_dir, "--runs-root or --run-dir")
    meta = data_mod.load_dataset(config) if dataset is None else dataset[0]
    if config.export.deploy:
        check_budgets_before_training(config, num_classes=int(data_mod.labels(meta).max()) + 1)
    splits = data_mod.make_splits(meta, config.data)
    names = meta["filename"].to_numpy()
    test_files = {split.name: names[split.test].tolist() for split in splits}
    if config.export.deploy:
        test_files["deploy"] = []  # the deployment model has no test clips
    check_teachers(config, test_files, data_mod.class_names(meta))
    transfer.check_source(config, data_mod.class_names(meta), names.tolist())
    if dataset is None and config.data.cache_dir:
        check_free_space(config.data.cache_dir, len(meta) * config.audio.clip_samples * 4, "the decoded audio",
                         "--set data.cache_dir=DIR")
    check_free_space(run_dir, RUN_FOLDER_BYTES, "a run folder", "--runs-root or --run-dir")
    waves = data_mod.load_waveforms(meta, config.audio, config.data.cache_dir, progress=progress) \
        if dataset is None else dataset[1]
    table = teacher_table(config, meta, waves)

    inputs = {"data": data_mod.listing_fingerprint(meta), "esc_tf": __version__,
              "recipe": recipe_fingerprint(config)}
    if table is not None:  # a table remade in the same folder must not teach half of a resumed run
        inputs["teacher_targets"] = table.digest
    if restart and run_dir.exists():
        shutil.rmtree(run_dir)
    check_same_inputs(run_dir, inputs)
    fresh = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        write_json_atomic(run_dir / INPUTS_FILE, inputs)
        save_config(config, run_dir / "config.yaml")
        artifacts.record_command(run_dir)  # now, so a run stopped before its report still names what trained it
        for i, split in enumerate(splits, 1):
            fold_dir = run_dir / split.name
            if load_fold_result(fold_dir) is not None:
                print(f"[{i}/{len(splits)}] {split.name}: already finished, skipping", flush=True)
                continue
            print(f"[{i}/{len(splits)}] {split.name}: train {len(split.train)}, val {len(split.val)}, "
                  f"test {len(split.test)} clips", flush=True)
            fold_dir.mkdir(exist_ok=True)
            write_split(split, meta, fold_dir)
            result = train_fold(split, meta, waves, config, fold_dir, table)
            write_json_atomic(fold_dir / RESULT_FILE, result.to_dict())
            print(f"[{i}/{len(splits)}] {split.name}: test accuracy {result.accuracy:.4f} "
                  f"({result.epochs_trained} epochs, {result.wall_seconds:.0f} s)", flush=True)
    except BaseException:
        if fresh and not any(run_dir.glob(f"*/{RESULT_FILE}")):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing finished: leave no half run
        raise
    return run_dir

"""``python -m esc_tf.train``: cross-validated training of the AudioCNN, then a report.

Every fold trains on the training folds only: its normalisation statistics are measured on
them, its early-stopping validation clips (when ``data.val_fraction`` > 0) are carved from
them (grouped by source recording), and its test fold is touched only for the final evaluation. Each
finished fold leaves ``fold*/result.json``; re-running the same command skips those.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import accuracy_score
from sklearn.utils.class_weight import compute_class_weight

from esc_tf import data as data_mod
from esc_tf import augment, pipeline, report, transfer
from esc_tf.auxiliary import (AuxiliaryClips, keep_classes, load_auxiliary, load_auxiliary_metadata, with_auxiliary,
                              with_auxiliary_files)
from esc_tf.config import (Config, ConfigError, apply_override, apply_overrides, describe_options, load_config,
                           save_config, with_value)
from esc_tf.data import DatasetError, Split
from esc_tf.distill import DistillationLoss, Teacher, check_teachers, label_accuracy, load_teacher
from esc_tf.evaluate import MODEL_FILE, ModelError, ModelMeta, clip_scores, keras_predictor
from esc_tf.export import check_budgets_before_training
from esc_tf.features import (Normalization, check_feature_config, check_window_config, model_input_shape,
                             normalization_stats)
from esc_tf.model import (ENSEMBLE_OUTPUT, PRESETS, branch_logits, build_model, check_model_config,
                          recalibrate_batch_norm)

RESULT_FILE = "result.json"
# Options added after run folders were first named by a hash of the config: left out of the hash while
# at their defaults, so a run started by an older esc_tf keeps its folder and resumes.
LATE_OPTIONS = {"train": ("weight_decay", "ema_momentum", "swa_epochs", "swa_learning_rate", "teacher_runs",
                          "distill_weight", "distill_temperature", "init_from",
                          "auxiliary_dir", "auxiliary_subset", "label_smoothing"),
                "model": ("input_frames", "clip_windows", "stem_strides", "time_rolls", "mel_shifts",
                          "depthwise_kernel", "pool", "head", "full_conv_stages", "branches", "squeeze_excite_stages"),
                "augment": ("mix_domain", "filter_db", "filter_knots", "mel_shift",
                            "freq_mixstyle_prob", "freq_mixstyle_alpha")}
tf.get_logger().setLevel("ERROR")  # Keras retracing notices drown the progress lines


@dataclass
class FoldResult:
    """What one fold's model scored on its own, never-seen test clips."""

    name: str
    accuracy: float
    y_true: list[int]
    y_pred: list[int]
    test_files: list[str]
    epochs_trained: int
    wall_seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def run_dir_for(config: Config, runs_root: str | Path = "runs") -> Path:
    """A stable run folder for a config, so the same command finds and resumes it.

    Folds to run and verbosity do not change the folder; everything that changes results does.
    """
    d = config.to_dict()
    defaults = Config().to_dict()
    for section, names in LATE_OPTIONS.items():
        for name in names:
            if d[section][name] == defaults[section][name]:
                d[section].pop(name)
    d["data"].pop("folds")
    d["data"].pop("cache_dir")
    d["train"].pop("verbose")
    d["data"]["data_dir"] = str(config.resolved_data_dir().resolve())
    fingerprint = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
    name = f"{config.resolved_data_dir().resolve().name}-{config.data.subset}-{config.model.preset}-" \
           f"{config.data.split}-{fingerprint}"
    return Path(runs_root) / name


def _lr_callback(config: Config) -> keras.callbacks.Callback | None:
    t = config.train
    if t.lr_schedule == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                 patience=max(1, t.early_stopping_patience // 3),
                                                 min_lr=t.learning_rate / 64, verbose=0)
    if t.lr_schedule in ("cosine", "onecycle"):
        return keras.callbacks.LearningRateScheduler(lambda epoch: scheduled_learning_rate(epoch, config))
    return None  # constant


def _cosine_from(start: float, end: float, progress: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))


def scheduled_learning_rate(epoch: int, config: Config) -> float:
    """Learning rate of ``epoch`` (from 0) under ``train.lr_schedule`` ``cosine`` or ``onecycle``.

    cosine: ``train.learning_rate`` annealed to 0 over ``train.epochs``; with ``train.swa_epochs``,
    annealed to ``train.swa_learning_rate`` over the epochs before the last ``swa_epochs``, then constant.
    onecycle (Smith's 1cycle, with PyTorch's OneCycleLR defaults): up from 1/25 of ``train.learning_rate``
    to it over the first 30 % of the epochs, then down to 1/25e4 of it, both halves cosine-shaped.
    """
    t = config.train
    if t.lr_schedule == "cosine" and t.swa_epochs > 0:
        annealing = t.epochs - t.swa_epochs
        return _cosine_from(t.learning_rate, t.swa_learning_rate, min(epoch / annealing, 1.0))
    if t.lr_schedule == "cosine":
        return _cosine_from(t.learning_rate, 0.0, epoch / t.epochs)
    start, end, peak_epoch = t.learning_rate / 25, t.learning_rate / 25e4, 0.3 * t.epochs
    if epoch < peak_epoch:
        return _cosine_from(start, t.learning_rate, epoch / peak_epoch)
    return _cosine_from(t.learning_rate, end, (epoch - peak_epoch) / (t.epochs - peak_epoch))


def make_optimizer(config: Config) -> keras.optimizers.Optimizer:
    """Adam, or AdamW with ``train.weight_decay``; with ``train.ema_momentum`` the model ends training
    holding the moving average of its weights (Keras swaps it in when ``fit`` returns)."""
    check_optimizer(config)
    t = config.train
    ema = {"use_ema": True, "ema_momentum": t.ema_momentum} if t.ema_momentum > 0 else {}
    if t.weight_decay <= 0:
        return keras.optimizers.Adam(t.learning_rate, **ema)
    optimizer = keras.optimizers.AdamW(t.learning_rate, weight_decay=t.weight_decay, **ema)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def check_optimizer(config: Config) -> None:
    """Refuse a weight decay or weight-average momentum that cannot train a model."""
    if config.train.weight_decay < 0:
        raise ConfigError(f"train.weight_decay must be >= 0 (0: plain Adam), not {config.train.weight_decay}")
    if not 0 <= config.train.ema_momentum < 1:
        raise ConfigError(f"train.ema_momentum must be in [0, 1) (0: no weight average), not "
                          f"{config.train.ema_momentum}")
    if not 0 <= config.train.label_smoothing < 1:
        raise ConfigError(f"train.label_smoothing must be in [0, 1) (0: the targets as they are), not "
                          f"{config.train.label_smoothing}")


def training_loss(config: Config) -> keras.losses.Loss:
    """Cross-entropy on logits, with ``train.label_smoothing`` applied to the (mixed) labels; with
    teachers, the distillation loss (:class:`esc_tf.distill.DistillationLoss`)."""
    t = config.train
    if t.teacher_runs:
        return DistillationLoss(t.distill_weight, t.distill_temperature, t.label_smoothing)
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=t.label_smoothing)


def training_accuracy() -> keras.metrics.Metric:
    """Accuracy against the labels of the training targets (with teachers, their columns are ignored)."""
    return keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")


LR_SCHEDULES = ("cosine", "onecycle", "plateau", "constant")


def check_schedule(config: Config, has_validation: bool) -> None:
    """Refuse an unknown schedule, or one that needs validation clips when there are none."""
    if config.train.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not "
                          f"{config.train.lr_schedule!r}")
    t = config.train
    if t.swa_epochs:
        if not 0 < t.swa_epochs < t.epochs:
            raise ConfigError(f"train.swa_epochs must be between 1 and train.epochs - 1 = {t.epochs - 1} (0: no "
                              f"weight averaging), not {t.swa_epochs}")
        if t.lr_schedule != "cosine" or has_validation:
            raise ConfigError("train.swa_epochs averages the last epochs of a cosine schedule fitted on every "
                              "training clip: use train.lr_schedule 'cosine' and data.val_fraction 0")
        if t.swa_learning_rate <= 0:
            raise ConfigError(f"train.swa_learning_rate must be > 0, not {t.swa_learning_rate}")
        if t.ema_momentum > 0 or not t.recalibrate_batch_norm:
            # Both averages would replace the final weights; averaged BN statistics do not belong to the
            # averaged weights, so they must be measured again.
            raise ConfigError("train.swa_epochs needs train.ema_momentum 0 and train.recalibrate_batch_norm true")
    if not has_validation and config.train.lr_schedule == "plateau":
        raise ConfigError("train.lr_schedule 'plateau' watches the validation loss; with data.val_fraction 0 "
                          "use 'cosine', 'onecycle' or 'constant'")


class WeightAverage(keras.callbacks.Callback):
    """Stochastic weight averaging: the mean of the model's weights at the end of every epoch from
    ``first_epoch`` (counted from 0) on, set into the model when training ends."""

    def __init__(self, first_epoch: int) -> None:
        super().__init__()
        self.first_epoch = first_epoch
        self.averaged = 0
        self.mean: list[np.ndarray] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch < self.first_epoch:
            return
        weights = self.model.get_weights()
        self.averaged += 1
        if self.averaged == 1:
            self.mean = [w.astype(np.float64) for w in weights]
        else:
            self.mean = [m + (w - m) / self.averaged for m, w in zip(self.mean, weights)]

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.averaged:
            self.model.set_weights([m.astype(w.dtype) for m, w in zip(self.mean, self.model.get_weights())])


class _EpochLogger(keras.callbacks.Callback):
    """Records the learning rate with the other metrics of each epoch."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(keras.backend.get_value(self.model.optimizer.learning_rate))


def fit_model(waves: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, val_rows: np.ndarray,
              num_classes: int, config: Config, workdir: Path, seed: int,
              teacher_for: Callable[[Normalization], Teacher | None] | None = None,
              auxiliary: AuxiliaryClips | None = None,
              ) -> tuple[keras.Model, Normalization, dict[str, list[float]]]:
    """Train on ``fit_rows`` with early stopping on ``val_rows``; normalisation from ``fit_rows`` only.

    With no ``val_rows`` (``data.val_fraction: 0``) every training clip is fitted and the model
    of the last epoch is kept: the schedule, not a validation score, decides when training ends.
    ``teacher_for(normalization)`` gives the teachers that soften the targets (see :mod:`esc_tf.distill`).
    ``auxiliary`` clips of other classes train alongside ``fit_rows``; the returned model has
    ``num_classes`` outputs all the same (see :mod:`esc_tf.auxiliary`).
    """
    check_schedule(config, has_validation=len(val_rows) > 0)
    keras.utils.set_random_seed(seed)
    fit_waves, fit_y, outputs = with_auxiliary(waves[fit_rows], y[fit_rows], num_classes, auxiliary)
    cache = pipeline.mel_cache(fit_waves, config)  # one STFT of the training clips serves all below
    normalization = normalization_stats(fit_waves, config, mel=cache[0])
    teacher = teacher_for(normalization) if teacher_for is not None else None
    train_ds = pipeline.train_dataset(fit_waves, fit_y, outputs, config, normalization, seed=seed,
                                      cache=cache, teacher=teacher)
    val_ds = None
    if len(val_rows):
        val_ds = pipeline.eval_dataset(waves[val_rows], y[val_rows], outputs, config, normalization)
    model = build_model((*model_input_shape(config), 1), outputs, config.model)
    transfer.initialise(model, config)
    trainee = compiled_for_training(model, config)
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
    lr = _lr_callback(config)
    if lr is not None:
        callbacks.append(lr)
    if config.train.swa_epochs > 0:
        callbacks.append(WeightAverage(config.train.epochs - config.train.swa_epochs))
    class_weight = None
    if config.train.class_weights:
        classes = np.arange(outputs)
        weights = compute_class_weight("balanced", classes=classes, y=fit_y)
        class_weight = dict(zip(classes.tolist(), weights.tolist()))
    train_ds, steps_per_epoch = pipeline.continuous(train_ds)
    history = trainee.fit(train_ds, steps_per_epoch=steps_per_epoch, validation_data=val_ds,
                          epochs=config.train.epochs, callbacks=callbacks, class_weight=class_weight,
                          verbose=config.train.verbose)
    if config.train.recalibrate_batch_norm:
        recalibrate_batch_norm(model, pipeline.recalibration_inputs(cache[0], config, normalization))
    if outputs != num_classes:
        model = keep_classes(model, num_classes, build_model((*model_input_shape(config), 1), num_classes,
                                                             config.model))
    return model, normalization, {_history_key(k): [float(v) for v in vals] for k, vals in history.history.items()}


def compiled_for_training(model: keras.Model, config: Config) -> keras.Model:
    """``model`` compiled with its loss, or for a ``model.branches`` ensemble a model of the same layers
    with each branch's logits as outputs too, each branch learning from its own loss.

    Branches trained only through the mean of their logits co-adapt and ensemble less; the mean
    output is still reported (weight 0) as ``accuracy``.
    """
    loss = training_loss(config)
    branches = branch_logits(model)
    if not branches:
        model.compile(optimizer=make_optimizer(config), loss=loss, metrics=[training_accuracy()])
        return model
    trainee = keras.Model(model.inputs, [model.output, *branches])
    trainee.compile(optimizer=make_optimizer(config), loss=loss,
                    loss_weights=[0.0] + [1 / len(branches)] * len(branches),
                    metrics=[[training_accuracy()]] + [[] for _ in branches])
    return trainee


def _history_key(key: str) -> str:
    """A branch ensemble's history key under the name a one-output model's has (its mean output's accuracy)."""
    return key.replace(f"{ENSEMBLE_OUTPUT}_accuracy", "accuracy")


def train_fold(split: Split, meta: pd.DataFrame, waves: np.ndarray, config: Config,
               fold_dir: Path, auxiliary: AuxiliaryClips | None = None) -> FoldResult:
    """Train one model on ``split.train`` (and ``auxiliary`` clips), stop on ``split.val``, score it on
    ``split.test``."""
    start = time.time()
    split.check_disjoint()
    y = data_mod.labels(meta)
    num_classes = int(y.max()) + 1
    test_files = meta["filename"].iloc[split.test].tolist()
    model, normalization, history = fit_model(
        waves, y, split.train, split.val, num_classes, config, fold_dir, seed=config.train.seed + (split.test_fold or 0),
        teacher_for=lambda norm: load_teacher(config, split.name, norm, data_mod.class_names(meta), test_files),
        auxiliary=auxiliary)
    test_features = pipeline.feature_array(waves[split.test], config, normalization)
    y_pred = clip_scores(keras_predictor(model), test_features, config).argmax(axis=1)
    model.save(fold_dir / MODEL_FILE)
    _write_json_atomic(fold_dir / "normalization.json", normalization.to_dict())
    trained_on = with_auxiliary_files(meta["filename"].iloc[np.concatenate([split.train, split.val])].tolist(),
                                      auxiliary)
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
    _write_json_atomic(fold_dir / "split.json", {
        "train": names[split.train].tolist(), "val": names[split.val].tolist(),
        "test": names[split.test].tolist(), "test_fold": split.test_fold})


def load_fold_result(fold_dir: Path) -> FoldResult | None:
    path = fold_dir / RESULT_FILE
    if not path.is_file():
        return None
    return FoldResult(**json.loads(path.read_text()))


def run_cross_validation(config: Config, runs_root: str | Path = "runs",
                         run_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Validate the data, train every requested fold (skipping finished ones), write the report.

    Nothing is written before the dataset has been validated and decoded, so bad input leaves
    no run folder behind. Returns the run folder.
    """
    check_feature_config(config.features, config.audio)
    check_window_config(config)
    check_schedule(config, has_validation=config.data.val_fraction > 0)
    check_optimizer(config)
    augment.check_augment_config(config.augment, config.features)
    if config.train.teacher_runs:  # absolute, so the report and a resumed run find them from any folder
        config = with_value(config, "train.teacher_runs", [str(Path(r).resolve()) for r in config.train.teacher_runs])
    for option in ("init_from", "auxiliary_dir"):
        if getattr(config.train, option):
            config = with_value(config, f"train.{option}", str(Path(getattr(config.train, option)).resolve()))
    check_model_config(config.model)
    started = time.time()
    meta = data_mod.load_dataset(config)
    if config.export.deploy:
        check_budgets_before_training(config, num_classes=int(data_mod.labels(meta).max()) + 1)
    splits = data_mod.make_splits(meta, config.data)
    names = meta["filename"].to_numpy()
    test_files = {split.name: names[split.test].tolist() for split in splits}
    if config.export.deploy:
        test_files["deploy"] = []  # the deployment model has no test clips
    check_teachers(config, test_files, data_mod.class_names(meta))
    transfer.check_source(config, data_mod.class_names(meta), names.tolist())
    load_auxiliary_metadata(config, meta)  # refuses before any audio is decoded
    waves = data_mod.load_waveforms(meta, config.audio, config.data.cache_dir, progress=progress)
    auxiliary = load_auxiliary(config, meta, progress=progress)

    run_dir = Path(run_dir) if run_dir else run_dir_for(config, runs_root)
    fresh = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        save_config(config, run_dir / "config.yaml")
        report.record_command(run_dir)  # now, so a run stopped before its report still names what trained it
        for i, split in enumerate(splits, 1):
            fold_dir = run_dir / split.name
            if load_fold_result(fold_dir) is not None:
                print(f"[{i}/{len(splits)}] {split.name}: already finished, skipping", flush=True)
                continue
            print(f"[{i}/{len(splits)}] {split.name}: train {len(split.train)}, val {len(split.val)}, "
                  f"test {len(split.test)} clips", flush=True)
            fold_dir.mkdir(exist_ok=True)
            write_split(split, meta, fold_dir)
            result = train_fold(split, meta, waves, config, fold_dir, auxiliary)
            _write_json_atomic(fold_dir / RESULT_FILE, result.to_dict())
            print(f"[{i}/{len(splits)}] {split.name}: test accuracy {result.accuracy:.4f} "
                  f"({result.epochs_trained} epochs, {result.wall_seconds:.0f} s)", flush=True)
    except BaseException:
        if fresh and not any(run_dir.glob(f"*/{RESULT_FILE}")):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing finished: leave no half run
        raise
    results = [r for r in (load_fold_result(d) for d in sorted(run_dir.glob("*/"))) if r is not None]
    report.write_report(run_dir, results, data_mod.class_names(meta), config, time.time() - started)
    return run_dir


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every command that reads a dataset under a config."""
    parser.add_argument("--data-dir", help="dataset folder with meta/esc50.csv and audio/ "
                        "(default: $ESC_TF_DATA_DIR, else ./data/ESC-50)")
    parser.add_argument("--config", help="YAML or JSON config file (sections as in the list below)")
    parser.add_argument("--split", choices=["folds", "stratified"],
                        help="folds: cross-validation on the official folds (default); "
                             "stratified: one 80/20 stratified split")
    parser.add_argument("--folds", help="test folds to run, e.g. 1,3 (default: all present)")
    parser.add_argument("--subset", choices=["all", "esc10", "not-esc10"],
                        help="all classes, the ESC-10 ones, or the other 40")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                        help="override any config option; repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m esc_tf.train",
        description="Cross-validated training of an AudioCNN on ESC-50 (or any folder in its layout), "
                    "then the edge stages: per fold, prune + int8 + TFLM scored on the fold's test clips; "
                    "finally the deployment model exported for TFLM (see export.* options).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Every config option (set with --set section.option=value or a --config file):\n"
               + describe_options())
    add_data_arguments(parser)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model preset (default: dscnn)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="Adam learning rate")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-augment", action="store_true", help="switch every augmentation off")
    parser.add_argument("--runs-root", default="runs", help="where run folders are made (default: runs)")
    parser.add_argument("--run-dir", help="use this run folder instead of the derived one")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Defaults, then the config file, then the flags, then --set overrides."""
    config = load_config(args.config) if args.config else Config()
    folds = getattr(args, "folds", None)
    flags = {"data.data_dir": args.data_dir, "data.split": args.split,
             "data.folds": f"[{folds}]" if folds else None, "data.subset": args.subset,
             "model.preset": getattr(args, "preset", None), "train.epochs": getattr(args, "epochs", None),
             "train.batch_size": getattr(args, "batch_size", None),
             "train.learning_rate": getattr(args, "lr", None), "train.seed": getattr(args, "seed", None),
             "augment.enabled": "false" if getattr(args, "no_augment", False) else None}
    for key, value in flags.items():
        if value is not None:
            config = apply_override(config, f"{key}={value}")
    return apply_overrides(config, args.set)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        run_dir = run_cross_validation(config, args.runs_root, args.run_dir)
        if config.export.edge_eval or config.export.deploy:
            from esc_tf.edge import run_edge_stages  # late: edge builds on this module's fit_model
            run_edge_stages(run_dir)
    except (ConfigError, DatasetError, ModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"report: {run_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

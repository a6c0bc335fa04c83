"""Edge stages: what int8 on a microcontroller costs, measured fold by fold, and the export.

For every cross-validation fold (``edge_fold``): the fold's trained model is pruned and
fine-tuned on the fold's training clips, converted to float and int8 ``.tflite`` (int8
calibrated on the fold's training clips), and every variant is scored on the fold's own
test clips: Keras float, LiteRT float, pruned Keras float, int8 without pruning (LiteRT),
int8 (LiteRT) and int8 in the TFLM interpreter. Results go to ``foldN/edge.json``.

``deploy`` trains the deployment model on all clips (with early stopping on a grouped
validation carve when ``data.val_fraction`` > 0), prunes, quantises and writes the deployable files
(:mod:`esc_tf.stages.export`).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tf_keras as keras

from esc_tf import pipeline
from esc_tf.artifacts import (
    DEPLOY_DIR,
    EDGE_FILE,
    MODEL_FILE,
    RESULT_FILE,
    FoldResult,
    ModelMeta,
    Normalization,
    load_fold_result,
    save_config,
    write_bytes_atomic,
    write_json_atomic,
)
from esc_tf.audio.features import check_scoring_config, views_per_clip
from esc_tf.config import (
    Config,
    ConfigError,
    apply_overrides,
    load_config,
    option_fields,
    option_value,
    options_with_role,
)
from esc_tf.data import dataset as data_mod
from esc_tf.models import transfer
from esc_tf.models.networks import count_macs, recalibrate_batch_norm, save_model
from esc_tf.prune import kernel_sparsity, prune_and_fine_tune
from esc_tf.quantize import representative_indices, to_float_tflite, to_int8_tflite
from esc_tf.runtime.predictors import LiteRTPredictor, TFLMPredictor, clip_scores, keras_predictor
from esc_tf.stages.export import gzip_size, measure_arena, publish_export, write_deployment
from esc_tf.stages.train import (
    check_same_inputs,
    fit_model,
    record_recipe,
    teacher_soft_targets,
    teacher_table,
    training_loss,
)
from esc_tf.teachers.distill import check_teachers


def _prune(model: keras.Model, waves: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, val_rows: np.ndarray,
           num_classes: int, config: Config, normalization: Normalization) -> keras.Model:
    if not config.prune.enabled:
        return model
    cache = pipeline.mel_cache(waves[fit_rows], config)  # one STFT serves fine-tuning and recalibration
    train_ds = pipeline.train_dataset(waves[fit_rows], y[fit_rows], num_classes, config, normalization,
                                      seed=config.train.seed, cache=cache)
    val_ds = pipeline.eval_dataset(waves[val_rows], y[val_rows], num_classes, config, normalization) \
        if len(val_rows) else None
    pruned = prune_and_fine_tune(model, train_ds, val_ds, config.prune, training_loss(config))
    if config.train.recalibrate_batch_norm:  # fine-tuning moved the running statistics again
        recalibrate_batch_norm(pruned, pipeline.cached_features(cache[0], config, normalization))
    return pruned


def _calibration(waves: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, config: Config,
                 normalization: Normalization) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of the calibration clips (training clips only) and their row numbers."""
    rows = fit_rows[representative_indices(y[fit_rows], config.export.representative_clips, config.train.seed)]
    return pipeline.feature_array(waves[rows], config, normalization), rows


def edge_fold(fold_dir: Path, meta: pd.DataFrame, waves: np.ndarray, config: Config) -> dict:
    """Prune, quantise and score one fold's model on its own test clips; writes ``edge.json``."""
    start = time.time()
    split = json.loads((fold_dir / "split.json").read_text())
    row_of = {name: i for i, name in enumerate(meta["filename"])}
    fit_rows, val_rows, test_rows = (np.array([row_of[n] for n in split[k]], int) for k in ("train", "val", "test"))
    assert not set(test_rows) & (set(fit_rows) | set(val_rows)), "a test clip is in the training part"
    y = data_mod.labels(meta)
    num_classes = int(y.max()) + 1
    normalization = Normalization.from_dict(json.loads((fold_dir / "normalization.json").read_text()))
    model = keras.models.load_model(fold_dir / MODEL_FILE, compile=False)
    pruned = _prune(model, waves, y, fit_rows, val_rows, num_classes, config, normalization)
    calibration, calibration_rows = _calibration(waves, y, fit_rows, config, normalization)
    float_bytes = to_float_tflite(model)
    int8_plain = to_int8_tflite(model, calibration)
    int8 = to_int8_tflite(pruned, calibration) if config.prune.enabled else int8_plain
    write_bytes_atomic(fold_dir / "model_int8.tflite", int8)

    test = pipeline.feature_array(waves[test_rows], config, normalization)
    predictors = {"keras_float": keras_predictor(model), "tflite_float": LiteRTPredictor(float_bytes),
                  "pruned_float": keras_predictor(pruned), "int8_unpruned_litert": LiteRTPredictor(int8_plain),
                  "int8_litert": LiteRTPredictor(int8), "int8_tflm": TFLMPredictor(int8)}
    y_test = y[test_rows]
    preds = {name: clip_scores(predict, test, config).argmax(axis=1) for name, predict in predictors.items()}
    result = {
        "name": fold_dir.name, "test_clips": len(test_rows), "y_true": y_test.tolist(),
        "variants": {name: {"accuracy": float(np.mean(p == y_test)), "y_pred": p.tolist()}
                     for name, p in preds.items()},
        "agreement": {
            "keras_float_vs_int8_tflm": float(np.mean(preds["keras_float"] == preds["int8_tflm"])),
            "pruned_float_vs_int8_tflm": float(np.mean(preds["pruned_float"] == preds["int8_tflm"])),
            "int8_litert_vs_int8_tflm": float(np.mean(preds["int8_litert"] == preds["int8_tflm"]))},
        "sizes": {"params": int(model.count_params()), "macs": count_macs(model),
                  "float_tflite_bytes": len(float_bytes), "float_tflite_gzip_bytes": gzip_size(float_bytes),
                  "int8_unpruned_bytes": len(int8_plain), "int8_unpruned_gzip_bytes": gzip_size(int8_plain),
                  "int8_bytes": len(int8), "int8_gzip_bytes": gzip_size(int8),
                  "tflm_arena_bytes": measure_arena(int8), "inferences_per_clip": views_per_clip(config)},
        "kernel_sparsity": kernel_sparsity(pruned),
        "calibration_clips": len(calibration_rows),
        "calibration_files": meta["filename"].iloc[calibration_rows].tolist(),
        "wall_seconds": time.time() - start,
    }
    write_json_atomic(fold_dir / EDGE_FILE, result)
    return result


def publish_target(config: Config, replace_published: bool) -> Path | None:
    """Where the export is mirrored: ``export.publish_dir``, unless it already holds a published model and
    ``replace_published`` is not given (a committed model is not replaced by accident)."""
    if not config.export.publish_dir:
        return None
    target = Path(config.export.publish_dir)
    if (target / "model_int8.tflite").is_file() and not replace_published:
        print(f"[deploy] {target}/ already holds a published model: not replaced (pass --publish to replace "
              "it)", flush=True)
        return None
    return target


GOLDEN_SOURCE = "golden_clip.c"  # the firmware self-test's clip and expected scores, beside a published model


def refresh_golden_files(target: Path) -> None:
    """Golden self-test files beside a newly published model hold the previous model's expected scores:
    recompute them for the new model from the same samples with the firmware's tool (run from a checkout of
    the repository), or say how when that tool is not at hand."""
    if not (target / GOLDEN_SOURCE).is_file():
        return
    args = ["-m", "firmware_stub.tools.make_golden", "--model", str(target / "model_int8.tflite"),
            "--from-existing"]
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if result.returncode == 0:
        print(f"[deploy] {target}/golden_clip.*: expected scores recomputed for the new model", flush=True)
    else:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"[deploy] {target}/golden_clip.* still hold the previous model's expected scores ({reason}; the "
              f"firmware self-test would fail): run `python {' '.join(args)}` from the repository root", flush=True)


def publish(export_dir: Path, target: Path) -> None:
    """Mirror an export into ``target`` and bring the firmware's golden files there up to date."""
    publish_export(export_dir, target)
    refresh_golden_files(target)


def deploy(run_dir: Path, meta: pd.DataFrame, waves: np.ndarray, config: Config,
           publish_dir: Path | None = None) -> dict:
    """Train on all clips, prune, quantise and export (mirrored to ``publish_dir`` when given); returns the
    export summary."""
    start = time.time()
    check_teachers(config, {DEPLOY_DIR: []}, data_mod.class_names(meta))  # before deploy/ exists
    transfer.check_source(config, data_mod.class_names(meta), meta["filename"].tolist())
    table = teacher_table(config, meta, waves)  # checked before deploy/ exists
    out_dir = run_dir / DEPLOY_DIR
    out_dir.mkdir(exist_ok=True)
    y = data_mod.labels(meta)
    num_classes = int(y.max()) + 1
    fit_rows, val_rows = data_mod.carve_validation(meta, np.arange(len(meta)), config.data.val_fraction,
                                                   config.data.random_state)
    model, normalization, history = fit_model(
        waves, y, fit_rows, val_rows, num_classes, config, out_dir, seed=config.train.seed,
        soft_targets_for=teacher_soft_targets(config, DEPLOY_DIR, meta, waves, fit_rows, None, [],
                                              table, out_dir))
    save_model(model, out_dir / MODEL_FILE)  # before pruning: the full model can teach a distilled deployment model
    pruned = _prune(model, waves, y, fit_rows, val_rows, num_classes, config, normalization)
    calibration, calibration_rows = _calibration(waves, y, fit_rows, config, normalization)
    model_meta = ModelMeta(config, normalization, data_mod.class_names(meta), meta["filename"].tolist())
    extra = {"params": int(model.count_params()), "macs": count_macs(model),
             "kernel_sparsity": kernel_sparsity(pruned), "epochs_trained": len(history["loss"]),
             "trained_on_clips": len(model_meta.trained_on), "calibration_clips": len(calibration_rows),
             "wall_seconds": time.time() - start}
    summary = write_deployment(out_dir, to_float_tflite(pruned), to_int8_tflite(pruned, calibration), model_meta,
                               extra=extra)
    if publish_dir is not None:
        publish(out_dir, publish_dir)
    return summary


def run_edge_stages(run_dir: Path, overrides: list[str] | None = None, deploy_model: bool | None = None,
                    progress: bool = True, replace_published: bool = False,
                    clips: tuple[pd.DataFrame, np.ndarray] | None = None) -> None:
    """Per-fold comparison for every finished fold without one, then the deployment export, mirrored to
    ``export.publish_dir`` (:func:`publish_target`). ``clips``: the run's metadata and decoded clips when
    the caller already holds them (:func:`rescore`). Every refusal comes before any audio is decoded."""
    overrides = overrides or []
    check_edge_overrides(overrides)
    saved = run_config(run_dir, [])
    config = apply_overrides(saved, overrides)
    fold_dirs = sorted(d for d in run_dir.iterdir() if (d / RESULT_FILE).is_file())
    check_edge_results_current(run_dir, fold_dirs, saved, config)
    meta, waves, _ = run_dataset(run_dir, config, progress) if clips is None else (*clips, None)
    save_config(config, run_dir / "config.yaml")  # the report then describes the stages as they run
    if config.export.edge_eval:
        for i, fold_dir in enumerate(fold_dirs, 1):
            if (fold_dir / EDGE_FILE).is_file():
                print(f"[edge {i}/{len(fold_dirs)}] {fold_dir.name}: already done, skipping", flush=True)
                continue
            print(f"[edge {i}/{len(fold_dirs)}] {fold_dir.name}: prune, quantise, compare", flush=True)
            r = edge_fold(fold_dir, meta, waves, config)
            v = r["variants"]
            print(f"[edge {i}/{len(fold_dirs)}] {fold_dir.name}: float {v['keras_float']['accuracy']:.4f}, "
                  f"int8 TFLM {v['int8_tflm']['accuracy']:.4f}, agreement "
                  f"{r['agreement']['keras_float_vs_int8_tflm']:.4f}", flush=True)
    if config.export.deploy if deploy_model is None else deploy_model:
        target = publish_target(config, replace_published)
        if (run_dir / DEPLOY_DIR / "export.json").is_file():
            print("[deploy] already exported, skipping", flush=True)
            if target is not None:
                publish(run_dir / DEPLOY_DIR, target)
                print(f"[deploy] published to {target}/", flush=True)
        else:
            print(f"[deploy] training the deployment model on all {len(meta)} clips", flush=True)
            summary = deploy(run_dir, meta, waves, config, target)
            print(f"[deploy] int8 model {summary['int8_tflite_bytes']} bytes, TFLM arena "
                  f"{summary['arena_size_bytes']} bytes -> {run_dir / DEPLOY_DIR}"
                  + (f" and {target}/" if target is not None else ""), flush=True)


EDGE_SECTIONS = ("prune.", "export.")  # what esc-tf deploy may set: the stages after training
DATA_LOCATION = ("data.data_dir", "data.cache_dir")  # where the run's clips are read from now
# options whose change makes a finished fold comparison or deployment model stale
EDGE_RESULT_OPTIONS = ("prune.", "export.representative_clips")


def check_edge_overrides(overrides: list[str]) -> None:
    """Refuse an override of the edge stages outside ``prune.*`` / ``export.*``: the folds were trained and
    scored with the run's other options (scoring options change through :func:`rescore`)."""
    for assignment in overrides:
        key = assignment.partition("=")[0].strip()
        if not key.startswith(EDGE_SECTIONS) and key not in DATA_LOCATION:
            raise ConfigError(f"--set {key}: the edge stages of a finished run take only prune.* and export.* "
                              "options, data.data_dir and data.cache_dir (model.time_rolls and model.mel_shifts "
                              "with --rescore); train a new run to change the others")


def check_edge_results_current(run_dir: Path, fold_dirs: list[Path], saved: Config, config: Config) -> None:
    """Refuse options that would make finished fold comparisons or the deployment model disagree with
    ``config`` (pruning, calibration clips): they were made with the run's ``saved`` options."""
    changed = [key for key in option_fields() if key.startswith(EDGE_RESULT_OPTIONS)
               and option_value(saved, key) != option_value(config, key)]
    done = [d / EDGE_FILE for d in fold_dirs if (d / EDGE_FILE).is_file()]
    if (run_dir / DEPLOY_DIR / "export.json").is_file():
        done.append(run_dir / DEPLOY_DIR)
    if changed and done:
        raise ConfigError(f"--set {', '.join(changed)}: {done[0]} was made with the run's own value; the edge "
                          "stages would then mix two settings. Run it on a copy of the run without its "
                          "fold*/edge.json and deploy/")


def run_config(run_dir: Path, overrides: list[str]) -> Config:
    """A finished run's saved config with ``overrides`` applied."""
    return apply_overrides(load_config(run_dir / "config.yaml", written_by_esc_tf=True), overrides)


def run_dataset(run_dir: Path, config: Config, progress: bool = False
                ) -> tuple[pd.DataFrame, np.ndarray, dict[str, int]]:
    """The metadata and decoded clips of the dataset ``config`` points at, and the row of each file name;
    refused before decoding when it is not the dataset the run in ``run_dir`` trained on."""
    meta = data_mod.load_dataset(config)
    check_same_inputs(run_dir, {"data": data_mod.listing_fingerprint(meta)},
                      remedy="run the command from the folder the run was trained from, or point "
                             "--set data.data_dir at the dataset it trained on")
    waves = data_mod.load_waveforms(meta, config.audio, config.data.cache_dir, progress=progress)
    return meta, waves, {name: i for i, name in enumerate(meta["filename"])}


def run_clips(run_dir: Path, overrides: list[str], progress: bool = False
              ) -> tuple[Config, pd.DataFrame, np.ndarray, dict[str, int]]:
    """A finished run's config (``overrides`` applied) and :func:`run_dataset` of it."""
    config = run_config(run_dir, overrides)
    return (config, *run_dataset(run_dir, config, progress))


def fold_model_and_test_features(fold_dir: Path, waves: np.ndarray, row_of: dict[str, int], config: Config
                                  ) -> tuple[FoldResult, keras.Model, ModelMeta, np.ndarray, np.ndarray]:
    """A finished fold's result, saved model, its metadata, its test clips' features and their rows in
    ``waves`` (``row_of``: file name -> row); the features are normalised as the fold's model was trained."""
    result = load_fold_result(fold_dir)
    rows = np.array([row_of[name] for name in result.test_files], int)
    model_meta = ModelMeta.for_model(fold_dir / MODEL_FILE)
    model = keras.models.load_model(fold_dir / MODEL_FILE, compile=False)
    return result, model, model_meta, pipeline.feature_array(waves[rows], config, model_meta.normalization), rows


def _scoring_override(assignment: str) -> bool:
    return assignment.partition("=")[0].strip() in options_with_role("scoring")


def rescore(run_dir: Path, overrides: list[str], progress: bool = True) -> None:
    """Score every finished fold's saved model again with the scoring options in ``overrides``
    (``options_with_role("scoring")``, e.g. ``model.time_rolls=16``), without retraining: each fold's
    float scores (``result.json``), its ``model_meta.json`` and ``edge.json`` are rewritten, then the
    run's ``config.yaml`` and report.
    The other overrides apply as in :func:`run_edge_stages`. A run with a deployment model is refused:
    its export would no longer describe how it scores (rescore a copy without ``deploy/``)."""
    if (run_dir / DEPLOY_DIR).exists():
        raise ConfigError(f"{run_dir / DEPLOY_DIR}: a rescored run's deployment model would not match its scores; "
                          "rescore a copy of the run without deploy/")
    scoring = [a for a in overrides if _scoring_override(a)]
    others = [a for a in overrides if a not in scoring]
    config = run_config(run_dir, scoring)
    check_scoring_config(config)
    check_edge_overrides(others)  # here, not only in run_edge_stages: before any fold is rewritten
    meta, waves, row_of = run_dataset(run_dir, apply_overrides(config, others), progress)
    rescored = []  # every fold scored before any is rewritten: an interruption leaves the run as it was
    for fold_dir in sorted(d for d in run_dir.iterdir() if (d / RESULT_FILE).is_file()):
        result, model, model_meta, feats, _ = fold_model_and_test_features(fold_dir, waves, row_of, config)
        y_pred = clip_scores(keras_predictor(model), feats, config).argmax(axis=1)
        result.y_pred, result.accuracy = y_pred.tolist(), float(np.mean(y_pred == np.array(result.y_true)))
        rescored.append((fold_dir, result, model_meta))
        if progress:
            print(f"[rescore] {fold_dir.name}: float {result.accuracy:.4f}", flush=True)
    for fold_dir, result, model_meta in rescored:
        (fold_dir / EDGE_FILE).unlink(missing_ok=True)
        write_json_atomic(fold_dir / RESULT_FILE, result.to_dict())
        ModelMeta(apply_overrides(model_meta.config, scoring), model_meta.normalization, model_meta.class_names,
                  model_meta.trained_on).save(fold_dir)
    save_config(config, run_dir / "config.yaml")
    record_recipe(run_dir, config)  # the folds now score this way: resuming under the old options is refused
    run_edge_stages(run_dir, others, deploy_model=False, progress=progress, clips=(meta, waves))

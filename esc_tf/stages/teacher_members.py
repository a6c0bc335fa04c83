"""Networks of this pipeline as members of a teacher table, each scoring only clips it never trained on.

A finished cross-validation run (``esc-tf teacher --cnn-runs RUN``) lends its fold models to the
held-out sets of one fold: ``RUN/fold3`` trained on every fold but 3. A set of two held-out folds has no
such model, so one is trained here with the run's own config on the remaining folds and kept under the
table's folder (``members/RUN-NAME/heldout-1-3/``, with ``member.json`` naming the run, its config and
the audio): the same command resumes, reusing it only for the same run, config and audio. Each member
scores the held-out clips on their views (as training scored them) with its Keras float model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from esc_tf.artifacts import MODEL_FILE, ModelMeta, relative_path, write_json_atomic
from esc_tf.config import Config, ConfigError, load_config
from esc_tf.data import dataset as data_mod
from esc_tf.models import transfer
from esc_tf.models.networks import save_model
from esc_tf.stages.evaluate import score_waves
from esc_tf.stages.train import fit_model

MEMBERS_DIR = "members"


def member_config(run: Path, dataset_config: Config, meta: pd.DataFrame) -> Config:
    """The config ``run`` trained with, after checking it can join a teacher of this dataset: refused when the
    run learned from teachers (a member taught by a teacher would hand that teacher's view back to it), reads
    audio with other settings than the table, or started from a model that knows these clips."""
    path = run / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"--cnn-runs {run}: no config.yaml (name a finished esc-tf train run folder)")
    config = load_config(path, written_by_esc_tf=True)
    if config.distill.teacher_runs or config.distill.teacher_targets:
        raise ConfigError(f"--cnn-runs {run}: that run learned from teachers; a teacher member must not")
    if config.audio != dataset_config.audio:
        raise ConfigError(f"--cnn-runs {run}: it reads audio with other settings ({config.audio}) than this table "
                          f"({dataset_config.audio}); pass the same audio.* options to esc-tf teacher")
    transfer.check_source(config, data_mod.class_names(meta), meta["filename"].tolist())
    return config


def _held_out_name(held_out: tuple[int, ...]) -> str:
    return "heldout-" + "-".join(map(str, held_out))


def _fold_model(run: Path, held_out: tuple[int, ...], meta: pd.DataFrame) -> Path | None:
    """The run's own fold model for a single held-out fold, if it has one that held that fold out."""
    if len(held_out) != 1:
        return None
    model = run / f"fold{held_out[0]}" / MODEL_FILE
    if not model.is_file():
        return None
    held = set(meta.loc[meta["fold"] == held_out[0], "filename"])
    if set(ModelMeta.for_model(model).trained_on) & held:
        raise ConfigError(f"--cnn-runs {run}: fold{held_out[0]}'s model trained on clips of fold {held_out[0]}")
    return model


def _member_key(run: Path, config: Config, audio_sha256: str) -> dict:
    """What a member trained here depends on: the run it copies, its config and the clips' audio."""
    return {"run": str(run.resolve()), "config": config.to_dict(), "audio_sha256": audio_sha256}


def _train_member(config: Config, held_out: tuple[int, ...], meta: pd.DataFrame, waves: np.ndarray,
                  folder: Path, key: dict) -> Path:
    """Train (or reuse, when trained for the same ``key``) a model with ``config`` on every fold not in
    ``held_out``; returns its model file."""
    model_path = folder / MODEL_FILE
    key_file = folder / "member.json"
    if model_path.is_file() and key_file.is_file() and json.loads(key_file.read_text()) == key:
        return model_path
    folder.mkdir(parents=True, exist_ok=True)
    rows = np.flatnonzero(~meta["fold"].isin(held_out).to_numpy())
    fit_rows, val_rows = data_mod.carve_validation(meta, rows, config.data.val_fraction, config.data.random_state)
    y = data_mod.labels(meta)
    model, normalization, history = fit_model(waves, y, fit_rows, val_rows, int(y.max()) + 1, config, folder,
                                              seed=config.train.seed + sum(10 ** i * f for i, f in enumerate(held_out)))
    save_model(model, model_path)
    ModelMeta(config, normalization, data_mod.class_names(meta), meta["filename"].iloc[rows].tolist()).save(folder)
    write_json_atomic(folder / "history.json", history)
    write_json_atomic(key_file, key)
    return model_path


def member_probabilities(run: Path, config: Config, held_out: tuple[int, ...], meta: pd.DataFrame,
                         waves: np.ndarray, audio_sha256: str, table_dir: Path, progress: bool = False) -> np.ndarray:
    """Clip probabilities ``[clips of the held-out folds, classes]`` of ``run``'s member for ``held_out``, on
    ``waves`` (the dataset's clips, decoded with the table's audio settings); ``config``: the run's, as
    :func:`member_config` checked it."""
    model = _fold_model(run, held_out, meta)
    if model is None:
        if progress:
            print(f"training a member like {relative_path(run)} with folds {held_out} held out", flush=True)
        model = _train_member(config, held_out, meta, waves,
                              table_dir / MEMBERS_DIR / run.name / _held_out_name(held_out),
                              _member_key(run, config, audio_sha256))
    model_meta = ModelMeta.for_model(model)
    if model_meta.class_names != data_mod.class_names(meta):
        raise ConfigError(f"--cnn-runs {run}: its models know other classes than this dataset's")
    rows = np.flatnonzero(meta["fold"].isin(held_out).to_numpy())
    if set(model_meta.trained_on) & set(meta["filename"].iloc[rows]):
        raise ConfigError(f"--cnn-runs {run}: the member for folds {held_out} trained on some of their clips")
    return score_waves(model, model_meta, config, waves[rows], "keras")

"""Teacher soft targets for distillation: computed once per clip and kept on disk.

A student learns from its teachers' probabilities on its training clips. They are computed once,
on each clip as it is scored (its ``model.time_rolls`` rotations at each mel shift, probabilities at
``distill.temperature`` averaged over those views and over the teachers), and saved under
``data.cache_dir`` in a file keyed by the clips' audio, the teachers' model files, the temperature
and the front end and views. Training again on the same clips with the same teachers (another seed,
a resumed run, the next epoch) reads them back, so a distilled epoch costs what a plain one costs.

Only the clips a fold fits on get targets; the teachers were checked not to have trained on that
fold's test clips (:func:`esc_tf.teachers.distill.checked_teacher_meta`), so no test clip reaches
the student through its teachers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from esc_tf import pipeline
from esc_tf.artifacts import Normalization, cached_array
from esc_tf.config import Config
from esc_tf.teachers.distill import Teacher

CACHE_PREFIX = "teacher-targets-"
CACHE_VERSION = 1


def cache_key(teacher: Teacher, waves: np.ndarray, config: Config) -> str:
    """What the targets depend on: the audio, the teachers' model files, the temperature, front end and views."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, teacher.temperature, dataclasses.asdict(config.features),
                         config.model.time_rolls, config.model.mel_shifts, list(np.shape(waves))]).encode())
    h.update(np.ascontiguousarray(waves, np.float32).tobytes())
    for source in teacher.sources:
        h.update(hashlib.sha256(Path(source).read_bytes()).digest())
    return h.hexdigest()[:24]


def compute(teacher: Teacher, waves: np.ndarray, config: Config, normalization: Normalization,
            mel: np.ndarray | None = None) -> np.ndarray:
    """The teachers' probabilities per clip ``[clips, classes]``, averaged over the clip's views; from the
    clips' :func:`esc_tf.pipeline.mel_cache` when the caller has it (no second STFT)."""
    features = pipeline.feature_array(waves, config, normalization) if mel is None else \
        pipeline.cached_features(mel, config, normalization)
    inputs = pipeline.model_inputs(features, config)
    probabilities = teacher.probabilities(tf.constant(inputs)).numpy()
    return probabilities.reshape(len(waves), len(inputs) // len(waves), -1).mean(axis=1).astype(np.float32)


def _usable(targets: np.ndarray, clips: int) -> bool:
    return (targets.ndim == 2 and targets.shape[0] == clips and bool(np.all(np.isfinite(targets)))
            and bool(np.allclose(targets.sum(axis=1), 1.0, atol=1e-3)))


def soft_targets(teacher: Teacher, waves: np.ndarray, config: Config, normalization: Normalization,
                 cache_dir: str | Path | None, mel: np.ndarray | None = None) -> np.ndarray:
    """The teachers' per-clip probabilities on ``waves``, from the cache when it holds them (a damaged
    or mismatched entry is recomputed), else computed (from ``mel``, the clips' mel cache, if given)
    and cached."""
    path = Path(cache_dir) / f"{CACHE_PREFIX}{cache_key(teacher, waves, config)}.npy" if cache_dir else None
    return cached_array(path, lambda: compute(teacher, waves, config, normalization, mel),
                        lambda targets: _usable(targets, len(waves)))

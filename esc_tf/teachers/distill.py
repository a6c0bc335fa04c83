"""Knowledge distillation: finished runs of this pipeline teach a new model.

Each cross-validation fold of the student is taught by the same fold of every teacher run
(``distill.teacher_runs``); the deployment model by the teachers' deployment models. A teacher
that trained on any of the student's test clips is refused before training starts, so a
distilled score is still a score on clips neither the student nor its teachers trained on.

The teachers score each training clip once, on the views a clip is scored on
(:mod:`esc_tf.stages.soft_targets`, cached on disk by audio and teacher), so a student's epoch costs
what it costs without them. Each target row carries the label and the teachers' mean probabilities
at temperature ``T`` side by side, mixed alike by mixup, and :class:`DistillationLoss` is
Hinton et al.'s ``(1 - w) * CE(label, softmax(z)) + w * T**2 * CE(teacher_T, softmax(z / T))``
(``w`` = ``distill.weight``, ``T`` = ``distill.temperature``; the soft term's KL divergence
differs from its cross-entropy by the teachers' entropy, a constant). At ``T = 1`` it is
cross-entropy against the blend ``(1 - w) * label + w * teacher``. A teacher is nearly certain
of the clips it trained on (the student's), so at ``T = 1`` its probabilities add little beyond
the labels; ``T > 1`` brings out how it ranks the other classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from esc_tf.artifacts import META_FILE, MODEL_FILE, ModelMeta, Normalization
from esc_tf.config import Config, ConfigError, check_same_front_end
from esc_tf.models import transfer

BATCH = 256  # teacher inference chunk: bounds the activations held at once


@dataclass
class Teacher:
    """One or more trained models whose averaged probabilities (at ``temperature``) join the student's targets."""

    models: list[keras.Model]
    scales: list[np.ndarray]  # per teacher, [coefficients, 1, 1]: student-normalised -> teacher-normalised
    offsets: list[np.ndarray]
    temperature: float = 1.0
    sources: tuple[Path, ...] = ()  # the model files, which key the soft-target cache

    def probabilities(self, x: tf.Tensor) -> tf.Tensor:
        """Mean softmax of the teachers' logits / temperature on student features ``[clips, coefficients,
        frames, 1]``."""
        if x.shape[0] is None:
            raise ValueError("teachers need the number of clips known when the graph is built (to bound memory)")
        total = None
        parts = [slice(i, i + BATCH) for i in range(0, x.shape[0], BATCH)]
        for model, scale, offset in zip(self.models, self.scales, self.offsets):
            probs = tf.concat([tf.nn.softmax(model(x[part] * scale + offset, training=False) / self.temperature)
                               for part in parts], axis=0)
            total = probs if total is None else total + probs
        return total / len(self.models)


class DistillationLoss(keras.losses.Loss):
    """Hinton's distillation loss on logits, for targets ``[labels, teacher probabilities]``.

    ``(1 - weight) * CE(label, softmax(z)) + weight * T**2 * CE(teacher, softmax(z / T))``;
    the ``T**2`` keeps the soft term's gradients the size of the hard term's as ``T`` grows.
    Targets as wide as the logits (validation clips, pruning's fine-tuning) are plain labels:
    cross-entropy against them alone.
    """

    def __init__(self, weight: float, temperature: float, name: str = "distillation_loss"):
        super().__init__(name=name)
        self.weight, self.temperature = weight, temperature
        self._cross_entropy = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                                   reduction=keras.losses.Reduction.NONE)

    def get_config(self) -> dict:
        return {"name": self.name, "weight": self.weight, "temperature": self.temperature}

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        classes = y_pred.shape[-1]
        hard = self._cross_entropy(y_true[..., :classes], y_pred)
        if y_true.shape[-1] == classes:
            return hard
        soft = self._cross_entropy(y_true[..., classes:], y_pred / self.temperature)
        return (1.0 - self.weight) * hard + self.weight * self.temperature ** 2 * soft


def label_accuracy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Top-1 agreement with the label columns of a target (the teachers' columns, if any, ignored): Keras's
    categorical accuracy for plain labels, so every run's training accuracy is this one."""
    labels = y_true[..., :y_pred.shape[-1]]
    return tf.cast(tf.equal(tf.argmax(labels, axis=-1), tf.argmax(y_pred, axis=-1)), tf.float32)


def _renormalization(student: Normalization, teacher: Normalization) -> tuple[np.ndarray, np.ndarray]:
    """Affine map from features normalised by ``student`` to the same features normalised by ``teacher``."""
    scale = (student.std / teacher.std).astype(np.float32)
    offset = ((student.mean - teacher.mean) / teacher.std).astype(np.float32)
    return scale[:, None, None], offset[:, None, None]


def checked_teacher_meta(model_dir: Path, config: Config, class_names: list[str], test_files: list[str]) -> ModelMeta:
    """The metadata of the teacher model in ``model_dir``, after checking that it exists, reads this
    run's features and labels, records the clips it trained on, and trained on none of ``test_files``."""
    if not (model_dir / MODEL_FILE).is_file() or not (model_dir / META_FILE).is_file():
        raise ConfigError(f"teacher {model_dir}: no {MODEL_FILE} with its {META_FILE} (train that run first; "
                          "deployment teachers need a deploy/ trained by this version of esc_tf)")
    meta = ModelMeta.for_model(model_dir / MODEL_FILE)
    check_same_front_end(config, meta.config, f"teacher {model_dir}", "teacher")
    if meta.class_names != class_names:
        raise ConfigError(f"teacher {model_dir}: its class names differ from this dataset's "
                          f"({len(meta.class_names)} vs {len(class_names)} classes)")
    if not meta.trained_on:
        raise ConfigError(f"teacher {model_dir}: its {META_FILE} does not list the clips it trained on, so it "
                          "cannot be shown to have held out this run's test clips")
    seen = set(meta.trained_on) & set(test_files)
    if seen:
        raise ConfigError(f"teacher {model_dir} trained on {len(seen)} of this fold's test clips "
                          f"(e.g. {sorted(seen)[0]}); its fold must hold out the same test clips")
    transfer.check_source(meta.config, class_names, test_files, who=f"teacher {model_dir}, its train.init_from")
    return meta


def uses_teachers(config: Config) -> bool:
    """Whether a run learns from teachers (finished runs or a table of teacher targets)."""
    return bool(config.distill.teacher_runs or config.distill.teacher_targets)


def teacher_dirs(config: Config, part: str) -> list[Path]:
    """The folder of each teacher run's model for ``part`` (a fold name such as ``fold1``, or ``deploy``)."""
    return [Path(run) / part for run in config.distill.teacher_runs]


def check_teachers(config: Config, test_files: dict[str, list[str]], class_names: list[str]) -> None:
    """Fail before training unless every teacher run has a usable model for each part (``foldN`` or
    ``deploy``) this run will train, and none trained on that part's ``test_files``."""
    if not config.distill.teacher_runs:
        return
    for part, files in test_files.items():
        for model_dir in teacher_dirs(config, part):
            checked_teacher_meta(model_dir, config, class_names, files)


def load_teacher(config: Config, part: str, student: Normalization, class_names: list[str],
                 test_files: list[str]) -> Teacher | None:
    """The teachers of ``part`` (``foldN`` or ``deploy``), or None when ``distill.teacher_runs`` is empty.

    Checks each teacher again (:func:`checked_teacher_meta`): a teacher that trained on any of
    ``test_files`` (the student's test clips) is refused.
    """
    if not config.distill.teacher_runs:
        return None
    models, scales, offsets, sources = [], [], [], []
    for model_dir in teacher_dirs(config, part):
        meta = checked_teacher_meta(model_dir, config, class_names, test_files)
        models.append(keras.models.load_model(model_dir / MODEL_FILE, compile=False))
        scale, offset = _renormalization(student, meta.normalization)
        scales.append(scale)
        offsets.append(offset)
        sources.append(model_dir / MODEL_FILE)
    return Teacher(models, scales, offsets, config.distill.temperature, tuple(sources))

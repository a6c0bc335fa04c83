"""Score any saved model (Keras, LiteRT or TFLM) on any dataset in the ESC-50 layout.

The training front end runs with the settings read from the ``model_meta.json`` beside the model;
clips the model was trained or calibrated on are counted, so a caller can warn that the score is not
a held-out number.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

from esc_tf import pipeline
from esc_tf.artifacts import ModelError, ModelMeta
from esc_tf.config import Config, apply_override
from esc_tf.data import dataset as data_mod
from esc_tf.data.dataset import DatasetError
from esc_tf.runtime.predictors import clip_scores, load_predictor

# --------------------------------------------------------------------------- metrics

def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, confusion matrix and per-class precision/recall/F1 (sklearn)."""
    labels = list(range(len(class_names)))
    per_class = classification_report(y_true, y_pred, labels=labels, target_names=class_names,
                                      output_dict=True, zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "clips": int(len(y_true)),
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
            "per_class": {n: {k: float(per_class[n][k]) for k in ("precision", "recall", "f1-score", "support")}
                          for n in class_names}}


def format_metrics(metrics: dict, class_names: list[str]) -> str:
    """Accuracy and the confusion matrix of ``metrics`` as printable text."""
    lines = [f"accuracy: {metrics['accuracy']:.4f}  ({metrics['clips']} clips)", "", "confusion matrix "
             "(rows: true class, columns: predicted, in this order):"]
    lines += [f"  {name[:16]:16s} " + " ".join(f"{v:3d}" for v in row)
              for name, row in zip(class_names, metrics["confusion_matrix"])]
    lines += ["", "per-class F1:"]
    lines += [f"  {name:20s} {s['f1-score']:.3f}  (support {int(s['support'])})"
              for name, s in metrics["per_class"].items()]
    return "\n".join(lines)


def score_clips(model_path: str | Path, meta: ModelMeta, config: Config, clips: pd.DataFrame,
                runtime: str = "tflm", progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``[clips, classes]`` of the model on the rows of ``clips`` (metadata of classes it
    knows), decoded and featurised with ``config`` (the model's, pointed at the data) and scored on each
    clip's views as training scored them; and the clips' labels in the model's class order."""
    waves, labels = decode_clips(meta, config, clips, progress)
    return score_waves(model_path, meta, config, waves, runtime), labels


def decode_clips(meta: ModelMeta, config: Config, clips: pd.DataFrame,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``clips`` decoded with ``config.audio``, and their labels in the model's class order."""
    waves = data_mod.load_waveforms(clips, config.audio, config.data.cache_dir, progress=progress)
    return waves, clips["category"].map({n: i for i, n in enumerate(meta.class_names)}).to_numpy()


def score_waves(model_path: str | Path, meta: ModelMeta, config: Config, waves: np.ndarray,
                runtime: str = "tflm") -> np.ndarray:
    """Class probabilities ``[clips, classes]`` of the model on clips already decoded with ``config.audio``,
    featurised with ``config`` and scored on each clip's views as training scored them."""
    feats = pipeline.feature_array(waves, config, meta.normalization)
    return clip_scores(load_predictor(model_path, runtime, meta), feats, config)


def evaluate_on_dataset(model_path: str | Path, data_dir: str | Path, folds: list[int] | None = None,
                        runtime: str = "tflm", progress: bool = True) -> dict:
    """Score a saved model on the clips of ``data_dir`` whose classes it knows."""
    if not Path(model_path).is_file():
        raise ModelError(f"{model_path}: model file not found")
    meta_info = ModelMeta.for_model(model_path)
    config = apply_override(meta_info.config, f"data.data_dir={data_dir}")
    dataset = data_mod.read_metadata(config.resolved_data_dir(), keep_unreadable=True)
    if folds:
        missing = sorted(set(folds) - set(dataset["fold"]))
        if missing:
            raise DatasetError(f"{data_dir}: no clips in fold(s) {missing}")
        dataset = dataset[dataset["fold"].isin(folds)]
    known = dataset["category"].isin(meta_info.class_names)
    skipped = int((~known).sum())
    dataset = dataset[known].reset_index(drop=True)
    if dataset.empty:
        raise DatasetError(f"{data_dir}: no clip belongs to the model's classes")
    probabilities, y_true = score_clips(model_path, meta_info, config, dataset, runtime, progress)
    y_pred = probabilities.argmax(axis=1)
    metrics = classification_metrics(y_true, y_pred, meta_info.class_names)
    seen = set(meta_info.trained_on) & set(dataset["filename"])
    sha256 = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    metrics.update({"model": str(model_path), "model_sha256": sha256,
                    "runtime": runtime if Path(model_path).suffix == ".tflite" else "keras",
                    "data_dir": str(data_dir), "folds": folds or sorted(set(dataset["fold"])),
                    "skipped_unknown_class": skipped, "clips_seen_in_training": len(seen)})
    return metrics

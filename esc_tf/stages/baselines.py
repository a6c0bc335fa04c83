"""Classical reference rows in the same cross-validation harness (scikit-learn).

Each clip becomes a vector of pooled statistics of the training front end's features
(mean, std, min and max of every coefficient over time, and the same of its first
difference). Splits, folds and validation carving are the ones :mod:`esc_tf.stages.train` uses;
the scaler and the models are fitted on the training part of each split only.

``esc-tf baselines --data-dir DIR [--folds 1,2] [--subset esc10] [--out FILE.json]``
"""
from __future__ import annotations

import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from esc_tf import pipeline
from esc_tf.artifacts import Normalization
from esc_tf.audio.features import num_coefficients
from esc_tf.config import Config
from esc_tf.data import dataset as data_mod


def pooled_statistics(features: np.ndarray) -> np.ndarray:
    """``[clips, coefficients, frames(, 1)]`` -> ``[clips, 8 * coefficients]`` summary vectors."""
    f = features.reshape(features.shape[0], features.shape[1], -1)
    delta = np.diff(f, axis=2)
    stats = [f.mean(2), f.std(2), f.min(2), f.max(2), delta.mean(2), delta.std(2), delta.min(2), delta.max(2)]
    return np.concatenate(stats, axis=1)


def baseline_models(seed: int) -> dict:
    """The reference classifiers, each standardising its inputs on the training clips."""
    return {
        "svm_rbf": make_pipeline(StandardScaler(), SVC(C=10.0, gamma="scale")),
        "random_forest": make_pipeline(StandardScaler(), RandomForestClassifier(
            n_estimators=500, random_state=seed, n_jobs=-1)),
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000)),
    }


def run_baselines(config: Config, progress: bool = True) -> dict:
    """Per-fold and mean accuracy of every baseline on the configured dataset and splits."""
    meta = data_mod.load_dataset(config)
    splits = data_mod.make_splits(meta, config.data)
    waves = data_mod.load_waveforms(meta, config.audio, config.data.cache_dir, progress=progress)
    identity = Normalization.identity(num_coefficients(config.features))
    vectors = pooled_statistics(pipeline.feature_array(waves, config, identity))
    y = data_mod.labels(meta)
    results: dict[str, dict] = {}
    for name in baseline_models(config.train.seed):
        start = time.time()
        per_fold = {}
        for split in splits:
            train_rows = np.concatenate([split.train, split.val])  # no early stopping to feed
            model = baseline_models(config.train.seed)[name].fit(vectors[train_rows], y[train_rows])
            per_fold[split.name] = float(accuracy_score(y[split.test], model.predict(vectors[split.test])))
        accs = list(per_fold.values())
        results[name] = {"per_fold": per_fold, "mean": float(np.mean(accs)),
                         "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                         "wall_seconds": time.time() - start}
        if progress:
            print(f"{name}: {results[name]['mean']:.4f} ± {results[name]['std']:.4f} "
                  f"({', '.join(f'{k} {v:.3f}' for k, v in per_fold.items())})", flush=True)
    return {"features": f"pooled statistics of {config.features.kind} ({vectors.shape[1]} values)",
            "clips": len(meta), "results": results}

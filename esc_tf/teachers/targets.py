"""Out-of-fold teacher targets: what a teacher says of each clip, from a teacher that never heard it.

A teacher here is a linear probe (standardised embeddings, logistic regression) on pretrained
embeddings (:mod:`esc_tf.teachers.embedders`). A student whose test fold is ``k`` learns a clip of
fold ``j`` from the probe fitted on every fold but ``j`` and ``k``: that teacher saw neither the
clip nor the student's test clips. The deployment model (no test fold) learns a clip of fold ``j``
from the probe fitted on every fold but ``j``. So a table holds one probe's log-probabilities per
held-out fold set: every pair of folds, and every single fold.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from esc_tf.artifacts import write_bytes_atomic, write_json_atomic
from esc_tf.config import ConfigError

TARGETS_FILE = "targets.npz"
INFO_FILE = "teacher.json"


def audio_digest(waves: np.ndarray) -> str:
    """SHA-256 of decoded clips: what ties a teacher table to the audio it was made from."""
    return hashlib.sha256(np.ascontiguousarray(waves, np.float32).tobytes()).hexdigest()


def held_out_sets(folds: list[int]) -> list[tuple[int, ...]]:
    """Every single fold and every pair of folds, sorted: the held-out sets a table needs."""
    folds = sorted(folds)
    return [(f,) for f in folds] + list(itertools.combinations(folds, 2))


def fit_probe(x: np.ndarray, y: np.ndarray, c: float, seed: int = 0) -> Pipeline:
    """A standardised logistic-regression probe fitted on embeddings ``x`` with labels ``y``."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed)).fit(x, y)


def out_of_fold_log_probs(x: np.ndarray, y: np.ndarray, folds: np.ndarray, num_classes: int, c: float,
                          progress: bool = False) -> dict[tuple[int, ...], np.ndarray]:
    """Per held-out fold set, log-probabilities ``[clips, classes]`` of the probe fitted on the other folds;
    rows of clips the probe trained on are NaN."""
    tables = {}
    sets = held_out_sets(np.unique(folds).tolist())
    for i, held_out in enumerate(sets, 1):
        fitted = ~np.isin(folds, held_out)
        probe = fit_probe(x[fitted], y[fitted], c)
        table = np.full((len(y), num_classes), -np.inf, np.float32)  # a class no fitted clip had: never
        table[:, probe.classes_] = probe.predict_log_proba(x)
        table[fitted] = np.nan
        tables[held_out] = table
        if progress:
            print(f"teacher probe {i}/{len(sets)}: folds {held_out} held out", flush=True)
    return tables


@dataclass
class TeacherTargets:
    """A table of out-of-fold teacher log-probabilities over a dataset's clips (see the module docstring)."""

    filenames: list[str]
    folds: np.ndarray
    class_names: list[str]
    log_probs: dict[tuple[int, ...], np.ndarray]
    info: dict[str, Any]
    digest: str = ""  # SHA-256 of the targets file it was read from ("" before it is saved)

    def probabilities(self, filenames: list[str], test_fold: int | None, temperature: float = 1.0) -> np.ndarray:
        """Teacher probabilities at ``temperature`` ``[clips, classes]`` for training clips ``filenames`` of a
        model whose test fold is ``test_fold`` (None: the deployment model)."""
        index = {name: i for i, name in enumerate(self.filenames)}
        missing = [name for name in filenames if name not in index]
        if missing:
            raise ConfigError(f"teacher targets: no row for {len(missing)} training clips (e.g. {missing[0]}); "
                              "make the table on this dataset with esc-tf teacher")
        rows = np.array([index[name] for name in filenames], dtype=int)
        out = np.empty((len(rows), len(self.class_names)), np.float32)
        for fold in np.unique(self.folds[rows]):
            if fold == test_fold:
                raise ConfigError(f"teacher targets: a training clip is in the test fold {fold}")
            held_out = (int(fold),) if test_fold is None else tuple(sorted((int(fold), int(test_fold))))
            if held_out not in self.log_probs:
                raise ConfigError(f"teacher targets: no probe holds out folds {held_out}; make the table with "
                                  "esc-tf teacher on the folds this run trains on")
            chosen = self.folds[rows] == fold
            logits = self.log_probs[held_out][rows[chosen]] / temperature
            if not np.all(np.isfinite(logits.max(axis=1))):
                raise ConfigError(f"teacher targets: the table's probe for folds {held_out} saw some of these "
                                  "clips; the table is damaged, make it again with esc-tf teacher")
            logits = logits - logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            out[chosen] = probs / probs.sum(axis=1, keepdims=True)
        return out

    def save(self, folder: str | Path) -> Path:
        """Write ``targets.npz`` and ``teacher.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.log_probs, key=lambda k: (len(k), k))
        buffer = io.BytesIO()
        np.savez(buffer, filenames=np.array(self.filenames), folds=self.folds.astype(np.int64),
                 held_out=np.array([list(k) + [-1] * (2 - len(k)) for k in keys], np.int64),
                 log_probs=np.stack([self.log_probs[k] for k in keys]).astype(np.float32))
        write_bytes_atomic(folder / TARGETS_FILE, buffer.getvalue())
        self.digest = hashlib.sha256(buffer.getvalue()).hexdigest()
        write_json_atomic(folder / INFO_FILE, {**self.info, "class_names": self.class_names})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "TeacherTargets":
        """Read a table written by :meth:`save`; one clear error when the folder holds none."""
        folder = Path(folder)
        if not (folder / TARGETS_FILE).is_file() or not (folder / INFO_FILE).is_file():
            raise ConfigError(f"distill.teacher_targets: {folder} holds no {TARGETS_FILE} with its {INFO_FILE}; "
                              "make one with esc-tf teacher --data-dir DIR --out FOLDER")
        try:
            raw = (folder / TARGETS_FILE).read_bytes()
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                filenames = data["filenames"].tolist()
                folds = data["folds"]
                held_out = [tuple(int(f) for f in row if f >= 0) for row in data["held_out"]]
                log_probs = dict(zip(held_out, data["log_probs"]))
            info = json.loads((folder / INFO_FILE).read_text())
            class_names = info.pop("class_names")
            shapes_ok = all(t.shape == (len(filenames), len(class_names)) for t in log_probs.values())
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ConfigError(f"distill.teacher_targets: {folder / TARGETS_FILE} is unreadable ({exc}); make it "
                              "again with esc-tf teacher") from None
        if not shapes_ok or len(folds) != len(filenames):
            raise ConfigError(f"distill.teacher_targets: {folder / TARGETS_FILE} does not match its {INFO_FILE}; "
                              "make it again with esc-tf teacher")
        return cls(filenames, folds, class_names, log_probs, info, hashlib.sha256(raw).hexdigest())


def out_of_fold_accuracy(log_probs: dict[tuple[int, ...], np.ndarray], folds: np.ndarray,
                         labels: np.ndarray) -> dict[str, float]:
    """How often a teacher's top class is the label on clips it did not train on: from the probes (or members)
    holding out one fold (plain cross-validation) and from those holding out two (what a CV student learns
    from). ``log_probs``: a table's, per held-out fold set."""
    single, pair = [], []
    for held_out, table in log_probs.items():
        rows = np.isin(folds, held_out)
        hits = (table[rows].argmax(axis=1) == labels[rows]).tolist()
        (single if len(held_out) == 1 else pair).extend(hits)
    return {"one_fold_held_out": float(np.mean(single)),
            "two_folds_held_out": float(np.mean(pair)) if pair else float("nan")}


def load_for_dataset(folder: str | Path, filenames: list[str], folds: np.ndarray, labels: np.ndarray,
                     class_names: list[str], waves: np.ndarray) -> TeacherTargets:
    """The table in ``folder``, after checking it was made from these clips (names, folds, labels and
    decoded audio) and classes; one clear error otherwise."""
    table = TeacherTargets.load(folder)
    where = f"distill.teacher_targets: {folder}"
    if table.class_names != class_names:
        raise ConfigError(f"{where} was made for other classes ({len(table.class_names)} vs {len(class_names)}); "
                          "make it with esc-tf teacher on this dataset and --subset")
    if (table.filenames != list(filenames) or not np.array_equal(table.folds, folds)
            or table.info.get("labels") != np.asarray(labels).tolist()):
        raise ConfigError(f"{where} was made from other clips, folds or labels; make it with esc-tf teacher on "
                          "this dataset")
    if table.info.get("audio_sha256") != audio_digest(waves):
        raise ConfigError(f"{where} was made from other audio (or another audio.sample_rate); make it with "
                          "esc-tf teacher on this dataset and config")
    return table

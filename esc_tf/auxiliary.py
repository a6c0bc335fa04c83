"""Auxiliary classes: train on this run's classes together with other classes, keep only this run's.

``train.auxiliary_dir`` names a dataset in the ESC-50 layout whose clips of other classes
(``train.auxiliary_subset``, e.g. ESC-50's 40 classes outside ESC-10) join every model's training
set, each with a classifier output of its own. After training, the classifier's rows of the
auxiliary classes are dropped: the model that is scored, quantised and deployed is an ordinary
model of this run's classes (its softmax is the jointly trained one renormalised over them).

The auxiliary clips are never test clips: their classes must be disjoint from this run's (a
shared class could hold this run's test clips under another name, as ``esc50-16k`` renames most
of its clips), and no auxiliary clip may share a file name with this run's clips.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tf_keras as keras

from esc_tf import data as data_mod
from esc_tf import transfer
from esc_tf.config import Config, ConfigError


@dataclass
class AuxiliaryClips:
    """Decoded clips of the auxiliary classes, labelled 0..K-1 among themselves."""

    waves: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    filenames: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _auxiliary_metadata(config: Config) -> pd.DataFrame:
    return data_mod.select_subset(data_mod.read_metadata(config.train.auxiliary_dir), config.train.auxiliary_subset)


def load_auxiliary_metadata(config: Config, meta: pd.DataFrame) -> pd.DataFrame | None:
    """The auxiliary clips' metadata after checking them against this run's clips (``meta``); None
    without ``train.auxiliary_dir``. Reads no audio, so it can run before anything is written."""
    t = config.train
    if not t.auxiliary_dir:
        return None
    who = f"train.auxiliary_dir {t.auxiliary_dir}"
    if t.teacher_runs:
        raise ConfigError(f"{who}: teachers (train.teacher_runs) know only this run's classes; use one or the other")
    if config.model.branches > 1:
        raise ConfigError(f"{who}: the auxiliary outputs are cut from one classifier, and model.branches "
                          f"{config.model.branches} has several; use one or the other")
    aux = _auxiliary_metadata(config)
    shared = sorted(set(aux["category"]) & set(meta["category"]))
    if shared:
        raise ConfigError(f"{who} (subset {t.auxiliary_subset}): it holds {len(shared)} of this run's classes "
                          f"(e.g. {shared[0]}); its clips of them could be this run's test clips, so choose a "
                          "subset of other classes (e.g. train.auxiliary_subset=not-esc10 for ESC-10)")
    seen = {Path(n).stem for n in aux["filename"]} & {Path(n).stem for n in meta["filename"]}
    if seen:
        raise ConfigError(f"{who}: {len(seen)} of its clips are this run's clips too (e.g. {sorted(seen)[0]})")
    return aux


def load_auxiliary(config: Config, meta: pd.DataFrame, progress: bool = True) -> AuxiliaryClips | None:
    """Check and decode the auxiliary clips (resampled like this run's); None without any."""
    aux = load_auxiliary_metadata(config, meta)
    if aux is None:
        return None
    waves = data_mod.load_waveforms(aux, config.audio, config.data.cache_dir, progress=progress)
    return AuxiliaryClips(waves, data_mod.labels(aux), data_mod.class_names(aux), aux["filename"].tolist())


def with_auxiliary(waves: np.ndarray, labels: np.ndarray, num_classes: int,
                   auxiliary: AuxiliaryClips | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Training clips and labels with the auxiliary ones appended after this run's classes, and the
    number of classifier outputs to train."""
    if auxiliary is None:
        return waves, labels, num_classes
    return (np.concatenate([waves, auxiliary.waves]), np.concatenate([labels, auxiliary.labels + num_classes]),
            num_classes + auxiliary.num_classes)


def with_auxiliary_files(filenames: list[str], auxiliary: AuxiliaryClips | None) -> list[str]:
    """This run's training file names followed by the auxiliary clips' (a model's ``trained_on``)."""
    return filenames + (auxiliary.filenames if auxiliary else [])


def keep_classes(model: keras.Model, num_classes: int, build: keras.Model) -> keras.Model:
    """``build`` (the same network with ``num_classes`` outputs) given ``model``'s weights and the
    first ``num_classes`` outputs of its classifier."""
    transfer.transfer_weights(model, build)
    kernel, bias = model.layers[-1].get_weights()
    build.layers[-1].set_weights([kernel[:, :num_classes], bias[:num_classes]])
    return build


def describe(config: Config) -> dict | None:
    """Where the auxiliary classes came from and how many classes and clips they held (for reports)."""
    t = config.train
    if not t.auxiliary_dir:
        return None
    aux = _auxiliary_metadata(config)
    return {"dir": t.auxiliary_dir, "subset": t.auxiliary_subset, "classes": len(data_mod.class_names(aux)),
            "clips": len(aux)}

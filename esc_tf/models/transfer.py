"""Transfer: start a run's models from a model another run trained.

``train.init_from`` names a finished run (its ``deploy/`` model, trained on all its clips) or a
folder holding ``model.keras`` and ``model_meta.json``. Every fold's model and the deployment
model start from that model's weights, except the classifier, which starts fresh; training then
goes on as usual (schedule, augmentation, BN recalibration).

Two kinds of source keep this run's scores held out:

* a model of other classes (``data.subset: not-esc10`` for ESC-10): it knows none of this run's
  classes, and every model starts from the source run's ``deploy/``;
* a cross-validation run that knows some of this run's classes (the ESC-50 run for ESC-10): each
  fold's model starts from the source's model of the same test fold, which never heard that fold's
  clips; a fold the source has no model for (ESC-10's fold 4 when the source is ``esc50-16k``) and
  the deployment model start from its ``deploy/``. Because a clip can sit in two datasets under
  different names, every clip of a shared class that the source trained on must be found in this
  dataset under its name (the source's dataset is read to tell which those are), and none of them
  may be in the test fold of the model that starts from it.

The source must itself be trained from scratch (no ``init_from``, no teachers): what a model learned
from is checked one generation deep.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import tf_keras as keras

from esc_tf.artifacts import DEPLOY_DIR, META_FILE, MODEL_FILE, ModelMeta
from esc_tf.config import Config, ConfigError, check_same_front_end, option_value, options_with_role
from esc_tf.data import dataset as data_mod


def _holds_model(folder: Path) -> bool:
    return (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file()


def source_dir(config: Config, part: str = DEPLOY_DIR, class_names: Sequence[str] = ()) -> Path | None:
    """The folder of the model that ``part`` of this run (``foldN`` or ``deploy``) starts from: ``train.init_from``
    itself when it holds a model; else the source run's model of the same test fold when that run knows some
    of ``class_names`` and has one; else the run's ``deploy/``. None without ``train.init_from``."""
    if not config.train.init_from:
        return None
    root = Path(config.train.init_from)
    if _holds_model(root):
        return root
    same_fold = root / part
    if part != DEPLOY_DIR and _holds_model(same_fold) \
            and set(ModelMeta.for_model(same_fold / MODEL_FILE).class_names) & set(class_names):
        return same_fold
    return root / DEPLOY_DIR


def check_source(config: Config, class_names: list[str], filenames: list[str],
                 test_files: Mapping[str, Sequence[str]] | None = None,
                 who: str = "train.init_from") -> ModelMeta | None:
    """The source model's metadata, after checking that it exists, reads this run's features, builds
    the same network and was trained from scratch, and that none of the models that start from it can
    have heard their own test clips. ``filenames``: this dataset's clips; ``test_files``: each part of the
    run (``foldN``, ``deploy``) and its test clips, needed when the source knows some of ``class_names``
    (without it such a source is refused). ``who`` starts the error messages."""
    model_dir = source_dir(config)
    if model_dir is None:
        return None
    if not _holds_model(model_dir):
        raise ConfigError(f"{who} {config.train.init_from}: no {MODEL_FILE} with its {META_FILE} in "
                          f"{model_dir} (train that run with export.deploy=true first)")
    meta = ModelMeta.for_model(model_dir / MODEL_FILE)
    check_same_front_end(config, meta.config, f"{who} {model_dir}", "source")
    differ = [f"{k}: {option_value(meta.config, k)!r} vs {option_value(config, k)!r}"
              for k in options_with_role("network") if option_value(meta.config, k) != option_value(config, k)]
    if differ:
        raise ConfigError(f"{who} {model_dir}: it builds another network (source vs this run: "
                          f"{', '.join(differ)})")
    if meta.config.train.init_from or meta.config.distill.teacher_runs or meta.config.distill.teacher_targets:
        raise ConfigError(f"{who} {model_dir}: it was itself started from or taught by other runs, whose "
                          "clips cannot be checked here; start from a model trained from scratch")
    shared = sorted(set(meta.class_names) & set(class_names))
    if not shared:
        seen = {Path(n).stem for n in meta.trained_on} & {Path(n).stem for n in filenames}
        if seen:
            raise ConfigError(f"{who} {model_dir}: it trained on {len(seen)} of this dataset's clips "
                              f"(e.g. {sorted(seen)[0]})")
        return meta
    if test_files is None:
        raise ConfigError(f"{who} {model_dir}: it knows {len(shared)} of this run's classes (e.g. {shared[0]}); only "
                          "the fold models of esc-tf train can start from such a source (each from the source's model "
                          "of its test fold): start from a model trained on other classes (e.g. data.subset=not-esc10)")
    here = {Path(n).stem for n in filenames}
    for part, tests in test_files.items():
        part_dir = source_dir(config, part, class_names)
        _check_held_out(ModelMeta.for_model(part_dir / MODEL_FILE), shared, here,
                        {Path(n).stem for n in tests}, f"{who} {part_dir} (for {part})")
    return meta


def _check_held_out(source: ModelMeta, shared: list[str], here: set[str], tests: set[str], who: str) -> None:
    """Refuse a source model that trained on one of ``tests`` or on a clip of a ``shared`` class that this
    dataset (clip stems ``here``) does not hold under the same name: that clip could be a renamed test clip."""
    data_dir = source.config.resolved_data_dir()
    try:
        listing = pd.read_csv(data_mod.metadata_path(data_dir), usecols=["filename", "category"])
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{who}: it knows this run's classes, so the clips it trained on must be checked against "
                          f"this run's test clips, but its dataset's {data_mod.metadata_path(data_dir)} cannot be read "
                          f"({exc}); run from the folder it was trained in, where its data.data_dir is found") from exc
    trained = set(source.trained_on)
    of_shared = {Path(n).stem for n, c in zip(listing["filename"], listing["category"]) if n in trained and c in shared}
    unknown = sorted(of_shared - here)
    if unknown:
        raise ConfigError(f"{who}: it trained on {len(unknown)} clips of this run's classes that this dataset does not "
                          f"hold under the same name (e.g. {unknown[0]}); they could be its test clips renamed")
    seen = sorted(({Path(n).stem for n in trained} | of_shared) & tests)
    if seen:
        raise ConfigError(f"{who}: it trained on {len(seen)} of that model's test clips (e.g. {seen[0]})")


def transfer_weights(source: keras.Model, target: keras.Model) -> int:
    """Copy every layer's weights from ``source`` into ``target`` except the last layer with weights
    (the classifier). Returns the number of layers copied; raises if the networks differ."""
    with_weights = [(s, t) for s, t in zip(source.layers, target.layers) if t.weights]
    if len(source.layers) != len(target.layers) or not with_weights:
        raise ConfigError(f"train.init_from: the source network has {len(source.layers)} layers, this run's "
                          f"{len(target.layers)}")
    for s, t in with_weights[:-1]:
        shapes = [tuple(w.shape) for w in s.weights], [tuple(w.shape) for w in t.weights]
        if shapes[0] != shapes[1]:
            raise ConfigError(f"train.init_from: layer {t.name} has weights {shapes[0]} in the source, "
                              f"{shapes[1]} here")
        t.set_weights(s.get_weights())
    return len(with_weights) - 1


def initialise(model: keras.Model, model_dir: Path | None) -> int:
    """Start ``model`` from the model in ``model_dir`` (:func:`source_dir`, checked earlier by :func:`check_source`);
    0 without one."""
    if model_dir is None:
        return 0
    return transfer_weights(keras.models.load_model(model_dir / MODEL_FILE, compile=False), model)

"""Transfer: start a run's models from a model another run trained on other classes.

``train.init_from`` names a finished run (its ``deploy/`` model, trained on all its clips) or a
folder holding ``model.keras`` and ``model_meta.json``. Every fold's model and the deployment
model start from that model's weights, except the classifier, which starts fresh because the
classes differ; training then goes on as usual (schedule, augmentation, BN recalibration).

The source must read the same features and build the same network, and it must know none of
this run's classes: its clips of a shared class could be this run's test clips under another
name (``esc50-16k`` renames most of its clips), so only disjoint classes keep this run's scores
held out. The source must itself be trained from scratch (no ``init_from``, no teachers): what
a model learned from is checked one generation deep. The intended use: a model of ESC-50's
other 40 classes (``data.subset: not-esc10``) for ESC-10.
"""
from __future__ import annotations

from pathlib import Path

import tf_keras as keras

from esc_tf.artifacts import META_FILE, MODEL_FILE, ModelMeta
from esc_tf.config import Config, ConfigError, check_same_front_end, option_value, options_with_role


def source_dir(config: Config) -> Path | None:
    """The folder of the model named by ``train.init_from`` (a run's ``deploy/``, or the folder itself)."""
    if not config.train.init_from:
        return None
    path = Path(config.train.init_from)
    return path / "deploy" if (path / "deploy" / MODEL_FILE).is_file() else path


def check_source(config: Config, class_names: list[str], filenames: list[str],
                 who: str = "train.init_from") -> ModelMeta | None:
    """The source model's metadata, after checking that it exists, reads this run's features, builds
    the same network, knows none of ``class_names`` and none of the clips ``filenames``, and was
    trained from scratch. ``who`` starts the error messages."""
    model_dir = source_dir(config)
    if model_dir is None:
        return None
    if not (model_dir / MODEL_FILE).is_file() or not (model_dir / META_FILE).is_file():
        raise ConfigError(f"{who} {config.train.init_from}: no {MODEL_FILE} with its {META_FILE} in "
                          f"{model_dir} (train that run with export.deploy=true first)")
    meta = ModelMeta.for_model(model_dir / MODEL_FILE)
    check_same_front_end(config, meta.config, f"{who} {model_dir}", "source")
    differ = [f"{k}: {option_value(meta.config, k)!r} vs {option_value(config, k)!r}"
              for k in options_with_role("network") if option_value(meta.config, k) != option_value(config, k)]
    if differ:
        raise ConfigError(f"{who} {model_dir}: it builds another network (source vs this run: "
                          f"{', '.join(differ)})")
    shared = sorted(set(meta.class_names) & set(class_names))
    if shared:
        raise ConfigError(f"{who} {model_dir}: it knows {len(shared)} of this run's classes (e.g. "
                          f"{shared[0]}); its clips of them could be this run's test clips, so it must be trained "
                          "on other classes (e.g. data.subset=not-esc10 for ESC-10)")
    seen = {Path(n).stem for n in meta.trained_on} & {Path(n).stem for n in filenames}
    if seen:
        raise ConfigError(f"{who} {model_dir}: it trained on {len(seen)} of this dataset's clips "
                          f"(e.g. {sorted(seen)[0]})")
    if meta.config.train.init_from or meta.config.distill.teacher_runs or meta.config.distill.teacher_targets:
        raise ConfigError(f"{who} {model_dir}: it was itself started from or taught by other runs, whose "
                          "clips cannot be checked here; start from a model trained from scratch")
    return meta


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


def initialise(model: keras.Model, config: Config) -> int:
    """Start ``model`` from ``train.init_from`` (checked earlier by :func:`check_source`); 0 without one."""
    model_dir = source_dir(config)
    if model_dir is None:
        return 0
    return transfer_weights(keras.models.load_model(model_dir / MODEL_FILE, compile=False), model)

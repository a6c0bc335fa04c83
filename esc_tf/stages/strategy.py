"""Where a model trains: one device, every GPU of the machine, or several machines (tf.distribute).

The same ``esc-tf train`` command runs on a laptop, a multi-GPU box or a cluster; ``train.distribute``
picks the strategy, and the model is built, compiled and fitted under it.
"""
from __future__ import annotations

import tensorflow as tf

from esc_tf.config import ConfigError

STRATEGIES = ("auto", "mirrored", "multi_worker")


def training_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy ``train.distribute`` names.

    - ``auto``: every GPU when the machine has several (mirrored), else the default one-device strategy;
    - ``mirrored``: a replica on every GPU, or on every logical CPU device of a machine without one;
    - ``multi_worker``: a replica on every device of every worker that ``TF_CONFIG`` describes.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"train.distribute: {name!r} is not a strategy; use one of {', '.join(STRATEGIES)}")

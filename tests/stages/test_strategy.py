"""Training under tf.distribute: the same fit on two replicas (two logical CPU devices)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from esc_tf.config import ConfigError
from esc_tf.stages.strategy import training_strategy

ROOT = Path(__file__).resolve().parents[2]

# Logical devices must be set before TensorFlow starts, so the two-replica fit runs in its own process.
TWO_REPLICAS = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from esc_tf.config import with_values
    from esc_tf.data import dataset as data
    from esc_tf.stages.strategy import training_strategy
    from esc_tf.stages.train import fit_model
    from tests.conftest import make_dataset, small_config
    tmp = Path(sys.argv[1])
    config = with_values(small_config(make_dataset(tmp / "ds", folds=(1, 2)), tmp),
                         {"train.distribute": "mirrored", "train.epochs": 3, "prune.enabled": False,
                          "train.lr_schedule": "cosine"})
    meta = data.load_dataset(config)
    waves = data.load_waveforms(meta, config.audio, progress=False)
    y = data.labels(meta)
    model, _, history = fit_model(waves, y, np.arange(len(y)), np.arange(0), 3, config, tmp / "fit", seed=0)
    print(json.dumps({"replicas": training_strategy("mirrored").num_replicas_in_sync,
                      "variable": type(model.trainable_variables[0]).__name__, "loss": history["loss"]}))
""")


def test_a_model_fits_on_two_replicas(tmp_path):
    done = subprocess.run([sys.executable, "-c", TWO_REPLICAS, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["variable"] == "MirroredVariable"  # built under the strategy, one copy per replica
    assert len(result["loss"]) == 3 and result["loss"][-1] < result["loss"][0]


def test_on_one_device_auto_is_the_default_strategy_and_a_bad_name_is_refused():
    assert training_strategy("auto").num_replicas_in_sync == 1
    with pytest.raises(ConfigError, match="train.distribute: 'gpu' is not a strategy"):
        training_strategy("gpu")

"""Pruning fine-tunes on the loss it is given (the training loss), not a copy of its own."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from esc_tf.config import Config, with_values
from esc_tf.prune import kernel_sparsity, prune_and_fine_tune
from esc_tf.stages import train


def _fine_tuned_kernel(loss: keras.losses.Loss) -> tuple[np.ndarray, np.ndarray]:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), np.eye(3, dtype="float32")[rng.integers(0, 3, 32)]
    config = with_values(Config(), {"prune.fine_tune_epochs": 2, "prune.target_sparsity": 0.5}).prune
    pruned = prune_and_fine_tune(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(8), None, config, loss)
    assert kernel_sparsity(pruned) > 0.4
    return model.layers[0].kernel.numpy(), pruned.layers[0].kernel.numpy()


def test_pruning_fine_tunes_on_the_loss_it_is_given():
    def no_gradient(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return 0.0 * tf.reduce_sum(y_pred, axis=-1)

    original, pruned = _fine_tuned_kernel(no_gradient)
    kept = pruned != 0
    np.testing.assert_array_equal(pruned[kept], original[kept])  # a loss without gradient moves no weight
    original, pruned = _fine_tuned_kernel(train.training_loss(Config()))
    kept = pruned != 0
    assert not np.allclose(pruned[kept], original[kept])

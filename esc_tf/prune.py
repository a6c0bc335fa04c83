"""Magnitude pruning with tensorflow-model-optimization, then fine-tuning.

The pruned model is returned stripped of its pruning wrappers, so it converts like any
other model. Zeros do not shrink a dense ``.tflite``; what they buy is compressibility
(gzip for over-the-air updates), measured in the export report.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from esc_tf.config import PruneConfig
from esc_tf.pipeline import continuous


def prune_and_fine_tune(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset | None,
                        config: PruneConfig, loss: keras.losses.Loss, verbose: int = 0) -> keras.Model:
    """Prune ``model``'s kernels to ``config.target_sparsity`` along a polynomial schedule, fine-tuning
    on ``loss`` (the one the model trained on: :func:`esc_tf.stages.train.training_loss`).

    Sparsity ramps up over the first 70 % of the fine-tuning steps and is held for the rest.
    The input model is left untouched; a new, stripped model is returned.
    """
    train_ds, steps_per_epoch = continuous(train_ds)  # refuses a dataset of unknown or infinite length
    total = max(1, config.fine_tune_epochs * steps_per_epoch)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=config.target_sparsity,
        begin_step=0, end_step=max(1, int(0.7 * total)), frequency=max(1, steps_per_epoch // 2))
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    pruned = tfmot.sparsity.keras.prune_low_magnitude(clone, pruning_schedule=schedule)
    pruned.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=["accuracy"])
    pruned.fit(train_ds, steps_per_epoch=steps_per_epoch, validation_data=val_ds,
               epochs=config.fine_tune_epochs, verbose=verbose,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(pruned)


def kernel_sparsity(model: keras.Model) -> float:
    """Fraction of zeros over all Conv and Dense kernels."""
    zeros = total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = layer.get_weights()[0]
            zeros += int(np.sum(kernel == 0))
            total += kernel.size
    return zeros / total if total else 0.0

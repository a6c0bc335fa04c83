"""esc-tf evaluate's stage: a saved model scored on another dataset, on the clips of the classes it knows."""
from __future__ import annotations

import numpy as np
import pytest

from esc_tf.data.dataset import DatasetError
from esc_tf.stages import evaluate
from tests.conftest import CLASSES, OTHER_CLASSES, make_dataset


def test_a_dataset_with_more_classes_is_scored_on_the_models_classes_by_name(exported_run, tmp_path):
    """As the held-out check of a model on a dataset of more classes: clips of other classes are skipped and
    counted, labels are matched by class name (not by the dataset's target numbers), clips the model trained
    on are counted."""
    model = exported_run / "deploy" / "model_int8.tflite"
    wider = make_dataset(tmp_path / "wider", clips_per_class_per_fold=2, folds=(1, 2),
                         classes=CLASSES + OTHER_CLASSES, first_source=300000)
    metrics = evaluate.evaluate_on_dataset(model, wider, progress=False)
    assert metrics["skipped_unknown_class"] == 2 * 2 * len(OTHER_CLASSES)
    assert metrics["clips"] == 2 * 2 * len(CLASSES) and metrics["clips_seen_in_training"] == 0
    assert metrics["folds"] == [1, 2]
    assert np.asarray(metrics["confusion_matrix"]).shape == (len(CLASSES), len(CLASSES))
    assert metrics["accuracy"] >= 0.75  # chance is 1/3: labels follow the class names


def test_an_absent_fold_or_no_known_class_is_refused(exported_run, tmp_path):
    model = exported_run / "deploy" / "model_int8.tflite"
    data = make_dataset(tmp_path / "two-folds", clips_per_class_per_fold=1, folds=(1, 2), first_source=400000)
    with pytest.raises(DatasetError, match=r"no clips in fold\(s\) \[4\]"):
        evaluate.evaluate_on_dataset(model, data, [4], progress=False)
    strangers = make_dataset(tmp_path / "strangers", clips_per_class_per_fold=1, folds=(1,), classes=OTHER_CLASSES,
                             first_source=500000)
    with pytest.raises(DatasetError, match="no clip belongs to the model's classes"):
        evaluate.evaluate_on_dataset(model, strangers, progress=False)

"""Out-of-fold teacher targets: every clip is taught by a probe that saw neither it nor the test fold."""
from __future__ import annotations

import json

import numpy as np
import pytest

from esc_tf.config import ConfigError
from esc_tf.teachers import targets as tt


def _memorisable(folds=(1, 2, 3, 5), clips_per_fold=30, classes=6, dims=400, seed=0):
    """Embeddings with random labels: a probe that saw a clip gets it right, one that did not guesses."""
    rng = np.random.default_rng(seed)
    folds = np.repeat(np.array(folds), clips_per_fold)
    labels = rng.integers(0, classes, len(folds))
    return rng.normal(size=(len(folds), dims)).astype(np.float32), labels, folds


def test_every_single_fold_and_pair_of_folds_gets_its_own_probe():
    assert tt.held_out_sets([5, 1, 3]) == [(1,), (3,), (5,), (1, 3), (1, 5), (3, 5)]


def test_a_probe_gives_targets_only_for_the_clips_it_never_trained_on():
    x, y, folds = _memorisable()
    tables = tt.out_of_fold_log_probs(x, y, folds, num_classes=6, c=100.0)
    assert set(tables) == set(tt.held_out_sets([1, 2, 3, 5]))
    for held_out, log_probs in tables.items():
        inside = np.isin(folds, held_out)
        assert np.isnan(log_probs[~inside]).all()
        assert np.isfinite(log_probs[inside]).all()
        # the labels are noise: a probe that had seen these clips would name them all
        assert (log_probs[inside].argmax(axis=1) == y[inside]).mean() < 0.45, held_out
    fitted_on_three_folds = tt.fit_probe(x[folds != 1], y[folds != 1], 100.0)
    assert (fitted_on_three_folds.predict(x[folds != 1]) == y[folds != 1]).all()  # they are memorisable


def _table_with_a_class_per_held_out_set() -> tt.TeacherTargets:
    """A table whose probe for each held-out set puts its clips on one class: which probe taught is visible."""
    folds = np.array([1, 1, 2, 2, 3, 3])
    sets = tt.held_out_sets([1, 2, 3])
    log_probs = {}
    for cls, held_out in enumerate(sets):
        table = np.full((6, len(sets)), np.nan, np.float32)
        inside = np.isin(folds, held_out)
        table[inside] = np.log(np.full(len(sets), 0.1 / (len(sets) - 1)))
        table[inside, cls] = np.log(0.9)
        log_probs[held_out] = table
    names = [f"{f}-{i}-A-0.wav" for i, f in enumerate(folds)]
    return tt.TeacherTargets(names, folds, [f"c{i}" for i in range(len(sets))], log_probs, {"labels": [0] * 6})


def test_a_cross_validation_clip_is_taught_by_the_probe_holding_out_its_fold_and_the_test_fold():
    table = _table_with_a_class_per_held_out_set()
    sets = tt.held_out_sets([1, 2, 3])
    probs = table.probabilities(table.filenames[:4], test_fold=3)  # fold-1 and fold-2 clips of a fold-3 model
    assert probs.argmax(axis=1).tolist() == [sets.index((1, 3))] * 2 + [sets.index((2, 3))] * 2
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    # the deployment model (no test fold) learns a clip from the probe that held out the clip's fold
    deploy = table.probabilities(table.filenames, test_fold=None)
    assert deploy.argmax(axis=1).tolist() == [sets.index((1,))] * 2 + [sets.index((2,))] * 2 + [sets.index((3,))] * 2


def test_the_temperature_softens_the_teachers_probabilities():
    table = _table_with_a_class_per_held_out_set()
    soft = table.probabilities(table.filenames[:1], test_fold=2, temperature=2.0)[0]
    p = np.sqrt(np.exp(table.log_probs[(1, 2)][0]))
    np.testing.assert_allclose(soft, p / p.sum(), rtol=1e-5)


def test_a_clip_of_the_test_fold_or_one_the_table_lacks_is_refused():
    table = _table_with_a_class_per_held_out_set()
    with pytest.raises(ConfigError, match="test fold 1"):
        table.probabilities(table.filenames[:1], test_fold=1)
    with pytest.raises(ConfigError, match="no row for 1 training clips"):
        table.probabilities(["9-9-A-0.wav"], test_fold=2)


def test_a_table_reads_back_as_written_and_a_missing_one_says_how_to_make_it(tmp_path):
    table = _table_with_a_class_per_held_out_set()
    table.save(tmp_path / "teacher")
    again = tt.TeacherTargets.load(tmp_path / "teacher")
    assert again.filenames == table.filenames and again.class_names == table.class_names
    assert set(again.log_probs) == set(table.log_probs)
    for key in table.log_probs:
        np.testing.assert_array_equal(again.log_probs[key], table.log_probs[key])
    with pytest.raises(ConfigError, match="esc-tf teacher"):
        tt.TeacherTargets.load(tmp_path / "nowhere")
    (tmp_path / "teacher" / tt.TARGETS_FILE).write_bytes(b"not a table")
    with pytest.raises(ConfigError, match="unreadable"):
        tt.TeacherTargets.load(tmp_path / "teacher")


def test_a_table_made_from_other_audio_or_clips_is_refused(tmp_path):
    waves = np.random.default_rng(0).normal(size=(6, 100)).astype(np.float32)
    table = _table_with_a_class_per_held_out_set()
    table.info["audio_sha256"] = tt.audio_digest(waves)
    table.save(tmp_path / "teacher")
    args = (table.filenames, table.folds, np.zeros(6, int), table.class_names)
    assert tt.load_for_dataset(tmp_path / "teacher", *args, waves).filenames == table.filenames
    with pytest.raises(ConfigError, match="other audio"):
        tt.load_for_dataset(tmp_path / "teacher", *args, waves * 0.5)
    with pytest.raises(ConfigError, match="other clips, folds or labels"):
        tt.load_for_dataset(tmp_path / "teacher", table.filenames, table.folds[::-1], *args[2:], waves)
    with pytest.raises(ConfigError, match="other classes"):
        tt.load_for_dataset(tmp_path / "teacher", *args[:3], ["a", "b"], waves)


def test_the_accuracy_of_a_table_counts_only_clips_each_probe_held_out():
    table = _table_with_a_class_per_held_out_set()
    sets = tt.held_out_sets([1, 2, 3])
    labels = np.array([sets.index((1,))] * 2 + [0] * 4)  # right only under the probe holding out fold 1
    acc = tt.out_of_fold_accuracy(table.log_probs, table.folds, labels)
    assert acc["one_fold_held_out"] == pytest.approx(2 / 6)
    assert acc["two_folds_held_out"] == 0.0
    json.dumps(acc)  # recorded in teacher.json

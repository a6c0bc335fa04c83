"""esc_tf.artifacts: the one atomic writer, model metadata, provenance and portable paths."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esc_tf import artifacts
from esc_tf.artifacts import (
    META_FILE,
    ModelError,
    ModelMeta,
    Normalization,
    invocation,
    relative_path,
    write_bytes_atomic,
    write_json_atomic,
)
from esc_tf.config import Config


def test_the_writer_replaces_a_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(path, {"x": 1})
    write_json_atomic(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.tflite"
    write_bytes_atomic(path, b"good")

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_bytes_atomic(path, b"half")
    assert path.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]


def test_model_meta_round_trips_and_a_malformed_one_names_its_file(tmp_path):
    meta = ModelMeta(Config(), Normalization(np.arange(3, dtype=np.float32), np.ones(3, np.float32)), ["a", "b"],
                     ["x.wav"])
    meta.save(tmp_path)
    loaded = ModelMeta.for_model(tmp_path / "model.tflite")
    assert loaded.config == meta.config and loaded.class_names == ["a", "b"] and loaded.trained_on == ["x.wav"]
    np.testing.assert_array_equal(loaded.normalization.mean, meta.normalization.mean)
    (tmp_path / META_FILE).write_text(json.dumps({"config": {}, "class_names": []}))
    with pytest.raises(ModelError, match=f"{META_FILE}.*normalization"):
        ModelMeta.for_model(tmp_path / "model.tflite")
    huge = meta.to_dict()
    huge["config"]["features"]["fft_length"] = 10 ** 12  # a front end that would ask for terabytes
    (tmp_path / META_FILE).write_text(json.dumps(huge))
    with pytest.raises(ModelError, match=f"{META_FILE}.*features.fft_length"):
        ModelMeta.for_model(tmp_path / "model.tflite")
    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(ModelError, match=str(tmp_path / META_FILE)):
        ModelMeta.for_model(tmp_path / "model.tflite")
    with pytest.raises(ModelError, match="no model_meta.json"):
        ModelMeta.for_model(tmp_path / "elsewhere" / "model.tflite")


def test_normalisation_applies_per_coefficient():
    norm = Normalization(np.array([1.0, 2.0], np.float32), np.array([2.0, 4.0], np.float32))
    feats = np.array([[[3.0, 5.0], [6.0, 10.0]]], np.float32)  # [clip, coefficient, frame]
    np.testing.assert_allclose(norm.apply(feats), [[[1.0, 2.0], [1.0, 2.0]]])


def test_invocation_names_the_command_as_a_user_types_it():
    assert invocation(["/usr/local/bin/esc-tf", "train", "--data-dir", "my data"]) == \
        "esc-tf train --data-dir 'my data'"
    assert invocation(["/repo/esc_tf/train.py", "--folds", "1"]) == "python -m esc_tf.train --folds 1"
    assert invocation(["/repo/esc_tf/__main__.py", "check"]) == "python -m esc_tf check"
    assert invocation(["bench.py", "-x"]) == "python bench.py -x"


def test_paths_inside_the_working_folder_become_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert relative_path(tmp_path / "runs" / "r1") == "runs/r1"
    assert relative_path("runs/r1") == "runs/r1"
    assert relative_path("/elsewhere/data") == "/elsewhere/data"


def test_provenance_names_the_packages_that_shape_the_numbers():
    versions = artifacts.package_versions()
    assert {"esc-tf (git)", "python", "tensorflow", "tflite-micro"} <= set(versions)


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(
    JSON,
    st.fixed_dictionaries({"config": JSON, "normalization": JSON, "class_names": JSON}),
    st.fixed_dictionaries({"config": st.just({}), "class_names": st.lists(st.text(max_size=5), max_size=3),
                           "normalization": st.fixed_dictionaries({"mean": JSON, "std": JSON})})))
def test_any_model_meta_file_loads_or_is_refused_naming_it(tmp_path, content):
    """Whatever a model_meta.json holds, reading it gives a ModelMeta or a ModelError naming the file."""
    (tmp_path / META_FILE).write_text(json.dumps(content))
    try:
        ModelMeta.for_model(tmp_path / "model.tflite")
    except ModelError as exc:
        assert str(tmp_path / META_FILE) in str(exc)

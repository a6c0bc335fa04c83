"""esc_tf.runtime.predictors: models are checked before a runtime reads them, and against their metadata."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from esc_tf.artifacts import META_FILE, ModelError, ModelMeta
from esc_tf.cli.main import main as cli_main
from esc_tf.runtime.predictors import load_predictor, tflite_io_shapes


def _copy_export(exported_run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("model_int8.tflite", "model_float.tflite", META_FILE):
        shutil.copy(exported_run / "deploy" / name, folder / name)
    return folder


def test_the_io_shapes_are_read_from_the_flatbuffer(exported_run):
    model = exported_run / "deploy" / "model_int8.tflite"
    meta = ModelMeta.for_model(model)
    inputs, outputs = tflite_io_shapes(model.read_bytes(), model)
    assert inputs[1:] == (13, 61, 1)  # 13 MFCCs x 61 frames of a 1 s clip at 16 kHz, hop 256, frame 512
    assert outputs == (1, len(meta.class_names))


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "a damaged TensorFlow Lite model, truncated or corrupt"),
    (lambda b: b[:200], "a damaged TensorFlow Lite model, truncated or corrupt"),
    (lambda b: b"not a model at all, just text", "not a TensorFlow Lite model \\(no TFL3 identifier\\)"),
    (lambda b: b"", "not a TensorFlow Lite model"),
])
@pytest.mark.parametrize("runtime", ["tflm", "litert"])
def test_a_damaged_tflite_file_is_refused_before_a_runtime_reads_it(exported_run, tmp_path, damage, message,
                                                                    runtime):
    folder = _copy_export(exported_run, tmp_path)
    model = folder / "model_int8.tflite"
    model.write_bytes(damage(model.read_bytes()))
    with pytest.raises(ModelError, match=message) as err:
        load_predictor(model, runtime)
    assert str(model) in str(err.value) and "esc-tf deploy" in str(err.value)


def test_a_damaged_model_ends_the_command_with_one_line(exported_run, dataset_dir, tmp_path, capsys):
    folder = _copy_export(exported_run, tmp_path)
    model = folder / "model_int8.tflite"
    model.write_bytes(model.read_bytes()[:5000])
    clip = next((dataset_dir / "audio").iterdir())
    assert cli_main(["predict", str(clip), "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {model}: a damaged TensorFlow Lite model") and "Traceback" not in err


@pytest.mark.parametrize("edit, message", [
    (lambda meta: meta.update(class_names=meta["class_names"][:-1]),
     "has 3 outputs, but its model_meta.json names 2 classes"),
    (lambda meta: meta["config"]["features"].update(num_mfcc=20),
     r"reads inputs of shape \(13, 61, 1\), but its model_meta.json describes features of shape \(20, 61, 1\)"),
])
@pytest.mark.parametrize("model_name", ["model_int8.tflite", "model_float.tflite"])
def test_a_model_that_does_not_match_its_metadata_is_refused(exported_run, tmp_path, edit, message, model_name):
    folder = _copy_export(exported_run, tmp_path)
    meta = json.loads((folder / META_FILE).read_text())
    edit(meta)
    (folder / META_FILE).write_text(json.dumps(meta))
    model = folder / model_name
    with pytest.raises(ModelError, match=message):
        load_predictor(model, "litert", ModelMeta.for_model(model))
    load_predictor(model, "litert")  # without its metadata the model itself loads


def test_a_keras_model_is_checked_against_its_metadata_too(exported_run, tmp_path):
    fold = tmp_path / "fold"
    shutil.copytree(exported_run / "fold1", fold)
    meta = json.loads((fold / META_FILE).read_text())
    meta["class_names"] = meta["class_names"] + ["extra"]
    (fold / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="has 3 outputs, but its model_meta.json names 4 classes"):
        load_predictor(fold / "model.keras", "tflm", ModelMeta.for_model(fold / "model.keras"))

"""esc_tf.runtime.predictors: float -> int8 input quantisation against TFLite's own QUANTIZE op (LiteRT's
reference kernel and TFLM, the interpreter a device runs); models checked before a runtime reads them, and
against their metadata."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tflite_micro.python.tflite_micro import runtime as tflm

from esc_tf.artifacts import META_FILE, ModelError, ModelMeta
from esc_tf.cli.main import main as cli_main
from esc_tf.runtime import predictors
from esc_tf.runtime.predictors import load_predictor, tflite_io_shapes

SIZE = 4096


def quantize_model(low: float, high: float) -> bytes:
    """An int8 model whose first op is QUANTIZE of its float input (then a RESHAPE that keeps the int8
    values): its output is TFLite's quantisation of the input with the scale and zero point the
    converter derives from the range ``[low, high]``."""
    inputs = keras.Input((SIZE,))
    model = keras.Model(inputs, keras.layers.Reshape((SIZE, 1))(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.linspace(low, high, SIZE, dtype=np.float32)[None]]
                                                for _ in range(2))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_output_type = tf.int8
    return converter.convert()


def run_litert(model: bytes, x: np.ndarray, resolver: str) -> np.ndarray:
    kind = getattr(tf.lite.experimental.OpResolverType, resolver)
    interpreter = tf.lite.Interpreter(model_content=model, experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).ravel()


def run_tflm(model: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = tflm.Interpreter.from_bytes(model, arena_size=64 * 1024)
    interpreter.set_input(x[None], 0)
    interpreter.invoke()
    return interpreter.get_output(0).ravel()


# (low, high): a power-of-two scale (exact ties), zero point 0 and not, positive-only data (range
# widened to hold 0), and odd scales
RANGES = [(-8.0, 7.9375), (-1.0, 3.0), (0.25, 6.0), (-50.0, 2.0), (-0.037 * 128, 0.037 * 127)]


@pytest.mark.parametrize("low, high", RANGES)
def test_quantize_is_tflites_quantize_op(low, high):
    model = quantize_model(low, high)
    details = tf.lite.Interpreter(model_content=model).get_output_details()[0]
    scale, zero_point = details["quantization"]
    ops = [op["op_name"] for op in tf.lite.Interpreter(
        model_content=model, experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF
    )._get_ops_details()]
    assert ops[0] == "QUANTIZE" and "DEQUANTIZE" not in ops
    s = np.float32(scale)
    k = np.arange(-200, 200, dtype=np.float32)
    rng = np.random.default_rng(0)
    x = np.concatenate([
        (k + np.float32(0.5)) * s,  # ties (exact for a power-of-two scale)
        k * s, (k + np.float32(0.49)) * s, (k + np.float32(0.51)) * s,
        np.nextafter((k + np.float32(0.5)) * s, np.float32(np.inf)),
        np.nextafter((k + np.float32(0.5)) * s, np.float32(-np.inf)),
        rng.normal(0, 100 * s, 1000), rng.uniform(-300 * s, 300 * s, 1000),
        [0.0, -0.0, 1e30, -1e30, 127 * s, -128 * s, 127.5 * s, -128.5 * s, 1000 * s, -1000 * s]])
    x = np.resize(x.astype(np.float32), SIZE)  # padded by repetition to the model's input size
    ours = predictors.quantize(x, scale, zero_point)
    assert ours.dtype == np.int8
    for name, theirs in [("LiteRT reference kernel", run_litert(model, x, "BUILTIN_REF")),
                         ("TFLM", run_tflm(model, x))]:
        wrong = np.flatnonzero(ours != theirs)
        assert wrong.size == 0, (name, scale, zero_point, x[wrong[:5]], ours[wrong[:5]], theirs[wrong[:5]])
    assert np.any(ours == 127) and np.any(ours == -128)  # clamping was exercised
    # LiteRT's optimised x86 kernel (not what a device runs) differs only by one step, at or next to ties
    optimised = run_litert(model, x, "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    assert np.max(np.abs(ours.astype(int) - optimised)) <= 1
    off = np.flatnonzero(ours != optimised)
    v = x[off].astype(np.float64) / scale
    assert np.all(np.abs(np.abs(v - np.trunc(v)) - 0.5) < 1e-4)


def test_the_tie_rule_is_half_away_from_zero_after_a_float32_division():
    assert predictors.quantize(np.float32([0.25, -0.25, 0.75, -0.75, 64.0, -64.5]), 0.5, 0).tolist() == \
        [1, -1, 2, -2, 127, -128]
    x = np.float32(-0.74509805)  # / 0.015686275 is -47.4999997 in float64, exactly -47.5 in float32
    assert predictors.quantize(np.array([x]), 0.01568627543747425, -64).tolist() == [-48 - 64]


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

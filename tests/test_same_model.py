"""benchmarks/same_model.py and export.computation_digest: the same weights under other names are the same
model; one changed byte of a constant is not."""
from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from esc_tf.stages.export import computation_digest
from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def same_model():
    return load_benchmark("same_model")


def _rewritten(model_bytes: bytes, edit) -> bytes:
    """The model with ``edit(ModelT)`` applied, packed again as a .tflite flatbuffer."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    edit(model)
    builder = flatbuffers.Builder(len(model_bytes))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _renamed(model: schema.ModelT) -> None:
    for i, tensor in enumerate(model.subgraphs[0].tensors):
        tensor.name = f"renamed_{i}".encode()


def _one_weight_changed(model: schema.ModelT) -> None:
    for tensor in model.subgraphs[0].tensors:
        data = model.buffers[tensor.buffer].data
        if tensor.type == schema.TensorType.INT8 and data is not None and len(data) > 16:
            data = np.array(data, np.uint8)
            data[7] ^= 1
            model.buffers[tensor.buffer].data = data
            return
    raise AssertionError("no int8 constant to change")


def _scale_changed(model: schema.ModelT) -> None:
    tensor = next(t for t in model.subgraphs[0].tensors if t.quantization is not None and t.quantization.scale
                  is not None and len(t.quantization.scale))
    tensor.quantization.scale = np.array(tensor.quantization.scale, np.float32) * 1.001


def test_other_tensor_names_keep_the_digest_and_any_changed_number_changes_it(exported_run):
    original = (exported_run / "deploy" / "model_int8.tflite").read_bytes()
    renamed = _rewritten(original, _renamed)
    assert renamed != original
    assert computation_digest(renamed) == computation_digest(original)
    assert computation_digest(_rewritten(original, _one_weight_changed)) != computation_digest(original)
    assert computation_digest(_rewritten(original, _scale_changed)) != computation_digest(original)


def test_the_benchmark_says_which_and_how_many_differ(exported_run, same_model, tmp_path: Path, capsys):
    original = exported_run / "deploy" / "model_int8.tflite"
    renamed, changed = tmp_path / "renamed.tflite", tmp_path / "changed.tflite"
    renamed.write_bytes(_rewritten(original.read_bytes(), _renamed))
    changed.write_bytes(_rewritten(original.read_bytes(), _one_weight_changed))
    report = tmp_path / "report" / "README.md"
    assert same_model.main([str(original), str(renamed), "--report", str(report)]) == 0
    assert "The same computation" in report.read_text() and "differ only in tensor names" in report.read_text()
    assert same_model.main([str(original), str(changed)]) == 1
    assert "Different computations: 1 of" in capsys.readouterr().out
    assert same_model.main([str(original), str(tmp_path / "missing.tflite")]) == 2
    assert "missing.tflite: no such model file" in capsys.readouterr().err
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(original.read_bytes()[:500])
    assert same_model.main([str(original), str(damaged)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {damaged}: a damaged TensorFlow Lite model") and err.count("\n") == 1

"""Run a model on features: Keras, LiteRT and TFLM behind one ``Predictor`` interface, the int8
(de)quantisation rule, clip scores over the scoring views, and the TFLM arena measurement."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tflite_micro import runtime as tflm_runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from esc_tf import pipeline
from esc_tf.artifacts import META_FILE, ModelError, ModelMeta
from esc_tf.audio.features import feature_shape
from esc_tf.config import Config
from esc_tf.native_logs import captured_output, native_notices_filtered

TFLM_PROBE_ARENA = 8 * 1024 * 1024


# --------------------------------------------------------------------------- runners

class Predictor(Protocol):
    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Features ``[n, coefficients, frames, 1]`` float32 -> scores ``[n, classes]``."""


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 as TFLite's QUANTIZE reference kernel and TFLM do: ``x / scale`` in float32, rounded
    half away from zero, plus the zero point, clamped (the firmware's ``frontend_quantize`` too).

    The division must be float32: in float64 a value a hair below a .5 tie stays below it, where
    float32 lands on the tie and rounds away. (LiteRT's optimised x86 kernel rounds ties to even: it
    is not what a device runs.)"""
    v = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)  # the +0.5 below is exact in float64
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values of quantised ``q``: ``(q - zero_point) * scale``."""
    return (q.astype(np.float32) - zero_point) * scale


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis of ``logits``, computed in float64."""
    z = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def clip_scores(predictor: Predictor, features: np.ndarray, config: Config) -> np.ndarray:
    """Class probabilities ``[clips, classes]`` of clip features ``[clips, coefficients, frames, 1]``.

    The softmax of the model's scores on each input of a clip (:func:`pipeline.model_inputs`: its
    ``model.time_rolls`` rotations at ``2 * model.mel_shifts + 1`` mel shifts), averaged over the
    clip's inputs, as the firmware's post-processing averages its inferences. With one view a clip
    has one input: the softmax of its scores.
    """
    inputs = pipeline.model_inputs(features, config)
    return softmax(predictor(inputs)).reshape(len(features), len(inputs) // len(features), -1).mean(axis=1)


def keras_predictor(model: keras.Model, batch_size: int = 64) -> Predictor:
    """A :data:`Predictor` that runs a Keras model on features."""
    return lambda feats: model.predict(feats, batch_size=batch_size, verbose=0)


def _io_quantization(details: dict) -> tuple[float, int] | None:
    q = details.get("quantization_parameters") or {}
    scales = q.get("scales")
    if details["dtype"] == np.int8 and scales is not None and len(scales):
        return float(scales[0]), int(q["zero_points"][0])
    return None


def _run_each(features: np.ndarray, input_details: dict, output_details: dict,
              invoke: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run ``invoke`` clip by clip, quantising inputs and dequantising outputs of int8 models."""
    qin, qout = _io_quantization(input_details), _io_quantization(output_details)
    out = []
    for x in features:
        x = x[None].astype(np.float32)
        y = invoke(quantize(x, *qin) if qin else x)[0]
        out.append(dequantize(y, *qout) if qout else y)
    return np.stack(out)


# LiteRT's kernel sets. "default" applies the XNNPACK delegate, whose int8 arithmetic rounds differently
# from TFLM's; "reference" (the builtin reference kernels) computes what TFLM computes, bit for bit
# (measured: reports/interpreter_parity.md; tested in tests/runtime/test_predictors.py).
LITERT_KERNELS = {"default": "AUTO", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


class LiteRTPredictor:
    """The TensorFlow Lite interpreter (float or int8 models), with one of :data:`LITERT_KERNELS`."""

    def __init__(self, model_bytes: bytes, kernels: str = "default") -> None:
        if kernels not in LITERT_KERNELS:
            raise ValueError(f"unknown LiteRT kernels {kernels!r}; use one of {', '.join(LITERT_KERNELS)}")
        resolver = getattr(tf.lite.experimental.OpResolverType, LITERT_KERNELS[kernels])
        with native_notices_filtered():  # the XNNPACK delegate announces itself on stderr
            self.interpreter = tf.lite.Interpreter(model_content=model_bytes, num_threads=1,
                                                   experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return _run_each(features, self.input, self.output, self._invoke)


def tflm_interpreter(model_bytes: bytes, arena_size: int) -> tflm_runtime.Interpreter:
    """A TFLM interpreter; raises :class:`ModelError` with TFLM's own message on failure."""
    with captured_output(2) as log:  # TFLM reports why on file descriptor 2
        try:
            return tflm_runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)
        except RuntimeError as exc:
            error = exc
    detail = " ".join(line.strip() for line in log[2].splitlines() if line.strip())
    raise ModelError(f"TFLM cannot run this model with a {arena_size}-byte arena: {error}"
                     + (f" ({detail})" if detail else ""))


class TFLMPredictor:
    """The TensorFlow Lite Micro interpreter, as on the device (int8 or float models)."""

    def __init__(self, model_bytes: bytes, arena_size: int | None = None) -> None:
        self.interpreter = tflm_interpreter(model_bytes, arena_size or TFLM_PROBE_ARENA)
        self.input = self.interpreter.get_input_details(0)
        self.output = self.interpreter.get_output_details(0)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_input(x, 0)
        self.interpreter.invoke()
        return self.interpreter.get_output(0)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return _run_each(features, self.input, self.output, self._invoke)


def measure_arena(model_bytes: bytes, upper: int = TFLM_PROBE_ARENA) -> int:
    """The smallest TFLM arena (to 16 bytes) in which the model allocates."""
    tflm_interpreter(model_bytes, upper)  # raises with TFLM's reason if it cannot run at all
    lo, hi = 0, upper
    while hi - lo > 16:
        mid = (lo + hi) // 2
        try:
            with captured_output(2):
                tflm_runtime.Interpreter.from_bytes(model_bytes, arena_size=mid)
            hi = mid
        except RuntimeError:
            lo = mid
    return hi


TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier of every .tflite model


def tflite_io_shapes(model_bytes: bytes, where: str | Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The input and output shapes of a ``.tflite`` model, after every table, vector and buffer of its
    flatbuffer was read within the file's bounds: a truncated or foreign file is refused as a
    :class:`ModelError` naming ``where`` before a runtime reads it (TFLM and LiteRT trust their input, and
    crash or read out of bounds on such a file)."""
    if len(model_bytes) < 8 or model_bytes[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{where}: not a TensorFlow Lite model (no TFL3 identifier); export it again with "
                         "esc-tf deploy")
    try:
        model = schema.Model.GetRootAsModel(model_bytes, 0)
        for i in range(model.BuffersLength()):
            if model.Buffers(i).DataLength():
                model.Buffers(i).DataAsNumpy()
        codes = [model.OperatorCodes(i).BuiltinCode() for i in range(model.OperatorCodesLength())]
        graph = model.Subgraphs(0)
        shapes = [tuple(graph.Tensors(t).ShapeAsNumpy()) for t in range(graph.TensorsLength())]
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            used = [*op.InputsAsNumpy(), *op.OutputsAsNumpy()]
            if op.OpcodeIndex() >= len(codes) or any(t >= len(shapes) for t in used):
                raise ValueError(f"operator {o} refers to a missing tensor or op code")
        return shapes[int(graph.Inputs(0))], shapes[int(graph.Outputs(0))]
    except (struct.error, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"{where}: a damaged TensorFlow Lite model, truncated or corrupt ({exc}); export it "
                         "again with esc-tf deploy") from exc


def check_model_matches_meta(input_shape: tuple[int, ...], output_shape: tuple[int, ...], meta: ModelMeta,
                             where: str | Path) -> None:
    """Refuse a model whose input is not the features its ``model_meta.json`` describes, or whose outputs
    are not its classes: scoring it would give silently wrong results."""
    expected = (*feature_shape(meta.config), 1)
    if tuple(int(d) for d in input_shape[1:]) != expected:
        raise ModelError(f"{where}: the model reads inputs of shape {tuple(input_shape[1:])}, but its "
                         f"{META_FILE} describes features of shape {expected}; use the model_meta.json "
                         "exported with this model")
    if int(output_shape[-1]) != len(meta.class_names):
        raise ModelError(f"{where}: the model has {int(output_shape[-1])} outputs, but its {META_FILE} names "
                         f"{len(meta.class_names)} classes; use the model_meta.json exported with this model")


def load_predictor(model_path: str | Path, runtime: str = "tflm", meta: ModelMeta | None = None) -> Predictor:
    """A predictor for a ``.keras`` / ``.h5`` model or a ``.tflite`` run in ``runtime``; with ``meta``, the
    model is first checked against it (:func:`check_model_matches_meta`)."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.suffix in (".keras", ".h5"):
        try:
            model = keras.models.load_model(path, compile=False)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot load Keras model: {exc}") from exc
        if meta is not None:
            check_model_matches_meta(model.input_shape, model.output_shape, meta, path)
        return keras_predictor(model)
    if path.suffix != ".tflite":
        raise ModelError(f"{path}: expected a .keras, .h5 or .tflite model")
    model_bytes = path.read_bytes()
    input_shape, output_shape = tflite_io_shapes(model_bytes, path)
    if meta is not None:
        check_model_matches_meta(input_shape, output_shape, meta, path)
    if runtime == "tflm":
        return TFLMPredictor(model_bytes)
    if runtime == "litert":
        try:
            return LiteRTPredictor(model_bytes)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: LiteRT cannot load it: {exc}") from exc
    raise ModelError(f"unknown runtime {runtime!r}; use tflm or litert")

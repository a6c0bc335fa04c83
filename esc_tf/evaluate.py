"""Score Keras, LiteRT and TFLM models on any dataset in the ESC-50 layout.

``python -m esc_tf.evaluate --model tflite/model_int8.tflite --data-dir DIR [--folds 1,2]
[--runtime tflm|litert] [--json OUT]`` runs the training front end (settings read from the
``model_meta.json`` beside the model) and prints ``accuracy: 0.XXXX``, the confusion matrix
and per-class F1. It warns when clips it scores were used to train or calibrate the model.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
from tflite_micro import runtime as tflm_runtime

from esc_tf import data as data_mod
from esc_tf import pipeline
from esc_tf.config import Config, ConfigError, apply_override, config_from_dict
from esc_tf.data import DatasetError
from esc_tf.features import Normalization

META_FILE = "model_meta.json"
MODEL_FILE = "model.keras"  # a trained Keras model, beside its META_FILE
TFLM_PROBE_ARENA = 8 * 1024 * 1024


class ModelError(ValueError):
    """A model file that cannot be loaded, run, or deployed as configured."""


# --------------------------------------------------------------------------- model metadata

@dataclass
class ModelMeta:
    """What is needed to feed a model: its front end, normalisation and labels."""

    config: Config
    normalization: Normalization
    class_names: list[str]
    trained_on: list[str] = field(default_factory=list)  # clips used for training or calibration

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / META_FILE
        path.write_text(json.dumps({"config": self.config.to_dict(),
                                    "normalization": self.normalization.to_dict(),
                                    "class_names": self.class_names, "trained_on": self.trained_on}))
        return path

    @classmethod
    def for_model(cls, model_path: str | Path) -> "ModelMeta":
        """Read the ``model_meta.json`` that sits beside ``model_path``."""
        path = Path(model_path).parent / META_FILE
        if not path.is_file():
            raise ModelError(f"{model_path}: no {META_FILE} beside the model (it records the front-end "
                             "settings and labels; models written by esc_tf.train/export have one)")
        d = json.loads(path.read_text())
        return cls(config_from_dict(d["config"]), Normalization.from_dict(d["normalization"]),
                   list(d["class_names"]), list(d.get("trained_on", [])))


# --------------------------------------------------------------------------- runners

class Predictor(Protocol):
    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Features ``[n, coefficients, frames, 1]`` float32 -> scores ``[n, classes]``."""


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 as TFLite does (round half away from zero, then clamp)."""
    v = np.asarray(x, np.float64) / scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * scale


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def clip_scores(predictor: Predictor, features: np.ndarray, config: Config) -> np.ndarray:
    """Class probabilities ``[clips, classes]`` of clip features ``[clips, coefficients, frames, 1]``.

    The softmax of the model's scores on each input of a clip (:func:`pipeline.model_inputs`: its
    windows, each in ``model.time_rolls`` rotations at ``2 * model.mel_shifts + 1`` mel shifts),
    averaged over the clip's inputs, as the firmware's post-processing averages its inferences. A
    whole-clip model with one view has one input: the softmax of its scores.
    """
    inputs = pipeline.model_inputs(features, config)
    return softmax(predictor(inputs)).reshape(len(features), len(inputs) // len(features), -1).mean(axis=1)


def keras_predictor(model: keras.Model, batch_size: int = 64) -> Predictor:
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
# (measured: reports/interpreter_parity.md; tested in tests/test_export.py).
LITERT_KERNELS = {"default": "AUTO", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


class LiteRTPredictor:
    """The TensorFlow Lite interpreter (float or int8 models), with one of :data:`LITERT_KERNELS`."""

    def __init__(self, model_bytes: bytes, kernels: str = "default") -> None:
        if kernels not in LITERT_KERNELS:
            raise ValueError(f"unknown LiteRT kernels {kernels!r}; use one of {', '.join(LITERT_KERNELS)}")
        resolver = getattr(tf.lite.experimental.OpResolverType, LITERT_KERNELS[kernels])
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


@contextlib.contextmanager
def captured_c_stderr() -> Iterator[list[str]]:
    """Capture what C code writes to file descriptor 2 (TFLM reports errors there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode(errors="replace"))


def tflm_interpreter(model_bytes: bytes, arena_size: int) -> tflm_runtime.Interpreter:
    """A TFLM interpreter; raises :class:`ModelError` with TFLM's own message on failure."""
    with captured_c_stderr() as log:
        try:
            return tflm_runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)
        except RuntimeError as exc:
            error = exc
    detail = " ".join(line.strip() for line in log[0].splitlines() if line.strip())
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
            with captured_c_stderr():
                tflm_runtime.Interpreter.from_bytes(model_bytes, arena_size=mid)
            hi = mid
        except RuntimeError:
            lo = mid
    return hi


def load_predictor(model_path: str | Path, runtime: str = "tflm") -> Predictor:
    """A predictor for a ``.keras`` / ``.h5`` model or a ``.tflite`` run in ``runtime``."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.suffix in (".keras", ".h5"):
        try:
            return keras_predictor(keras.models.load_model(path, compile=False))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot load Keras model: {exc}") from exc
    if path.suffix != ".tflite":
        raise ModelError(f"{path}: expected a .keras, .h5 or .tflite model")
    model_bytes = path.read_bytes()
    if runtime == "tflm":
        return TFLMPredictor(model_bytes)
    if runtime == "litert":
        try:
            return LiteRTPredictor(model_bytes)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: LiteRT cannot load it: {exc}") from exc
    raise ModelError(f"unknown runtime {runtime!r}; use tflm or litert")


# --------------------------------------------------------------------------- metrics

def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, confusion matrix and per-class precision/recall/F1 (sklearn)."""
    labels = list(range(len(class_names)))
    per_class = classification_report(y_true, y_pred, labels=labels, target_names=class_names,
                                      output_dict=True, zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "clips": int(len(y_true)),
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
            "per_class": {n: {k: float(per_class[n][k]) for k in ("precision", "recall", "f1-score", "support")}
                          for n in class_names}}


def format_metrics(metrics: dict, class_names: list[str]) -> str:
    lines = [f"accuracy: {metrics['accuracy']:.4f}  ({metrics['clips']} clips)", "", "confusion matrix "
             "(rows: true class, columns: predicted, in this order):"]
    lines += [f"  {name[:16]:16s} " + " ".join(f"{v:3d}" for v in row)
              for name, row in zip(class_names, metrics["confusion_matrix"])]
    lines += ["", "per-class F1:"]
    lines += [f"  {name:20s} {s['f1-score']:.3f}  (support {int(s['support'])})"
              for name, s in metrics["per_class"].items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI

def evaluate_on_dataset(model_path: str | Path, data_dir: str | Path, folds: list[int] | None = None,
                        runtime: str = "tflm", progress: bool = True) -> dict:
    """Score a saved model on the clips of ``data_dir`` whose classes it knows."""
    if not Path(model_path).is_file():
        raise ModelError(f"{model_path}: model file not found")
    meta_info = ModelMeta.for_model(model_path)
    config = apply_override(meta_info.config, f"data.data_dir={data_dir}")
    dataset = data_mod.read_metadata(config.resolved_data_dir())
    if folds:
        missing = sorted(set(folds) - set(dataset["fold"]))
        if missing:
            raise DatasetError(f"{data_dir}: no clips in fold(s) {missing}")
        dataset = dataset[dataset["fold"].isin(folds)]
    known = dataset["category"].isin(meta_info.class_names)
    skipped = int((~known).sum())
    dataset = dataset[known].reset_index(drop=True)
    if dataset.empty:
        raise DatasetError(f"{data_dir}: no clip belongs to the model's classes")
    predictor = load_predictor(model_path, runtime)
    waves = data_mod.load_waveforms(dataset, config.audio, config.data.cache_dir, progress=progress)
    feats = pipeline.feature_array(waves, config, meta_info.normalization)
    y_true = dataset["category"].map({n: i for i, n in enumerate(meta_info.class_names)}).to_numpy()
    y_pred = clip_scores(predictor, feats, config).argmax(axis=1)
    metrics = classification_metrics(y_true, y_pred, meta_info.class_names)
    seen = set(meta_info.trained_on) & set(dataset["filename"])
    metrics.update({"model": str(model_path), "runtime": runtime if Path(model_path).suffix == ".tflite"
                    else "keras", "data_dir": str(data_dir), "folds": folds or sorted(set(dataset["fold"])),
                    "skipped_unknown_class": skipped, "clips_seen_in_training": len(seen)})
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m esc_tf.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help=".tflite, .keras or .h5 (model_meta.json beside it)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--folds", help="e.g. 1,3 (default: every fold)")
    parser.add_argument("--runtime", choices=["tflm", "litert"], default="tflm",
                        help=".tflite runtime: tflm (as on the device, default) or litert")
    parser.add_argument("--json", help="also write the metrics here")
    args = parser.parse_args(argv)
    try:
        folds = [int(f) for f in args.folds.split(",")] if args.folds else None
        metrics = evaluate_on_dataset(args.model, args.data_dir, folds, args.runtime)
    except (ModelError, DatasetError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    names = list(metrics["per_class"])
    print(format_metrics(metrics, names))
    if metrics["skipped_unknown_class"]:
        print(f"note: {metrics['skipped_unknown_class']} clips of classes the model does not know were skipped")
    if metrics["clips_seen_in_training"]:
        print(f"WARNING: {metrics['clips_seen_in_training']} of these clips were used to train or calibrate "
              "this model; this accuracy is not a held-out number")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

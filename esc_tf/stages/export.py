"""Deployable files for TensorFlow Lite Micro, written only after the model passed its checks.

``write_deployment(...)`` writes into one folder:

- ``model_float.tflite``, ``model_int8.tflite``
- ``model_data.h`` / ``model_data.cc``: the int8 model as ``alignas(16) const unsigned char``
- ``model_settings.h``: input shape, input/output scale and zero point, labels, sample rate,
  feature parameters and the measured tensor arena size
- ``model_op_resolver.h``: a ``MicroMutableOpResolver`` registering exactly the model's ops
- ``frontend_tables.h``: the device front end's tables (window, mel, DCT, normalisation)
- ``model_meta.json`` (front end, normalisation, labels, for evaluate/predict) and
  ``export.json`` (sizes, where the int8 model's bytes go, arena, ops)

Before anything is written the int8 model must load in the TFLM interpreter (so no op is
missing) and fit the configured flash and arena budgets.

``esc-tf deploy --run RUN_DIR`` runs the edge stages of an existing run.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from esc_tf.artifacts import META_FILE, ModelError, ModelMeta
from esc_tf.audio.features import feature_shape
from esc_tf.codegen import c_source as cg
from esc_tf.codegen.frontend_tables import frontend_fingerprint, frontend_header
from esc_tf.config import Config, ExportConfig
from esc_tf.runtime.predictors import measure_arena

MODEL_ARRAY = "g_model_data"


@dataclass
class DeviceCheck:
    """What the TFLM checks measured on the int8 model."""

    ops: list[str]
    arena_measured: int
    arena_size: int  # measured minimum plus the margin (capped at the budget), 16-byte aligned
    int8_bytes: int


def model_ops(model_bytes: bytes) -> list[str]:
    """Builtin operator names used by a ``.tflite`` model, in first-use order."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            ops.append("CUSTOM:" + code.CustomCode().decode())
        else:
            ops.append(names[builtin])
    return ops


def flash_breakdown(model_bytes: bytes) -> dict[str, int]:
    """Where the bytes of a ``.tflite`` model go: constant tensors by type (int8 weights, int32 biases,
    other), quantisation parameters (float32 scales, int64 zero points, min/max), tensor names, and the
    rest (graph structure, metadata, alignment). The parts add up to ``len(model_bytes)``.

    Per-channel quantisation stores a scale and a zero point per output channel for each kernel and
    its bias, so a narrow channel costs flash beyond its weights."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(model_bytes, 0)
    parts = {"int8_weights": 0, "int32_biases": 0, "other_constants": 0, "quantization_params": 0,
             "tensor_names": 0}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            size = model.Buffers(tensor.Buffer()).DataLength()
            kind = {schema.TensorType.INT8: "int8_weights", schema.TensorType.INT32: "int32_biases"}.get(
                tensor.Type(), "other_constants")
            parts[kind] += size
            parts["tensor_names"] += len(tensor.Name() or b"")
            q = tensor.Quantization()
            if q is not None:
                parts["quantization_params"] += (4 * (q.ScaleLength() + q.MinLength() + q.MaxLength())
                                                 + 8 * q.ZeroPointLength())
    parts["structure_and_metadata"] = len(model_bytes) - sum(parts.values())
    return parts


@dataclass
class Computation:
    """What a ``.tflite`` model computes, without tensor names, metadata or the file's layout: per tensor (graph
    order) its shape, type and quantisation, and its constant bytes; per operator its op code, options and
    the tensors it reads and writes; the graph's inputs and outputs."""

    tensors: list[tuple]
    constants: list[bytes]
    operators: list[tuple]
    io: tuple


def model_computation(model_bytes: bytes) -> Computation:
    """The :class:`Computation` of a ``.tflite`` model's first subgraph (esc-tf models have one)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    graph = model.subgraphs[0]
    codes = [(max(c.builtinCode, c.deprecatedBuiltinCode), c.customCode) for c in model.operatorCodes]
    tensors, constants = [], []
    for tensor in graph.tensors:
        q = tensor.quantization
        tensors.append((_ints(tensor.shape), tensor.type, None if q is None else
                        ([float(x) for x in (q.scale if q.scale is not None else [])], _ints(q.zeroPoint),
                         q.quantizedDimension)))
        data = model.buffers[tensor.buffer].data
        constants.append(b"" if data is None else np.asarray(data, np.uint8).tobytes())
    operators = [(codes[op.opcodeIndex], _ints(op.inputs), _ints(op.outputs), op.builtinOptionsType,
                  sorted(vars(op.builtinOptions).items()) if op.builtinOptions is not None else None)
                 for op in graph.operators]
    return Computation(tensors, constants, operators, (_ints(graph.inputs), _ints(graph.outputs)))


def computation_digest(model_bytes: bytes) -> str:
    """sha256 of a model's :func:`model_computation`: two exports of the same weights (e.g. a model rebuilt in
    another Python process, whose layers get other names) give the same digest, and any changed weight,
    scale or operator gives another."""
    computation = model_computation(model_bytes)
    digest = hashlib.sha256(repr((computation.io, computation.tensors, computation.operators)).encode())
    for constant in computation.constants:
        digest.update(len(constant).to_bytes(8, "little") + constant)
    return digest.hexdigest()


def _ints(values: object) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def budget_excess(int8_bytes: int | None, arena_bytes: int | None, export: ExportConfig) -> list[str]:
    """What of an int8 model's size and measured TFLM arena exceeds the export budgets (None: not measured)."""
    excess = []
    if int8_bytes is not None and export.flash_budget_bytes and int8_bytes > export.flash_budget_bytes:
        excess.append(f"int8 model is {int8_bytes} bytes, over the flash budget of {export.flash_budget_bytes} "
                      "bytes (export.flash_budget_bytes)")
    if arena_bytes is not None and export.arena_budget_bytes and arena_bytes > export.arena_budget_bytes:
        excess.append(f"TFLM arena needs {arena_bytes} bytes, over the budget of {export.arena_budget_bytes} "
                      "bytes (export.arena_budget_bytes)")
    return excess


def check_for_device(int8_model: bytes, export: ExportConfig) -> DeviceCheck:
    """Refuse a model TFLM cannot run or that exceeds the flash or arena budget."""
    for excess in budget_excess(len(int8_model), None, export):  # before the arena is measured
        raise ModelError(excess)
    ops = model_ops(int8_model)
    custom = [op for op in ops if op.startswith("CUSTOM:")]
    if custom:
        raise ModelError(f"model uses custom op(s) {', '.join(custom)}, which TFLM does not provide")
    measured = measure_arena(int8_model)  # raises with TFLM's message when an op is missing
    for excess in budget_excess(None, measured, export):
        raise ModelError(excess)
    return DeviceCheck(ops, measured, arena_with_margin(measured, export), len(int8_model))


def int8_before_training(config: Config, num_classes: int) -> bytes:
    """The int8 model of ``config``'s network before any training, as large as the trained one will be.

    The arena depends on the architecture only, and the int8 size nearly so: the untrained model,
    given random biases and BatchNorm statistics as a trained one has (:func:`esc_tf.models.networks.as_if_trained`),
    converted with random calibration data measures both (a few seconds).
    """
    from esc_tf.models.networks import as_if_trained, build_model  # late: building models pulls in Keras layers
    from esc_tf.quantize import to_int8_tflite
    shape = feature_shape(config)
    model = as_if_trained(build_model((*shape, 1), num_classes, config.model))
    calibration = np.random.default_rng(0).standard_normal((4, *shape, 1)).astype(np.float32)
    return to_int8_tflite(model, calibration)


def check_budgets_before_training(config: Config, num_classes: int) -> None:
    """Refuse, before any training, a recipe whose model cannot fit the export budgets
    (measured on :func:`int8_before_training`)."""
    export = config.export
    if not (export.flash_budget_bytes or export.arena_budget_bytes):
        return
    try:
        check_for_device(int8_before_training(config, num_classes), export)
    except ModelError as exc:
        raise ModelError(f"preset {config.model.preset!r} on {' x '.join(map(str, feature_shape(config)))} "
                         f"features cannot be deployed: {exc}. Change the recipe, or set export.deploy=false to "
                         "train it anyway (0 lifts a budget)") from exc


def arena_with_margin(measured: int, export: ExportConfig) -> int:
    """The arena to allocate on the device: ``measured`` plus the margin, 16-byte aligned, but no
    more than the budget (the margin shrinks to fit; it covers host-vs-device allocation
    differences, and a 32-bit device needs less than the 64-bit host measured)."""
    def aligned(n: float) -> int:
        return int(math.ceil(n / 16) * 16)
    arena = aligned(measured * (1 + export.arena_margin))
    if export.arena_budget_bytes:
        arena = max(aligned(measured), min(arena, export.arena_budget_bytes // 16 * 16))
    return arena


def io_quantization(int8_model: bytes) -> dict[str, float]:
    """Scale and zero point of the int8 model's input and output tensors."""
    interpreter = tf.lite.Interpreter(model_content=int8_model)
    out = {}
    for kind, details in (("input", interpreter.get_input_details()[0]),
                          ("output", interpreter.get_output_details()[0])):
        scale, zero_point = details["quantization"]
        if details["dtype"] != np.int8:
            raise ModelError(f"model {kind} is {details['dtype'].__name__}, expected int8")
        out[f"{kind}_scale"], out[f"{kind}_zero_point"] = float(scale), int(zero_point)
    return out


def gzip_size(blob: bytes) -> int:
    """Bytes after gzip -9: what an over-the-air update would transfer."""
    return len(gzip.compress(blob, compresslevel=9, mtime=0))


def model_data_files(int8_model: bytes) -> dict[str, str]:
    """``model_data.h`` and ``model_data.cc`` holding the model bytes."""
    header = cg.banner("The int8 model as a C array.") + "\n" + cg.with_guard("model_data.h", (
        f"extern const unsigned char {MODEL_ARRAY}[];\nextern const unsigned int {MODEL_ARRAY}_len;"))
    source = (cg.banner("The int8 model as a C array.") + '\n#include "model_data.h"\n\n'
              + cg.byte_array(MODEL_ARRAY, int8_model)
              + f"const unsigned int {MODEL_ARRAY}_len = {len(int8_model)};\n")
    return {"model_data.h": header, "model_data.cc": source}


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def model_settings_header(meta: ModelMeta, quant: dict[str, float], check: DeviceCheck) -> str:
    """C/C++ constants the device application needs, all from the config and the model.

    ``kFrontendFingerprint`` equals ``FRONTEND_FINGERPRINT`` of the ``frontend_tables.h`` written
    with it, so firmware can refuse tables that do not belong to the model.
    """
    config, class_names = meta.config, meta.class_names
    f, a = config.features, config.audio
    coeffs, frames = feature_shape(config)
    defines = {
        "kSampleRate": a.sample_rate, "kClipSamples": a.clip_samples,
        "kFrameLength": f.frame_length, "kHopLength": f.hop_length, "kFftLength": f.fft_length,
        "kNumMelBins": f.num_mel_bins, "kFeatureIsMfcc": int(f.kind == "mfcc"),
        "kNumCoefficients": coeffs, "kNumFrames": frames, "kFeatureElementCount": coeffs * frames,
        "kTimeRolls": config.model.time_rolls,
        "kMelShifts": config.model.mel_shifts,
        "kInputScale": cg.float_literal(quant["input_scale"]), "kInputZeroPoint": quant["input_zero_point"],
        "kOutputScale": cg.float_literal(quant["output_scale"]), "kOutputZeroPoint": quant["output_zero_point"],
        "kCategoryCount": len(class_names),
        "kTensorArenaSize": check.arena_size, "kTensorArenaMeasured": check.arena_measured,
        "kModelBytes": check.int8_bytes,
        "kFrontendFingerprint": _c_string(frontend_fingerprint(config, meta.normalization)),
    }
    body = ["// Input: features [1, kNumCoefficients, kNumFrames, 1] int8, laid out coefficient-major",
            "// (all frames of coefficient 0, then coefficient 1, ...), as in training.",
            "// A clip is scored as the mean softmax of kTimeRolls inferences on it rotated by 0, 1, ... frames",
            "// (np.roll), each at every mel shift -kMelShifts .. +kMelShifts (rows moved, edge row repeated).",
            f"// Arena: measured minimum {check.arena_measured} bytes in the TFLM interpreter (x86-64), plus "
            f"{check.arena_size / check.arena_measured - 1:.1%} margin (export.arena_margin "
            f"{config.export.arena_margin:.0%}" + (", capped at export.arena_budget_bytes)."
                                                    if config.export.arena_budget_bytes else ").")]
    body += [f"#define {k} {v}" for k, v in defines.items()]
    body += ["", "static const char* const kCategoryLabels[kCategoryCount] = {",
             ",\n".join(f"    {_c_string(n)}" for n in class_names), "};"]
    return cg.banner("Model and front-end settings.") + "\n" + cg.with_guard("model_settings.h", "\n".join(body))


def resolver_method(op: str) -> str:
    """``MicroMutableOpResolver`` method of a builtin op: CONV_2D -> AddConv2D, RELU6 -> AddRelu6."""
    return "Add" + "".join(p.capitalize() if p[0].isalpha() else p.upper() for p in op.split("_"))


def op_resolver_header(ops: list[str]) -> str:
    """A resolver that registers exactly the model's builtin ops (C++, TFLM)."""
    methods = [resolver_method(op) for op in ops]
    body = ['#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"', "",
            f"using ModelOpResolver = tflite::MicroMutableOpResolver<{len(ops)}>;", "",
            "// Registers the ops of the exported model: " + ", ".join(ops) + ".",
            "inline TfLiteStatus RegisterModelOps(ModelOpResolver& resolver) {"]
    body += [f"  TF_LITE_ENSURE_STATUS(resolver.{m}());" for m in methods]
    body += ["  return kTfLiteOk;", "}"]
    return cg.banner("The TFLM op resolver of the exported model.") + "\n" + \
        cg.with_guard("model_op_resolver.h", "\n".join(body))


# what write_deployment writes; export.json last: its presence marks a finished export
EXPORT_FILES = ("model_float.tflite", "model_int8.tflite", "model_data.h", "model_data.cc", "model_settings.h",
                "model_op_resolver.h", "frontend_tables.h", META_FILE, "export.json")


def write_deployment(out_dir: str | Path, float_model: bytes, int8_model: bytes, meta: ModelMeta,
                     extra: dict | None = None) -> dict:
    """Check the int8 model for the device, then write every deployable file (:data:`EXPORT_FILES`) into
    ``out_dir``.

    Files are written to a temporary folder first and moved in only when all are complete;
    a failed check writes nothing.
    """
    config = meta.config
    check = check_for_device(int8_model, config.export)
    quant = io_quantization(int8_model)
    summary = {"ops": check.ops, "arena_measured_bytes": check.arena_measured,
               "arena_size_bytes": check.arena_size, "float_tflite_bytes": len(float_model),
               "int8_tflite_bytes": len(int8_model), "int8_tflite_gzip_bytes": gzip_size(int8_model),
               "int8_tflite_breakdown_bytes": flash_breakdown(int8_model), **quant, **(extra or {})}
    files: dict[str, str | bytes] = {
        "model_float.tflite": float_model, "model_int8.tflite": int8_model,
        **model_data_files(int8_model),
        "model_settings.h": model_settings_header(meta, quant, check),
        "model_op_resolver.h": op_resolver_header(check.ops),
        "export.json": json.dumps(summary, indent=1),
        "frontend_tables.h": frontend_header(config, meta.normalization),
    }
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir.parent))
    try:
        for name, content in files.items():
            target = staging / name
            target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
        meta.save(staging)
        publish_export(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def publish_export(export_dir: Path, target: Path) -> None:
    """Copy an export's deployable files (:data:`EXPORT_FILES`) into ``target``: all of them first as
    ``.part`` files, then each renamed over the old one, so a failed copy replaces nothing (and an interrupted
    renaming leaves no ``export.json``, the mark of a finished export)."""
    target.mkdir(parents=True, exist_ok=True)
    parts = [target / f"{name}.part" for name in EXPORT_FILES]
    try:
        for name, part in zip(EXPORT_FILES, parts):
            shutil.copyfile(export_dir / name, part)
        (target / EXPORT_FILES[-1]).unlink(missing_ok=True)  # no finished-export mark while files are mixed
        for name, part in zip(EXPORT_FILES, parts):
            os.replace(part, target / name)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)

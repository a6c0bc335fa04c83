"""The Python side of the device path: what the firmware must reproduce, computed with esc_tf.

A device hears int16 PCM at the model's sample rate; the training pipeline sees that as
``int16 / 32768``. From there :func:`python_inputs` runs the training front end
(``esc_tf.pipeline.feature_array``) and TFLite's quantisation, and :func:`tflm_scores` runs
the int8 model in the TFLM interpreter on int8 input tensors, as the firmware does.
"""
from __future__ import annotations

import numpy as np

from esc_tf import pipeline
from esc_tf.artifacts import ModelMeta
from esc_tf.audio.features import feature_shape, window_span
from esc_tf.runtime import predictors as evaluate
from esc_tf.stages.export import io_quantization


def to_int16(waves: np.ndarray) -> np.ndarray:
    """Float waveforms in [-1, 1) -> int16 PCM (rounded, clipped), as a microphone delivers."""
    return np.clip(np.round(np.asarray(waves, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def from_int16(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 waveform, scaled like the data pipeline (1/32768)."""
    return (np.asarray(pcm, np.float32) / np.float32(32768.0)).astype(np.float32)


def loop_to_length(clip: np.ndarray, length: int) -> np.ndarray:
    """``clip`` repeated (and cut) to ``length`` samples: what the golden provider plays."""
    return np.resize(np.asarray(clip), length)


def input_quantization(model_bytes: bytes) -> tuple[float, int]:
    """Scale and zero point of the int8 model's input."""
    q = io_quantization(model_bytes)
    return q["input_scale"], q["input_zero_point"]


def python_inputs(waves: np.ndarray, meta: ModelMeta, model_bytes: bytes, every_view: bool = False) -> np.ndarray:
    """Float waveforms ``[n, samples]`` -> int8 model inputs ``[n, coefficients * frames]``.

    Coefficient-major, the layout of the model input ``[1, coefficients, frames, 1]``. With
    ``every_view``, every input a clip is scored on: its ``model.time_rolls`` rotations at each mel
    shift (``pipeline.model_inputs``, ``[n * inputs, ...]``).
    """
    waves = np.asarray(waves, np.float32)
    feats = pipeline.feature_array(waves, meta.config, meta.normalization)
    if every_view:
        feats = pipeline.model_inputs(feats, meta.config)
    scale, zero_point = input_quantization(model_bytes)
    return evaluate.quantize(feats, scale, zero_point).reshape(len(feats), -1)


def probabilities(model_bytes: bytes, scores: np.ndarray) -> np.ndarray:
    """The model's int8 outputs ``[..., classes]`` as probabilities: dequantised, softmax (the firmware's
    post-processing)."""
    q = io_quantization(model_bytes)
    return evaluate.softmax(evaluate.dequantize(scores, q["output_scale"], q["output_zero_point"]))


def classes_of_views(model_bytes: bytes, scores: np.ndarray) -> np.ndarray:
    """int8 outputs ``[clips, views, classes]`` -> each clip's class: the argmax of its views' mean probability."""
    return probabilities(model_bytes, scores).mean(axis=1).argmax(axis=1)


def clip_classes(model_bytes: bytes, inputs: np.ndarray, inputs_per_clip: int) -> np.ndarray:
    """The class of each clip from its int8 inputs (consecutive: its views): the argmax of the mean
    softmax of the TFLM scores, as the firmware's post-processing averages its inferences."""
    scores = tflm_scores(model_bytes, inputs)
    return classes_of_views(model_bytes, scores.reshape(len(inputs) // inputs_per_clip, inputs_per_clip, -1))


def tflm_scores(model_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """int8 input tensors ``[n, elements]`` -> the model's raw int8 outputs ``[n, classes]`` in TFLM."""
    interpreter = evaluate.tflm_interpreter(model_bytes, evaluate.TFLM_PROBE_ARENA)
    shape = interpreter.get_input_details(0)["shape"]
    out = []
    for x in np.asarray(inputs, np.int8):
        interpreter.set_input(x.reshape(shape), 0)
        interpreter.invoke()
        out.append(np.array(interpreter.get_output(0)[0], np.int8))
    return np.stack(out) if out else np.zeros((0, 0), np.int8)


def stream_windows(pcm: np.ndarray, meta: ModelMeta, model_bytes: bytes, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """A recording's windows as the firmware's loop() scores them: the first full window, then every
    ``stride`` frames. Returns the frames heard at each inference ``[inferences]`` and every view of each
    window as int8 inputs ``[inferences * views, elements]`` (the rotations at each mel shift)."""
    config, f = meta.config, meta.config.features
    frames = feature_shape(config)[1]
    total = 1 + (len(pcm) - f.frame_length) // f.hop_length  # frames in the recording
    starts = np.arange(0, total - frames + 1, stride)
    span = window_span(f, config.audio.clip_samples)
    # each window from its own samples: its level is its own (features.peak_normalize), as on the device
    waves = from_int16(np.stack([pcm[s * f.hop_length:s * f.hop_length + span] for s in starts]))
    windows = pipeline.feature_array(waves, config, meta.normalization)
    scale, zero_point = input_quantization(model_bytes)
    inputs = evaluate.quantize(pipeline.model_inputs(windows, config), scale, zero_point)
    return starts + frames, inputs.reshape(len(inputs), -1)


def stream_decisions(pcm: np.ndarray, meta: ModelMeta, model_bytes: bytes, stride: int, average: int,
                     threshold: float) -> list[tuple[int, int, float, bool]]:
    """What the firmware's loop() decides on a recording: each inference's views averaged (softmax
    probabilities), the last ``average`` inferences averaged, the top class reported at ``threshold``.
    One ``(frames heard, top class, top score, detected)`` per inference, like postprocess.c."""
    heard, inputs = stream_windows(pcm, meta, model_bytes, stride)
    probs = probabilities(model_bytes, tflm_scores(model_bytes, inputs))
    per_inference = probs.reshape(len(heard), -1, probs.shape[-1]).mean(axis=1)
    decisions = []
    for i, frames in enumerate(heard):
        mean = per_inference[max(0, i - average + 1):i + 1].mean(axis=0)
        top = int(mean.argmax())
        decisions.append((int(frames), top, float(mean[top]), bool(mean[top] >= threshold)))
    return decisions

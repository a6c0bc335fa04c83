"""Classify audio files with an exported model, through the training front end.

``esc-tf predict FILE_OR_DIR [FILE_OR_DIR ...] [--model tflite/model_int8.tflite | --model RUN_DIR]
[--runtime tflm|litert] [--float] [--top-k 3] [--hop SECONDS] [--json OUT]``

- ``--model`` is a ``.tflite`` (or ``.keras``) file with its ``model_meta.json`` beside it, or a run
  folder (``RUN_DIR/deploy/model_int8.tflite`` is used). ``--float`` takes ``model_float.tflite``
  from the same folder instead. The int8 model runs in TFLM by default, as on the device.
- Any format libsndfile reads (WAV, FLAC, Ogg Vorbis, MP3, AIFF, ...) at any sample rate and
  channel count: each file is decoded exactly as training decodes the dataset
  (:func:`esc_tf.data.dataset.decode_clip`: mono mix, resampling to the model's rate), then the
  model's own front end and normalisation (from ``model_meta.json``) are applied.
- Clip length: the model sees fixed windows of ``audio.clip_seconds`` (5 s by default), as the
  device does. A shorter file is zero-padded at the end (as in training); a longer one is cut
  into windows every ``--hop`` seconds (default: half a window), the last window ending at
  the end of the file, and the softmax probabilities of all windows are averaged.
- Scores are softmax probabilities of the model's logits.

For a directory every audio file in it (recursively) is classified; unreadable files are
reported on stderr without stopping the rest, and the exit code is 1 if any file failed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esc_tf import pipeline
from esc_tf.artifacts import ModelError, ModelMeta
from esc_tf.config import AudioConfig
from esc_tf.data import dataset as data_mod
from esc_tf.data.dataset import DatasetError
from esc_tf.runtime.predictors import Predictor, clip_scores, load_predictor

INT8_MODEL = "model_int8.tflite"
FLOAT_MODEL = "model_float.tflite"
DEFAULT_MODEL = "tflite/" + INT8_MODEL
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")


def split_windows(wave: np.ndarray, window: int, hop: int) -> np.ndarray:
    """``[n, window]`` windows: one zero-padded window for a short clip, else every ``hop``
    samples with the last window ending at the end of the clip."""
    if len(wave) <= window:
        return np.pad(wave, (0, window - len(wave)))[None]
    starts = list(range(0, len(wave) - window + 1, max(1, hop)))
    if starts[-1] + window < len(wave):
        starts.append(len(wave) - window)
    return np.stack([wave[s:s + window] for s in starts])


# --------------------------------------------------------------------------- model

def resolve_model(model: str | Path, use_float: bool = False) -> Path:
    """The model file for ``--model``: a file as given, or ``deploy/`` of a run folder.

    With ``use_float`` the float model of the same folder is used.
    """
    name = FLOAT_MODEL if use_float else INT8_MODEL
    path = Path(model)
    if path.is_dir():
        for candidate in (path / "deploy" / name, path / name):
            if candidate.is_file():
                return candidate
        raise ModelError(f"{path}: no {name} in {path / 'deploy'} or {path} (a run gets one from "
                         f"`esc-tf deploy --run {path}`)")
    if use_float and path.name != FLOAT_MODEL:
        path = path.with_name(FLOAT_MODEL)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (--model takes a .tflite/.keras file with "
                         "model_meta.json beside it, or a run folder)")
    return path


@dataclass
class Classifier:
    """A loaded model with its front end: waveform windows in, class probabilities out."""

    model_path: Path
    meta: ModelMeta
    predictor: Predictor
    runtime: str

    @classmethod
    def load(cls, model: str | Path, runtime: str = "tflm", use_float: bool = False) -> "Classifier":
        """The model at ``model`` (a file, or a run folder: its ``deploy/``) with its ``model_meta.json``, run by
        ``runtime`` (``tflm`` or ``litert``; a Keras model runs in Keras)."""
        path = resolve_model(model, use_float)
        meta = ModelMeta.for_model(path)
        return cls(path, meta, load_predictor(path, runtime, meta), runtime if path.suffix == ".tflite" else "keras")

    @property
    def audio(self) -> AudioConfig:
        """How the model reads audio (sample rate, clip length)."""
        return self.meta.config.audio

    def probabilities(self, wave: np.ndarray, hop_seconds: float | None = None) -> tuple[np.ndarray, int]:
        """Mean softmax probabilities over the windows of ``wave``, and the number of windows."""
        hop = self.audio.clip_samples // 2 if hop_seconds is None else int(round(hop_seconds * self.audio.sample_rate))
        windows = split_windows(wave, self.audio.clip_samples, hop)
        feats = pipeline.feature_array(windows, self.meta.config, self.meta.normalization)
        return clip_scores(self.predictor, feats, self.meta.config).mean(axis=0), len(windows)


@dataclass
class FileResult:
    """What was predicted for one file, or why it could not be."""

    file: str
    duration_seconds: float | None = None
    windows: int = 0
    top_k: list[dict[str, float | str]] = field(default_factory=list)
    error: str | None = None


def classify_file(path: str | Path, classifier: Classifier, top_k: int = 3,
                  hop_seconds: float | None = None) -> FileResult:
    """Top-k labels of one file; an unreadable file gives a result with ``error`` set."""
    try:
        wave = data_mod.decode_file(path, classifier.audio)
    except DatasetError as exc:
        return FileResult(str(path), error=str(exc))
    probs, windows = classifier.probabilities(wave, hop_seconds)
    order = np.argsort(-probs, kind="stable")[:top_k]
    return FileResult(str(path), len(wave) / classifier.audio.sample_rate, windows,
                      [{"label": classifier.meta.class_names[i], "score": float(probs[i])} for i in order])


def audio_files(target: str | Path) -> list[Path]:
    """``target`` itself if it is a file, else the audio files under it (hidden files skipped)."""
    target = Path(target)
    if not target.is_dir():
        return [target]
    return sorted(p for p in target.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(target).parts))


def format_result(result: FileResult) -> str:
    """``FILE  (D s, N windows)`` then one ``  rank. label  score`` line per label."""
    if result.error:
        return f"error: {result.error}"
    plural = "s" if result.windows != 1 else ""
    lines = [f"{result.file}  ({result.duration_seconds:.2f} s, {result.windows} window{plural})"]
    width = max(len(str(t["label"])) for t in result.top_k)
    lines += [f"  {rank}. {str(t['label']):<{width}s}  {float(t['score']):.4f}"
              for rank, t in enumerate(result.top_k, 1)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI

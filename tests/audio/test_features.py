"""The front end against an independent numpy computation and against librosa."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.fft
import tensorflow as tf

from esc_tf import artifacts
from esc_tf.audio import features as F
from esc_tf.config import Config, with_value, with_values
from tests.conftest import mfcc_config

SR = 16000


@pytest.fixture
def wave() -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(SR) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)
            + 0.05 * rng.standard_normal(SR)).astype(np.float32)


def numpy_mel_matrix(n_fft: int, n_mels: int, sr: int, fmin: float, fmax: float) -> np.ndarray:
    """HTK-mel triangles defined in mel space, with no filter weight on the DC bin."""
    def hz_to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)
    bins_mel = hz_to_mel(np.linspace(0, sr / 2, n_fft // 2 + 1)[1:])[:, None]
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0, np.minimum((bins_mel - lower) / (center - lower), (upper - bins_mel) / (upper - center)))
    return np.vstack([np.zeros((1, n_mels)), weights])


def numpy_features(x: np.ndarray, config: Config) -> np.ndarray:
    f = config.features
    n = np.arange(f.frame_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / f.frame_length)  # periodic Hann
    count = 1 + (len(x) - f.frame_length) // f.hop_length
    frames = np.stack([x[i * f.hop_length: i * f.hop_length + f.frame_length] for i in range(count)])
    if f.peak_normalize:
        frames = frames / max(np.abs(frames).max(), 2.0 ** -15)
    magnitude = np.abs(np.fft.rfft(frames.astype(np.float64) * window, f.fft_length))
    log_mel = np.log(magnitude @ numpy_mel_matrix(f.fft_length, f.num_mel_bins, SR, f.fmin, f.fmax) + f.log_offset)
    if f.kind == "logmel":
        return log_mel.T
    mfcc = scipy.fft.dct(log_mel, type=2, axis=-1) / np.sqrt(2 * f.num_mel_bins)
    return mfcc[:, : f.num_mfcc].T


@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_features_match_direct_numpy_computation(wave, kind):
    config = with_value(mfcc_config(), "features.kind", kind)
    ours = F.compute_features(wave, config.features, SR).numpy()
    expected = numpy_features(wave, config)
    assert ours.shape == expected.shape == (F.num_coefficients(config.features), 61)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("gain", [0.01, 0.3, 3.0])
def test_peak_normalized_features_do_not_depend_on_the_recording_level(wave, gain):
    f = mfcc_config().features
    np.testing.assert_allclose(F.compute_features(gain * wave, f, SR).numpy(), F.compute_features(wave, f, SR).numpy(),
                               rtol=1e-4, atol=1e-4)
    raw = with_value(mfcc_config(), "features.peak_normalize", False).features
    assert np.abs(F.compute_features(gain * wave, raw, SR).numpy() - F.compute_features(wave, raw, SR).numpy()).max() > 0.5


def test_the_peak_is_taken_over_the_samples_the_frames_span(wave):
    f = mfcc_config().features
    span = F.window_span(f, len(wave))
    assert span < len(wave)  # the fixture ends in a part hop that no frame reads
    spiked = wave.copy()
    spiked[span:] = 1.0  # outside every frame: neither the features nor the level change
    np.testing.assert_array_equal(F.compute_features(spiked, f, SR).numpy(), F.compute_features(wave, f, SR).numpy())
    spiked[span - 1] = 1.0  # inside the last frame: the whole clip is scaled down
    assert F.compute_features(spiked, f, SR).numpy()[0, 0] < F.compute_features(wave, f, SR).numpy()[0, 0] - 0.1


def test_digital_silence_is_left_as_it_is():
    f = mfcc_config().features
    silence = np.zeros(SR, np.float32)
    np.testing.assert_array_equal(F.level_normalized(silence, f).numpy(), silence)
    lsb = np.full(SR, 2.0 ** -15, np.float32)  # one step of 16-bit PCM: the floor, so it stays one step
    np.testing.assert_array_equal(F.level_normalized(lsb, f).numpy(), np.ones(SR, np.float32))


def test_dct_matrix_is_tf_signals_mfcc_transform():
    f = mfcc_config().features
    log_mel = np.random.default_rng(0).standard_normal((7, f.num_mel_bins)).astype(np.float32)
    expected = tf.signal.mfccs_from_log_mel_spectrograms(log_mel).numpy()[:, : f.num_mfcc]
    np.testing.assert_allclose(log_mel @ F.dct_matrix(f).T, expected, rtol=1e-5, atol=1e-5)


def test_log_mel_matches_librosa(wave):
    """librosa draws its triangles in Hz rather than mel, so they agree closely, not exactly."""
    f = mfcc_config().features
    ours = F.log_mel_spectrogram(wave, f, SR).numpy()
    mel = librosa.feature.melspectrogram(y=F.level_normalized(wave, f).numpy(), sr=SR, n_fft=f.fft_length, hop_length=f.hop_length,
                                         win_length=f.frame_length, window="hann", center=False, power=1.0,
                                         n_mels=f.num_mel_bins, fmin=f.fmin, fmax=f.fmax, htk=True, norm=None)
    theirs = np.log(mel.T + f.log_offset)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 0.05
    assert np.median(np.abs(ours - theirs)) < 0.005


def test_mfcc_matches_librosa_dct(wave):
    """tf.signal scales every coefficient like librosa's ortho DCT does all but c0 (sqrt 2 apart)."""
    f = mfcc_config().features
    log_mel = F.log_mel_spectrogram(wave, f, SR).numpy().T
    theirs = librosa.feature.mfcc(S=log_mel, n_mfcc=f.num_mfcc, dct_type=2, norm="ortho")
    theirs[0] *= np.sqrt(2)
    ours = F.compute_features(wave, f, SR).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4 * np.abs(theirs).max())


def test_magnitude_not_power_spectrum(wave):
    """Doubling the amplitude must add log(2) to every log-mel value (magnitude scaling) when the level is
    kept."""
    f = with_value(mfcc_config(), "features.peak_normalize", False).features
    a = F.log_mel_spectrogram(wave, f, SR).numpy()
    b = F.log_mel_spectrogram(2 * wave, f, SR).numpy()
    loud = a > np.log(1e-2)
    np.testing.assert_allclose((b - a)[loud], np.log(2.0), atol=1e-3)


def test_batched_features_equal_single(wave):
    f = mfcc_config().features
    batch = np.stack([wave, wave[::-1].copy()])
    out = F.compute_features(batch, f, SR).numpy()
    np.testing.assert_allclose(out[1], F.compute_features(batch[1], f, SR).numpy(), rtol=1e-5, atol=1e-5)


def test_feature_shape_for_default_five_second_clip():
    assert F.feature_shape(Config()) == (64, 155)
    assert F.feature_shape(mfcc_config()) == (13, 311)


def test_normalization_stats_standardise_training_features(wave):
    config = with_value(mfcc_config(), "audio.clip_seconds", 1.0)
    rng = np.random.default_rng(0)
    waves = np.stack([wave * g for g in rng.uniform(0.1, 1.0, 6)]).astype(np.float32)
    norm = F.normalization_stats(waves, config, batch_size=4)
    feats = norm.apply(F.compute_features(waves, config.features, SR)).numpy()
    np.testing.assert_allclose(feats.mean(axis=(0, 2)), 0, atol=1e-3)
    np.testing.assert_allclose(feats.std(axis=(0, 2)), 1, atol=1e-3)
    config = with_value(config, "features.normalize", False)
    ident = F.normalization_stats(waves, config)
    assert np.all(ident.mean == 0) and np.all(ident.std == 1)


def test_frontend_tables_reproduce_the_features(wave):
    """The device tables (window, mel, DCT, mean, std) give the training features in numpy."""
    config = mfcc_config()
    norm = artifacts.Normalization(np.linspace(-1, 1, 13).astype(np.float32), np.linspace(1, 2, 13).astype(np.float32))
    t = F.frontend_tables(config, norm)
    f = config.features
    frames = tf.signal.frame(wave, f.frame_length, f.hop_length).numpy()
    magnitude = np.abs(np.fft.rfft(frames * t["window"], f.fft_length))
    gain = 1 / max(np.abs(frames).max(), 2.0 ** -15)  # as the device: the window's mels scaled by 1 / its peak
    mfcc = (t["dct"] @ np.log(gain * (magnitude @ t["mel"]) + f.log_offset).T - t["mean"][:, None]) / t["std"][:, None]
    expected = norm.apply(F.compute_features(wave, f, SR)).numpy()
    np.testing.assert_allclose(mfcc, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("change, message", [
    ({"kind": "stft"}, "kind"),
    ({"frame_length": 400}, "frame_length"),
    ({"fft_length": 500, "frame_length": 500}, "power of two"),
    ({"fmax": 9000.0}, "fmax"),
    ({"num_mfcc": 41}, "num_mfcc"),
])
def test_bad_feature_config_is_refused(change, message):
    with pytest.raises(ValueError, match=message):  # a kind is refused when the config is built
        config = with_values(mfcc_config(), {f"features.{k}": v for k, v in change.items()})
        F.check_feature_config(config.features, config.audio)

"""Each augmentation does what it says, is off at zero strength, and never touches eval data."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from esc_tf import augment, pipeline
from esc_tf.artifacts import Normalization
from esc_tf.audio.features import feature_shape, mel_magnitudes, normalization_stats
from esc_tf.config import AugmentConfig, Config, ConfigError, with_value, with_values

SR = 16000
FEATURES = Config().features


def RNG(seed: int = 0) -> tf.random.Generator:
    return tf.random.Generator.from_seed(seed)


@pytest.fixture
def wave() -> tf.Tensor:
    t = np.arange(SR) / SR
    return tf.constant((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))


@pytest.fixture(scope="module")
def rich_waves() -> np.ndarray:
    """Two seconds of chirps, harmonics and noise bursts over a noise floor, changing in time.

    The floor matters: like every real recording, it keeps the log of empty bands finite.
    """
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    out = []
    for k in range(3):
        chirp = np.sin(2 * np.pi * (200 + 300 * k) * t * (1 + t))
        harmonics = sum(np.sin(2 * np.pi * (440 + 110 * k) * h * t) / h for h in range(1, 6))
        bursts = rng.standard_normal(t.size) * (np.sin(2 * np.pi * 3 * t) > 0.5)
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (0.7 + k) * t)
        floor = 0.002 * rng.standard_normal(t.size)
        out.append(0.1 * envelope * (chirp + 0.5 * harmonics) + 0.05 * bursts + floor)
    return np.stack(out).astype(np.float32)


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def mel_of(wave: np.ndarray) -> np.ndarray:
    return mel_magnitudes(tf.constant(wave, tf.float32), FEATURES, SR).numpy()


def log(mel) -> np.ndarray:
    return np.log(np.asarray(mel) + FEATURES.log_offset)


def resample_waveform(wave: np.ndarray, rate: float) -> np.ndarray:
    """The reference the mel-domain speed change stands in for: play the waveform ``rate`` times faster."""
    positions = np.arange(wave.size) * rate
    left = np.floor(positions).astype(int)
    frac = positions - left
    valid = left < wave.size - 1
    left = np.minimum(left, wave.size - 2)
    return np.where(valid, wave[left] * (1 - frac) + wave[left + 1] * frac, 0.0).astype(np.float32)


def test_gain_is_exactly_a_waveform_gain_drawn_per_clip(wave):
    mel = mel_of(wave.numpy())
    batch = np.repeat(mel[None], 200, axis=0)
    ratios = np.mean(augment.random_gain(batch, 6.0, RNG()).numpy() / np.maximum(batch, 1e-12), axis=(1, 2))
    assert 10 ** (-6 / 20) - 1e-4 <= ratios.min() and ratios.max() <= 10 ** (6 / 20) + 1e-4
    assert ratios.max() - ratios.min() > 0.5  # each clip of a batch gets its own draw
    np.testing.assert_allclose(mel_of(1.7 * wave.numpy()), 1.7 * mel, rtol=1e-4, atol=1e-6 * mel.max())
    assert augment.random_gain(batch, 0.0, RNG()) is batch


@pytest.mark.parametrize("snr", [10.0, 30.0])
def test_noise_in_the_mel_domain_matches_noise_added_to_the_waveform(rich_waves, snr):
    rng = np.random.default_rng(1)
    bank = tf.constant(augment.white_noise_bank(FEATURES, SR, rich_waves.shape[1], count=4))
    powers = np.mean(rich_waves ** 2, axis=1).astype(np.float32)
    clean = np.stack([mel_of(w) for w in rich_waves])
    ours = log(augment.add_noise(tf.constant(clean), tf.constant(powers), bank, 1.0, (snr, snr), RNG()))
    errors, biases, draw_to_draw = [], [], []
    for w, power, mine in zip(rich_waves, powers, ours):
        noises = rng.standard_normal((2, w.size)).astype(np.float32) * np.sqrt(power / 10 ** (snr / 10))
        reference, other_draw = log(mel_of(w + noises[0])), log(mel_of(w + noises[1]))
        errors.append(np.mean(np.abs(mine - reference)))
        biases.append(np.mean(mine - reference))
        draw_to_draw.append(np.mean(np.abs(other_draw - reference)))
    assert abs(np.mean(biases)) < 0.05  # the same noise level on average
    assert np.mean(errors) < 1.3 * np.mean(draw_to_draw)  # as close as another noise draw would be
    assert augment.add_noise(clean, tf.constant(powers), bank, 0.0, (snr, snr), RNG()) is clean


def test_noise_reaches_about_prob_of_the_clips(rich_waves):
    clean = np.repeat(mel_of(rich_waves[0])[None], 400, axis=0)
    bank = tf.constant(augment.white_noise_bank(FEATURES, SR, rich_waves.shape[1], count=2))
    out = augment.add_noise(tf.constant(clean), tf.fill([400], 0.01), bank, 0.3, (10.0, 10.0), RNG()).numpy()
    changed = np.mean(np.any(out != clean, axis=(1, 2)))
    assert 0.2 < changed < 0.4


def test_time_shift_in_frames_is_a_waveform_roll_by_whole_hops(rich_waves):
    wave, hop = rich_waves[0], FEATURES.hop_length
    mel = mel_of(wave)
    shifted = augment.time_shift(tf.constant(np.repeat(mel[None], 8, axis=0)), 10, RNG(1)).numpy()
    shifts = [[k for k in range(-10, 11) if np.array_equal(np.roll(mel, k, axis=0), s)] for s in shifted]
    assert all(len(k) == 1 for k in shifts) and len({k[0] for k in shifts}) > 1  # a roll, drawn per clip
    k = next(k[0] for k in shifts if k[0] != 0)
    rolled = mel_of(np.roll(wave, k * hop))
    # Frames that wrapped around the end are off by frame - hop samples (the clip is not a whole
    # number of hops long), the others are exactly the waveform's.
    keep = np.zeros(len(mel), bool)
    keep[max(k, 0):len(mel) + min(k, 0)] = True
    mine = shifted[[s[0] for s in shifts].index(k)]
    np.testing.assert_allclose(mine[keep], rolled[keep], rtol=1e-4, atol=1e-4)


def test_speed_change_moves_the_pitch(wave):
    mel = mel_of(wave.numpy())
    faster, slower, same = augment.resample_mel(tf.constant(np.stack([mel] * 3)), tf.constant([1.1, 0.9, 1.0]),
                                                FEATURES).numpy()
    assert faster.shape == slower.shape == mel.shape
    for out, hz in ((faster, 1100), (slower, 900)):
        assert np.argmax(out[10]) == np.argmax(mel_of(np.sin(2 * np.pi * hz * np.arange(SR) / SR))[10])
    tail = len(mel) - int(np.ceil((len(mel) - 1) / 1.1))
    assert np.all(faster[-tail + 1:] == 0)  # played faster, the clip ends early
    np.testing.assert_allclose(same, mel, rtol=1e-4, atol=1e-6 * mel.max())


@pytest.mark.parametrize("rate", [0.9, 1.1])
def test_speed_change_matches_resampling_the_waveform(rich_waves, rate):
    """Within the error a half-hop misalignment makes, and far below the change itself."""
    clean = np.stack([mel_of(w) for w in rich_waves])
    ours = log(augment.resample_mel(tf.constant(clean), tf.fill([len(clean)], rate), FEATURES))
    errors, effects, misalignment = [], [], []
    for w, mine in zip(rich_waves, ours):
        reference = log(mel_of(resample_waveform(w, rate)))
        n = int(len(reference) * min(1.0, 1 / rate)) - 2
        errors.append(np.mean(np.abs(mine[:n] - reference[:n])))
        effects.append(np.mean(np.abs(log(mel_of(w))[:n] - reference[:n])))
        misalignment.append(np.mean(np.abs(log(mel_of(w)) - log(mel_of(np.roll(w, FEATURES.hop_length // 2))))))
    assert np.mean(errors) < 1.5 * np.mean(misalignment)
    assert np.mean(errors) < 0.35 * np.mean(effects)


def test_spec_augment_masks_bands_with_zero_per_clip():
    cfg = AugmentConfig(time_masks=2, time_mask_fraction=0.2, freq_masks=1, freq_mask_fraction=0.3)
    ones = tf.ones([20, 13, 100])
    out = augment.spec_augment(ones, cfg, RNG()).numpy()
    assert set(np.unique(out)) <= {0.0, 1.0} and (out == 0).any()
    zero_cols = (out == 0).all(axis=1).sum(axis=1)
    assert zero_cols.max() <= 2 * 20
    assert len({tuple(np.flatnonzero(c)) for c in (out == 0).all(axis=1)}) > 5  # drawn per clip
    zero_rows = (out == 0).all(axis=2)  # [clips, coefficients]: bands masked for the whole clip
    assert zero_rows.sum(axis=1).max() <= int(0.3 * 13) and zero_rows.any(axis=1).sum() > 5
    assert len({tuple(np.flatnonzero(r)) for r in zero_rows}) > 5  # drawn per clip
    # every zero lies in a masked band or a masked frame of its clip
    assert np.array_equal(out == 0, zero_rows[:, :, None] | (out == 0).all(axis=1)[:, None, :])
    off = AugmentConfig(time_masks=0, freq_masks=0)
    assert np.array_equal(augment.spec_augment(ones, off, RNG()), ones)


def test_random_mel_shift_moves_each_clip_by_whole_bands_drawn_per_clip():
    feats = np.random.default_rng(0).random((200, 64, 10)).astype(np.float32)
    out = augment.random_mel_shift(tf.constant(feats), 2, RNG()).numpy()
    drawn = []
    for clip, moved in zip(feats, out):
        matches = [s for s in range(-2, 3) if np.array_equal(moved, pipeline.shift_mels(clip[None], s)[0])]
        assert len(matches) == 1  # exactly one whole-band shift, edge band repeated
        drawn.append(matches[0])
    assert np.bincount(np.array(drawn) + 2).min() >= 25  # every shift in [-2, 2], about uniformly
    assert np.array_equal(augment.random_mel_shift(tf.constant(feats), 0, RNG()), feats)


def _plain_augment(mel_shift: int) -> Config:
    """A 1-second config whose only training augmentation is ``augment.mel_shift``."""
    return with_values(Config(), {
        "audio.clip_seconds": 1.0, "train.batch_size": 8, "augment.gain_db": 0, "augment.noise_prob": 0,
        "augment.shift_seconds": 0, "augment.speed_prob": 0, "augment.time_masks": 0, "augment.freq_masks": 0,
        "augment.mixup_alpha": 0, "augment.mel_shift": mel_shift})


def test_the_training_pipeline_shifts_the_mels_and_eval_does_not():
    config = _plain_augment(mel_shift=3)
    waves = (0.1 * np.random.default_rng(0).standard_normal((8, SR))).astype(np.float32)
    labels = np.arange(8, dtype=np.int32)
    norm = Normalization.identity(feature_shape(config)[0])
    plain = pipeline.feature_array(waves, config, norm)
    xs, ys = next(pipeline.train_dataset(waves, labels, 8, config, norm, seed=0).as_numpy_iterator())
    shifts = []
    for x, y in zip(xs, ys):
        clip = plain[np.argmax(y)]
        shifts += [s for s in range(-3, 4) if np.allclose(x, pipeline.shift_mels(clip[None], s)[0], atol=1e-5)]
    assert len(shifts) == 8 and len(set(shifts)) > 1  # each clip moved whole bands, not all by the same


def test_the_training_pipeline_restyles_the_bands_with_freq_mixstyle():
    config = with_value(_plain_augment(mel_shift=0), "augment.freq_mixstyle_prob", 1.0)
    waves = (np.random.default_rng(0).standard_normal((8, SR)) * np.geomspace(0.01, 1, 8)[:, None]).astype(np.float32)
    norm = Normalization.identity(feature_shape(config)[0])
    plain = pipeline.feature_array(waves, config, norm)[..., 0]
    xs, ys = next(pipeline.train_dataset(waves, np.arange(8, dtype=np.int32), 8, config, norm, seed=0)
                  .as_numpy_iterator())
    def standard(f):
        return (f - f.mean(axis=-1, keepdims=True)) / f.std(axis=-1, keepdims=True)
    sources = plain[np.argmax(ys, axis=1)]
    np.testing.assert_allclose(standard(xs[..., 0]), standard(sources), atol=1e-3)
    assert not np.allclose(xs[..., 0], sources, atol=1e-2)


@pytest.mark.parametrize("change, message", [
    ({"augment.mel_shift": 1, "features.kind": "mfcc"}, "augment.mel_shift.*must be 0"),
    ({"augment.mel_shift": 64}, "augment.mel_shift.*between 0 and 63")])
def test_impossible_band_augmentations_are_refused(change, message):
    config = with_values(_plain_augment(0), change)
    with pytest.raises(ConfigError, match=message):
        augment.check_augment_config(config.augment, config.features)


def test_freq_mixstyle_gives_chosen_clips_a_mix_of_their_own_and_a_partners_band_statistics():
    rng = np.random.default_rng(0)
    feats = (rng.random((64, 8, 50)) * rng.uniform(0.5, 3, (64, 8, 1)) + rng.normal(0, 2, (64, 8, 1)))
    feats = feats.astype(np.float32)
    out = augment.freq_mixstyle(tf.constant(feats), 0.5, 0.3, RNG()).numpy()
    changed = ~np.all(np.isclose(out, feats, atol=1e-5), axis=(1, 2))
    assert 16 <= changed.sum() <= 48  # about half the clips
    mean, std = feats.mean(axis=2), feats.std(axis=2)
    out_mean, out_std = out.mean(axis=2), out.std(axis=2)
    for clip in np.flatnonzero(changed):
        # one weight w and one partner p explain every band's new mean and std at once
        fits = []
        for p in range(len(feats)):
            dm = mean[clip] - mean[p]
            w = np.dot(out_mean[clip] - mean[p], dm) / max(np.dot(dm, dm), 1e-12)
            if np.allclose(out_mean[clip], w * mean[clip] + (1 - w) * mean[p], atol=1e-3) and \
                    np.allclose(out_std[clip], w * std[clip] + (1 - w) * std[p], atol=1e-3) and 0 <= w <= 1:
                fits.append(p)
        assert fits, clip
        # the shape in time is kept: the standardised clip is unchanged
        standard = (out[clip] - out_mean[clip, :, None]) / out_std[clip, :, None]
        np.testing.assert_allclose(standard, (feats[clip] - mean[clip, :, None]) / std[clip, :, None], atol=1e-3)
    assert np.array_equal(augment.freq_mixstyle(tf.constant(feats), 0.0, 0.3, RNG()), feats)


def test_mixup_mixes_inputs_and_labels_alike():
    """Each clip's input is ``lam * x_i + (1 - lam) * x_p`` for a drawn weight and partner; its label is
    the same mix of the two labels, with the same ``lam`` and the same partner."""
    clips = 64
    x = tf.constant(np.eye(clips, dtype=np.float32).reshape(clips, 1, 1, clips))  # each clip's input names it
    y = tf.one_hot(tf.range(clips) % 4, 4) * 0.9 + 0.025  # labels with no zeros (as with smoothing)
    mx, my = augment.mixup(x, y, 0.4, RNG())
    mx, my, y = mx.numpy().reshape(clips, clips), my.numpy(), y.numpy()
    lams = []
    for i in range(clips):
        lam = mx[i, i]
        partner = i if np.isclose(lam, 1.0, atol=1e-6) else int(np.argmax(np.where(np.arange(clips) == i, -1, mx[i])))
        np.testing.assert_allclose(mx[i, partner], 1.0 - lam if partner != i else 1.0, atol=1e-6)
        np.testing.assert_allclose(my[i], lam * y[i] + (1.0 - lam) * y[partner], atol=1e-6)
        lams.append(lam)
    lams = np.array(lams)
    assert np.all((0 <= lams) & (lams <= 1)) and lams.std() > 0.1  # drawn per clip, not one weight for all
    assert np.mean((lams > 0.05) & (lams < 0.95)) > 0.3  # and most clips are really mixed
    assert augment.mixup(x, tf.constant(y), 0.0, RNG())[0] is x


def test_eval_pipeline_is_never_augmented_and_train_is():
    config = with_values(Config(), {"audio.clip_seconds": 1.0, "train.batch_size": 4})
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((6, SR))).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2], np.int32)
    norm = Normalization.identity(feature_shape(config)[0])
    first = np.concatenate([x for x, _ in pipeline.eval_dataset(waves, labels, 3, config, norm).as_numpy_iterator()])
    again = np.concatenate([x for x, _ in pipeline.eval_dataset(waves, labels, 3, config, norm).as_numpy_iterator()])
    assert first.shape == (6, *feature_shape(config), 1)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, pipeline.feature_array(waves, config, norm), rtol=1e-5, atol=1e-5)
    train = pipeline.train_dataset(waves, labels, 3, config, norm, seed=0)
    epoch1 = np.concatenate([x for x, _ in train.as_numpy_iterator()])
    epoch2 = np.concatenate([x for x, _ in train.as_numpy_iterator()])
    assert epoch1.shape == first.shape and not np.allclose(epoch1, epoch2)
    config = with_value(config, "augment.enabled", False)
    plain = pipeline.train_dataset(waves, labels, 3, config, norm, seed=0)
    xs, ys = zip(*plain.as_numpy_iterator())
    xs, ys = np.concatenate(xs), np.concatenate(ys)
    order = np.argsort([np.argmax(np.all(np.isclose(first, x, atol=1e-5), axis=(1, 2, 3))) for x in xs])
    np.testing.assert_allclose(xs[order], first, atol=1e-5)
    assert set(ys.sum(axis=1)) == {1.0}  # one-hot, no mixup


def test_each_epoch_draws_anew_yet_a_seed_reproduces_the_run():
    """With a global seed set (as training does), plain tf.random ops in a dataset function would
    repeat the same draws every epoch; the pipeline's generator must not."""
    config = with_values(Config(), {"audio.clip_seconds": 1.0, "train.batch_size": 3, "augment.mixup_alpha": 0.0})
    waves = (0.1 * np.random.default_rng(0).standard_normal((8, SR))).astype(np.float32)
    labels = np.arange(8, dtype=np.int32)

    def epochs(count: int) -> list[np.ndarray]:
        tf.keras.utils.set_random_seed(0)
        ds = pipeline.train_dataset(waves, labels, 8, config, Normalization.identity(feature_shape(config)[0]), seed=5)
        out = []
        for _ in range(count):
            xs, ys = zip(*ds.as_numpy_iterator())
            out.append(np.concatenate(xs)[np.argsort(np.concatenate(ys).argmax(axis=1))])  # clip order
        return out

    first, second = epochs(2)
    assert all(not np.allclose(a, b) for a, b in zip(first, second))  # every clip re-augmented
    np.testing.assert_array_equal(epochs(1)[0], first)


def test_one_stft_serves_normalisation_training_and_recalibration(rich_waves):
    """The mel cache gives the same statistics and features as computing them from the waveforms."""
    config = with_value(Config(), "audio.clip_seconds", rich_waves.shape[1] / SR)
    mel, _ = pipeline.mel_cache(rich_waves, config)
    direct = normalization_stats(rich_waves, config)
    cached = normalization_stats(rich_waves, config, mel=mel)
    np.testing.assert_allclose(cached.mean, direct.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cached.std, direct.std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pipeline.cached_features(mel, config, direct),
                               pipeline.feature_array(rich_waves, config, direct), rtol=1e-5,
                               atol=1e-4)  # batched vs per-clip float32 FFT, after dividing by the std

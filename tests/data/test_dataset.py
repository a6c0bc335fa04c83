"""Reading, validating, decoding and splitting ESC-50-layout folders."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import tensorflow as tf
import tensorflow_io as tfio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esc_tf.cli.main import main as cli_main
from esc_tf.config import AudioConfig, Config, DataConfig
from esc_tf.data import dataset as data
from esc_tf.data.dataset import DatasetError
from tests.conftest import make_dataset


def copy_dataset(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ds"
    shutil.copytree(src, dst)
    return dst


def edit_csv(root: Path, edit) -> Path:
    csv = root / "meta" / "esc50.csv"
    df = pd.read_csv(csv, dtype=str)
    df = edit(df)
    df.to_csv(csv, index=False)
    return csv


def test_tensorflow_io_ops_run():
    """tfio's FLAC decoder and resampler load and compute on this TF version."""
    import io
    buf = io.BytesIO()
    sf.write(buf, (np.sin(np.arange(4410) / 5) * 10000).astype(np.int16), 44100, format="FLAC")
    decoded = tfio.audio.decode_flac(tf.constant(buf.getvalue()), dtype=tf.int16)
    assert decoded.shape == (4410, 1)
    resampled = tfio.audio.resample(tf.cast(decoded, tf.float32), rate_in=44100, rate_out=16000)
    assert abs(resampled.shape[0] - 1600) <= 1


def test_read_metadata_of_valid_dataset(dataset_dir):
    meta = data.read_metadata(dataset_dir)
    assert len(meta) == 30
    assert set(meta["fold"]) == {1, 2, 3, 4, 5}
    assert data.class_names(meta) == ["dog", "rain", "chainsaw"]
    assert sorted(set(data.labels(meta))) == [0, 1, 2]
    assert set(meta["channels"]) == {1, 2}
    assert set(meta["sample_rate"]) == {22050}


@pytest.mark.parametrize("edit, message", [
    (lambda df: df.drop(columns=["fold"]), "missing column"),
    (lambda df: df.assign(fold=df["fold"].where(df.index != 3, "6")), "fold must be 1-5"),
    (lambda df: df.assign(fold=df["fold"].where(df.index != 3, "two")), "must hold integers"),
    (lambda df: df.assign(target=df["target"].where(df.index != 3, "1.5")), "must hold integers"),
    (lambda df: df.assign(category=df["category"].where(df.index != 3, "rooster")), "mismatch"),
    (lambda df: df.assign(esc10=df["esc10"].where(df.index != 3, "maybe")), "True/False"),
    (lambda df: pd.concat([df, df.iloc[[0]]]), "more than once"),
    (lambda df: df.iloc[0:0], "no clips"),
])
def test_bad_metadata_is_refused_with_the_file_named(dataset_dir, tmp_path, edit, message):
    root = copy_dataset(dataset_dir, tmp_path)
    csv = edit_csv(root, edit)
    with pytest.raises(DatasetError, match=message) as err:
        data.read_metadata(root)
    assert str(csv) in str(err.value)


def test_missing_folder_and_csv(tmp_path):
    with pytest.raises(DatasetError, match="download"):
        data.read_metadata(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="esc50.csv"):
        data.read_metadata(tmp_path / "empty")


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.unlink(), "does not exist"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"RIFF\x00\x00junk that is not audio at all" * 4), "not a readable audio file"),
])
def test_bad_audio_file_is_named(dataset_dir, tmp_path, damage, message):
    root = copy_dataset(dataset_dir, tmp_path)
    victim = sorted((root / "audio").iterdir())[5]
    damage(victim)
    with pytest.raises(DatasetError, match=message) as err:
        data.read_metadata(root)
    assert victim.name in str(err.value)


def test_truncated_audio_fails_at_decode_with_the_file_named(dataset_dir, tmp_path):
    """A file whose header reads but whose body is cut off is caught when decoding."""
    root = copy_dataset(dataset_dir, tmp_path)
    victim = sorted((root / "audio").iterdir())[7]
    raw = victim.read_bytes()
    meta = data.read_metadata(root)
    victim.write_bytes(raw[:60])  # header says 1 s of audio; a few bytes remain
    with pytest.raises(DatasetError, match="cannot decode") as err:
        data.load_waveforms(meta, AudioConfig(clip_seconds=1.0), cache_dir=None, progress=False)
    assert victim.name in str(err.value)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_formats_decode_resample_and_mix_to_mono(tmp_path, fmt):
    root = make_dataset(tmp_path / fmt, clips_per_class_per_fold=1, folds=(1, 2), rate=44100, fmt=fmt,
                        stereo_every=2)
    meta = data.read_metadata(root)
    audio = AudioConfig(sample_rate=16000, clip_seconds=1.0)
    waves = data.load_waveforms(meta, audio, cache_dir=None, progress=False)
    assert waves.shape == (len(meta), 16000) and waves.dtype == np.float32
    for wave, path in zip(waves, meta["path"]):
        original, rate = sf.read(path, dtype="float32", always_2d=True)
        # Same loudness (mono = channel mean, no normalisation) and same pitch after resampling.
        assert np.sqrt(np.mean(wave ** 2)) == pytest.approx(np.sqrt(np.mean(original.mean(1) ** 2)), rel=0.05)
        peak_hz = np.argmax(np.abs(np.fft.rfft(wave))) * 16000 / len(wave)
        peak_orig = np.argmax(np.abs(np.fft.rfft(original.mean(1)))) * rate / len(original)
        assert peak_hz == pytest.approx(peak_orig, abs=3)


def test_wav_is_bit_exact_at_the_native_rate(tmp_path):
    root = make_dataset(tmp_path, clips_per_class_per_fold=1, folds=(1, 2), rate=16000, stereo_every=0)
    meta = data.read_metadata(root)
    waves = data.load_waveforms(meta, AudioConfig(clip_seconds=1.0), cache_dir=None, progress=False)
    original, _ = sf.read(meta["path"][0], dtype="float32")
    np.testing.assert_array_equal(waves[0], original)


def test_decoded_audio_is_on_16_bit_pcm_levels(tmp_path):
    """Resampled and float-coded audio is rounded as a device microphone would deliver it."""
    root = make_dataset(tmp_path, clips_per_class_per_fold=1, folds=(1, 2), rate=44100, fmt="ogg")
    meta = data.read_metadata(root)
    waves = data.load_waveforms(meta, AudioConfig(clip_seconds=1.0), cache_dir=None, progress=False)
    np.testing.assert_array_equal(waves * 32768, np.round(waves * 32768))
    loud = data.to_pcm16(tf.constant([1.3, -1.3, 0.5 / 32768, 0.6 / 32768])).numpy()
    np.testing.assert_array_equal(loud * 32768, [32767, -32768, 0, 1])


def test_other_pcm_formats_go_through_libsndfile(tmp_path):
    root = make_dataset(tmp_path, clips_per_class_per_fold=1, folds=(1, 2), rate=16000, stereo_every=0)
    meta = data.read_metadata(root)
    path = meta["path"][0]
    audio, rate = sf.read(path, dtype="float32")
    sf.write(path, audio, rate, subtype="PCM_24")
    meta = data.read_metadata(root)
    assert meta["decoder"][0] == data.DECODE_SOUNDFILE
    waves = data.load_waveforms(meta, AudioConfig(clip_seconds=1.0), cache_dir=None, progress=False)
    np.testing.assert_allclose(waves[0], audio, atol=1e-4)


def test_clips_are_padded_or_cut_to_the_clip_length(tmp_path):
    root = make_dataset(tmp_path, clips_per_class_per_fold=1, folds=(1, 2), rate=16000, seconds=0.5,
                        stereo_every=0)
    meta = data.read_metadata(root)
    waves = data.load_waveforms(meta, AudioConfig(clip_seconds=1.0), cache_dir=None, progress=False)
    assert np.all(waves[:, 8000:] == 0) and np.any(waves[:, :8000] != 0)
    short = data.load_waveforms(meta, AudioConfig(clip_seconds=0.25), cache_dir=None, progress=False)
    np.testing.assert_array_equal(short, waves[:, :4000])


def test_waveforms_are_decoded_once_then_read_from_the_cache(dataset_dir, tmp_path, monkeypatch):
    meta = data.read_metadata(dataset_dir)
    audio = AudioConfig(clip_seconds=1.0)
    first = data.load_waveforms(meta, audio, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("waveforms-*.npy"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")
    monkeypatch.setattr(data, "decoded_dataset", no_decoding)
    np.testing.assert_array_equal(data.load_waveforms(meta, audio, cache_dir=tmp_path, progress=False), first)
    with pytest.raises(AssertionError, match="decoded again"):  # other settings, other cache entry
        data.load_waveforms(meta, AudioConfig(sample_rate=8000, clip_seconds=1.0), cache_dir=tmp_path)


def test_esc10_subset_keeps_flagged_classes(dataset_dir):
    meta = data.read_metadata(dataset_dir)
    meta.loc[meta["target"] == 10, "esc10"] = False
    sub = data.select_subset(meta, "esc10")
    assert data.class_names(sub) == ["dog", "chainsaw"]
    assert sorted(set(data.labels(sub))) == [0, 1]
    with pytest.raises(DatasetError, match="subset"):
        data.select_subset(meta, "esc20")


def test_fold_splits_never_put_a_test_clip_in_training(dataset_dir):
    meta = data.read_metadata(dataset_dir)
    splits = data.make_splits(meta, DataConfig(val_fraction=0.125))
    assert [s.test_fold for s in splits] == [1, 2, 3, 4, 5]
    for s in splits:
        assert set(meta["fold"].iloc[s.test]) == {s.test_fold}
        assert s.test_fold not in set(meta["fold"].iloc[np.concatenate([s.train, s.val])])
        assert len(s.train) + len(s.val) + len(s.test) == len(meta)
        assert len(s.val) > 0
        # takes of one source recording stay on one side of the validation cut
        assert not set(meta["src_file"].iloc[s.train]) & set(meta["src_file"].iloc[s.val])


def test_validation_groups_takes_of_one_recording(dataset_dir, tmp_path):
    root = copy_dataset(dataset_dir, tmp_path)
    edit_csv(root, lambda df: df.assign(src_file=[f"rec{i // 2}" for i in range(len(df))]))
    meta = data.read_metadata(root)
    for s in data.make_splits(meta, DataConfig(val_fraction=0.125)):
        assert not set(meta["src_file"].iloc[s.train]) & set(meta["src_file"].iloc[s.val])


def test_requested_and_empty_folds(dataset_dir):
    meta = data.read_metadata(dataset_dir)
    assert [s.name for s in data.make_splits(meta, DataConfig(folds=[1, 3]))] == ["fold1", "fold3"]
    without_4 = meta[meta["fold"] != 4].reset_index(drop=True)
    with pytest.raises(DatasetError, match="fold 4 has no clips"):
        data.make_splits(without_4, DataConfig(folds=[4]))
    assert [s.test_fold for s in data.make_splits(without_4, DataConfig())] == [1, 2, 3, 5]


def test_stratified_split_is_80_20_and_reproducible(dataset_dir):
    meta = data.read_metadata(dataset_dir)
    a = data.make_splits(meta, DataConfig(split="stratified", random_state=3))[0]
    b = data.make_splits(meta, DataConfig(split="stratified", random_state=3))[0]
    c = data.make_splits(meta, DataConfig(split="stratified", random_state=4))[0]
    assert len(a.test) == 6 and np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)
    assert np.bincount(data.labels(meta)[a.test]).tolist() == [2, 2, 2]
    a.check_disjoint()


def test_by_default_every_training_clip_is_fitted(dataset_dir):
    meta = data.read_metadata(dataset_dir)
    for s in data.make_splits(meta, DataConfig()):
        assert len(s.val) == 0 and len(s.train) + len(s.test) == len(meta)


def test_check_command(dataset_dir, capsys, tmp_path):
    assert cli_main(["check", "--data-dir", str(dataset_dir), "--set", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    assert "30 clips, 3 classes" in capsys.readouterr().out
    assert cli_main(["check", "--data-dir", str(tmp_path / "none")]) == 1
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main([])
    assert exit_info.value.code == 2


def _write_float_wav(path: Path, samples: np.ndarray, rate: int = 22050) -> None:
    sf.write(path, samples.astype(np.float32), rate, subtype="FLOAT")


def test_every_unusable_clip_is_named_at_once_before_anything_is_cached(dataset_dir, tmp_path, capsys):
    """A truncated clip, a clip with NaN samples and one with an infinite sample: one error lists all three,
    and `esc-tf check` refuses what training refuses."""
    root = copy_dataset(dataset_dir, tmp_path)
    files = sorted((root / "audio").iterdir())
    truncated, not_a_number, infinite = files[3], files[11], files[20]
    meta = data.read_metadata(root)  # headers read before the damage: as a file damaged after listing
    truncated.write_bytes(truncated.read_bytes()[:60])
    for victim, bad in ((not_a_number, np.nan), (infinite, np.inf)):
        wave = np.full(22050, 0.1)
        wave[100] = bad
        _write_float_wav(victim, wave)
    meta = meta.assign(decoder=[data.DECODE_SOUNDFILE if p in (str(not_a_number), str(infinite)) else d
                                for p, d in zip(meta["path"], meta["decoder"])])
    with pytest.raises(DatasetError) as err:
        data.load_waveforms(meta, AudioConfig(sample_rate=22050, clip_seconds=1.0), cache_dir=tmp_path / "c",
                            progress=False)
    message = str(err.value)
    assert message.startswith("3 clips cannot be used")
    assert f"{truncated}: cannot decode audio" in message
    assert f"{not_a_number}: holds NaN or infinite samples" in message
    assert f"{infinite}: holds NaN or infinite samples" in message
    assert not (tmp_path / "c").exists()
    assert cli_main(["check", "--data-dir", str(root), "--set", f"data.cache_dir={tmp_path / 'c'}"]) == 1
    err_text = capsys.readouterr().err
    assert "3 clips cannot be used" in err_text and "Traceback" not in err_text


def test_a_damaged_cache_entry_is_decoded_again(dataset_dir, tmp_path, capsys):
    meta = data.read_metadata(dataset_dir)
    audio = AudioConfig(clip_seconds=1.0)
    first = data.load_waveforms(meta, audio, cache_dir=tmp_path, progress=False)
    entry = next(tmp_path.glob("waveforms-*.npy"))
    for damage in (entry.read_bytes()[:1000], b"not numpy at all"):
        entry.write_bytes(damage)
        np.testing.assert_array_equal(data.load_waveforms(meta, audio, cache_dir=tmp_path, progress=False), first)
        assert "damaged cache entry" in capsys.readouterr().err
    np.save(entry, first[:, :100])  # a readable array of the wrong shape
    np.testing.assert_array_equal(data.load_waveforms(meta, audio, cache_dir=tmp_path, progress=False), first)
    flipped = first.copy()
    flipped[3, 5] += 0.5  # a well-formed entry whose contents changed: only the checksum sees it
    np.save(entry, flipped)
    np.testing.assert_array_equal(data.load_waveforms(meta, audio, cache_dir=tmp_path, progress=False), first)
    assert "damaged cache entry" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.wav", "sub/../../outside.wav", "C:\\x.wav"])
def test_file_names_must_stay_inside_the_audio_folder(dataset_dir, tmp_path, name):
    root = copy_dataset(dataset_dir, tmp_path)
    csv = root / "meta" / "esc50.csv"
    table = pd.read_csv(csv)
    table.loc[4, "filename"] = name
    table.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match="points outside audio/") as err:
        data.read_metadata(root)
    assert str(csv) in str(err.value) and "line 6" in str(err.value)


def test_a_dataset_of_one_class_is_refused(dataset_dir, tmp_path):
    root = copy_dataset(dataset_dir, tmp_path)
    csv = root / "meta" / "esc50.csv"
    table = pd.read_csv(csv)
    table[table["category"] == "dog"].to_csv(csv, index=False)
    config = Config(data=DataConfig(data_dir=str(root)))
    with pytest.raises(DatasetError, match="only one class \\(dog\\).*needs at least two"):
        data.load_dataset(config)


CELLS = st.one_of(st.text(max_size=10), st.integers(-3, 60).map(str), st.sampled_from(
    ["1-100000-A-0.wav", "../x.wav", "/abs.wav", "True", "False", "dog", "rain", "", "1.5", "nan"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.lists(st.sampled_from(["filename", "fold", "target", "category", "esc10", "src_file", "take",
                                        "other"]), min_size=1, max_size=7, unique=True),
       rows=st.lists(st.lists(CELLS, min_size=7, max_size=7), max_size=5))
def test_any_csv_gives_a_table_or_one_dataset_error(dataset_dir, tmp_path_factory, header, rows):
    """Whatever meta/esc50.csv holds, reading the dataset gives a validated table or a DatasetError naming
    the CSV or a clip: never another exception."""
    root = tmp_path_factory.mktemp("csv")
    (root / "meta").mkdir()
    shutil.copytree(dataset_dir / "audio", root / "audio")
    pd.DataFrame([row[:len(header)] for row in rows], columns=header).to_csv(root / "meta" / "esc50.csv",
                                                                             index=False)
    try:
        meta = data.read_metadata(root)
    except DatasetError as exc:
        assert str(root) in str(exc)
        return
    assert meta["fold"].isin([1, 2, 3, 4, 5]).all() and (meta["problem"] == "").all()

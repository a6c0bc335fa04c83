"""The dataset: read and validate an ESC-50-layout folder, decode it once, split it.

Layout (the official release, or any folder shaped like it)::

    DATA_DIR/meta/esc50.csv   columns filename, fold, target, category[, esc10, src_file, take]
    DATA_DIR/audio/*.wav      (FLAC and Ogg Vorbis files in the same layout work too)

Amplitude handling: integer PCM is scaled to [-1, 1) (int16 / 32768), channels are averaged
to mono, and after resampling the waveform is rounded to 16-bit PCM levels (saturating), as a
device microphone delivers it: the device front end then sees exactly the samples training
saw. Decoding applies no level normalisation: the front end divides each clip (on the device, each
window) by its peak when ``features.peak_normalize`` is on, the default. Clips are cut or
zero-padded at the end to ``audio.clip_seconds``.

``esc-tf download`` fetches the official release;
``esc-tf check --data-dir DIR`` validates a folder and prints its summary.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath, PureWindowsPath

import numpy as np
import pandas as pd
import soundfile as sf
import tensorflow as tf
import tensorflow_io as tfio
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from tqdm.auto import tqdm

from esc_tf.artifacts import write_bytes_atomic, write_text_atomic
from esc_tf.config import AudioConfig, Config, DataConfig

REQUIRED_COLUMNS = ("filename", "fold", "target", "category")
VALID_FOLDS = (1, 2, 3, 4, 5)
CACHE_FORMAT_VERSION = 3

# How each clip is decoded inside the tf.data graph, chosen from its header.
DECODE_WAV16, DECODE_FLAC16, DECODE_VORBIS, DECODE_SOUNDFILE = 0, 1, 2, 3


NON_FINITE = "holds NaN or infinite samples"


class DatasetError(ValueError):
    """The dataset folder, its metadata or one of its audio files is unusable."""


def metadata_path(data_dir: str | Path) -> Path:
    """Where a dataset in the ESC-50 layout keeps its metadata table."""
    return Path(data_dir) / "meta" / "esc50.csv"


def _fail(where: Path | str, problem: str) -> None:
    raise DatasetError(f"{where}: {problem}")


def _integer_column(meta: pd.DataFrame, column: str, csv: Path) -> pd.Series:
    values = pd.to_numeric(meta[column], errors="coerce")
    bad = meta.index[values.isna() | (values != values.round())]
    if len(bad):
        row = bad[0]
        _fail(csv, f"column '{column}' must hold integers; line {row + 2} has {meta[column][row]!r}")
    return values.astype(int)


def _bool_column(meta: pd.DataFrame, column: str, csv: Path) -> pd.Series:
    mapping = {"true": True, "false": False, "1": True, "0": False}
    text = meta[column].astype(str).str.strip().str.lower()
    bad = meta.index[~text.isin(mapping.keys())]
    if len(bad):
        _fail(csv, f"column '{column}' must be True/False; line {bad[0] + 2} has {meta[column][bad[0]]!r}")
    return text.map(mapping).astype(bool)


def read_metadata(data_dir: str | Path, keep_unreadable: bool = False) -> pd.DataFrame:
    """Read and validate ``meta/esc50.csv`` and the headers of the audio files it names.

    Returns the table with extra columns ``path``, ``sample_rate``, ``channels``, ``frames``,
    ``decoder`` and ``problem``. Raises :class:`DatasetError` naming the file and the problem for
    anything unusable; with ``keep_unreadable``, clips whose header cannot be read stay in the table
    with their ``problem``, so that :func:`load_waveforms` names them together with the clips that
    fail to decode.
    """
    data_dir = Path(data_dir)
    csv = metadata_path(data_dir)
    if not data_dir.is_dir():
        _fail(data_dir, "dataset folder not found. Get ESC-50 with "
              "`esc-tf download --dest DIR` or pass --data-dir")
    if not csv.is_file():
        _fail(csv, "metadata file not found (expected the ESC-50 layout meta/esc50.csv + audio/)")
    try:
        meta = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{csv}: not a readable CSV file: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in meta.columns]
    if missing:
        _fail(csv, f"missing column(s) {', '.join(missing)}; found {', '.join(meta.columns)}")
    if meta.empty:
        _fail(csv, "no clips listed")
    meta["filename"] = meta["filename"].str.strip()
    meta["category"] = meta["category"].str.strip()
    if (meta["filename"] == "").any():
        _fail(csv, f"empty filename on line {int(np.argmax(meta['filename'] == '')) + 2}")
    outside = [i for i, name in enumerate(meta["filename"])
               if PurePath(name).is_absolute() or PureWindowsPath(name).is_absolute() or ".." in PurePath(name).parts]
    if outside:
        _fail(csv, f"line {outside[0] + 2}: filename {meta['filename'][outside[0]]!r} points outside audio/; "
                   "list files by their name inside the audio folder")
    dupes = meta["filename"][meta["filename"].duplicated()]
    if len(dupes):
        _fail(csv, f"filename {dupes.iloc[0]!r} is listed more than once")
    meta["fold"] = _integer_column(meta, "fold", csv)
    meta["target"] = _integer_column(meta, "target", csv)
    bad_fold = meta.index[~meta["fold"].isin(VALID_FOLDS)]
    if len(bad_fold):
        row = bad_fold[0]
        _fail(csv, f"fold must be 1-5; line {row + 2} ({meta['filename'][row]}) has {meta['fold'][row]}")
    if "esc10" in meta.columns:
        meta["esc10"] = _bool_column(meta, "esc10", csv)
    _check_labels(meta, csv)
    meta["path"] = [str(data_dir / "audio" / name) for name in meta["filename"]]
    meta = _probe_audio(meta)
    problems = [p for p in meta["problem"] if p]
    if problems and not keep_unreadable:
        raise unusable_clips_error(problems)
    return meta


def _check_labels(meta: pd.DataFrame, csv: Path) -> None:
    """Every target must name one category and every category one target."""
    for key, other in (("target", "category"), ("category", "target")):
        counts = meta.groupby(key)[other].nunique()
        if (counts > 1).any():
            value = counts.index[counts > 1][0]
            seen = sorted(meta.loc[meta[key] == value, other].astype(str).unique())
            _fail(csv, f"label/category mismatch: {key} {value!r} appears with {other} {', '.join(seen)}")


def _decoder_for(info: sf._SoundFileInfo) -> int:
    if info.format == "WAV" and info.subtype == "PCM_16":
        return DECODE_WAV16
    if info.format == "FLAC" and info.subtype == "PCM_16":
        return DECODE_FLAC16
    if info.format == "OGG" and info.subtype == "VORBIS":
        return DECODE_VORBIS
    return DECODE_SOUNDFILE


def _probe_audio(meta: pd.DataFrame) -> pd.DataFrame:
    """Read every audio header: existence, emptiness, readability, rate, channels. A clip that fails gets
    its reason in the ``problem`` column (empty for the others) and is not read any further."""
    rates, channels, frames, decoders, problems = [], [], [], [], []
    for path in meta["path"]:
        p, problem, info = Path(path), "", None
        if not p.is_file():
            problem = "audio file listed in meta/esc50.csv does not exist"
        elif p.stat().st_size == 0:
            problem = "audio file is empty (0 bytes)"
        else:
            try:
                info = sf.info(path)
                if info.frames <= 0:
                    problem = "audio file has no samples"
            except (RuntimeError, sf.LibsndfileError) as exc:
                problem = f"not a readable audio file ({exc})"
        if problem:
            info = None
        problems.append(f"{p}: {problem}" if problem else "")
        rates.append(int(info.samplerate) if info else 0)
        channels.append(int(info.channels) if info else 0)
        frames.append(int(info.frames) if info else 0)
        decoders.append(_decoder_for(info) if info else DECODE_SOUNDFILE)
    return meta.assign(sample_rate=rates, channels=channels, frames=frames, decoder=decoders, problem=problems)


def unusable_clips_error(problems: list[str]) -> DatasetError:
    """One error naming every unusable clip (one per line after the first when there are several)."""
    if len(problems) == 1:
        return DatasetError(problems[0])
    return DatasetError(f"{len(problems)} clips cannot be used; replace or remove them:\n  " +
                        "\n  ".join(sorted(problems)))


def select_subset(meta: pd.DataFrame, subset: str) -> pd.DataFrame:
    """Keep all clips (``"all"``), the ESC-10 classes (``"esc10"``) or the other classes (``"not-esc10"``,
    e.g. to pretrain a model for ESC-10 on clips none of its folds hold)."""
    if subset == "all":
        return meta.reset_index(drop=True)
    if subset in ("esc10", "not-esc10"):
        if "esc10" not in meta.columns:
            raise DatasetError(f"subset {subset} needs the 'esc10' column of meta/esc50.csv")
        kept = meta[meta["esc10"] == (subset == "esc10")]
        if kept.empty:
            raise DatasetError(f"subset {subset}: no clip has esc10={subset == 'esc10'}")
        return kept.reset_index(drop=True)
    raise DatasetError(f"unknown subset {subset!r}; use 'all', 'esc10' or 'not-esc10'")


def class_names(meta: pd.DataFrame) -> list[str]:
    """Category names ordered by their ESC-50 target number; index = model output."""
    pairs = meta[["target", "category"]].drop_duplicates().sort_values("target")
    return list(pairs["category"])


def labels(meta: pd.DataFrame) -> np.ndarray:
    """Contiguous class indices 0..C-1 (ESC-10 targets are not contiguous)."""
    order = {t: i for i, t in enumerate(sorted(meta["target"].unique()))}
    return meta["target"].map(order).to_numpy(dtype=np.int32)


def load_dataset(config: Config) -> pd.DataFrame:
    """Read, validate and subset the configured dataset (at least two classes: it trains a classifier)."""
    meta = select_subset(read_metadata(config.resolved_data_dir(), keep_unreadable=True), config.data.subset)
    if meta["category"].nunique() < 2:
        raise DatasetError(f"{metadata_path(config.resolved_data_dir())}: only one class "
                           f"({meta['category'].iloc[0]}) in subset {config.data.subset}; a classifier needs at "
                           "least two")
    return meta


# --------------------------------------------------------------------------- decoding

def _decode_with_soundfile(path: bytes) -> np.ndarray:
    audio, _ = sf.read(path.decode(), dtype="float32", always_2d=True)
    return audio


def decode_clip(path: tf.Tensor, decoder: tf.Tensor, rate: tf.Tensor, audio: AudioConfig) -> tf.Tensor:
    """Decode one file to a mono float32 waveform at ``audio.sample_rate`` of fixed length.

    Runs inside the tf.data graph: WAV with TF core, FLAC and Vorbis with tensorflow-io,
    anything else libsndfile can read through a numpy function.
    """
    raw = tf.io.read_file(path)

    def wav16() -> tf.Tensor:
        return tf.audio.decode_wav(raw).audio

    def flac16() -> tf.Tensor:
        return tf.cast(tfio.audio.decode_flac(raw, dtype=tf.int16), tf.float32) / 32768.0

    def vorbis() -> tf.Tensor:
        return tfio.audio.decode_vorbis(raw)

    def other() -> tf.Tensor:
        return tf.numpy_function(_decode_with_soundfile, [path], tf.float32, stateful=False)

    samples = tf.switch_case(decoder, [wav16, flac16, vorbis, other])
    mono = tf.reduce_mean(tf.reshape(samples, [tf.shape(samples)[0], -1]), axis=1, keepdims=True)
    mono = tf.debugging.assert_all_finite(mono, NON_FINITE)  # else to_pcm16 would saturate an infinity
    target_rate = audio.sample_rate
    resampled = tf.cond(
        tf.equal(rate, target_rate),
        lambda: mono,
        lambda: tfio.audio.resample(mono, rate_in=tf.cast(rate, tf.int64), rate_out=target_rate),
    )
    return fix_length(to_pcm16(resampled[:, 0]), audio.clip_samples)


def to_pcm16(wave: tf.Tensor) -> tf.Tensor:
    """Round to the 16-bit PCM levels a microphone delivers (saturating), scaled back to [-1, 1)."""
    return tf.clip_by_value(tf.round(wave * 32768.0), -32768.0, 32767.0) / 32768.0


def fix_length(wave: tf.Tensor, length: int) -> tf.Tensor:
    """Cut or zero-pad (at the end) a 1-D waveform to ``length`` samples."""
    wave = wave[:length]
    wave = tf.pad(wave, [[0, length - tf.shape(wave)[0]]])
    return tf.ensure_shape(wave, [length])


def decoded_dataset(meta: pd.DataFrame, audio: AudioConfig) -> tf.data.Dataset:
    """A deterministic tf.data source of decoded, resampled, fixed-length waveforms."""
    source = tf.data.Dataset.from_tensor_slices(
        (meta["path"].to_numpy(str), meta["decoder"].to_numpy(np.int32), meta["sample_rate"].to_numpy(np.int32)))
    return source.map(lambda p, d, r: decode_clip(p, d, r, audio),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def listing_fingerprint(meta: pd.DataFrame) -> str:
    """A fingerprint of the clips (names, sizes, modification times, folds, labels): a resumed run must be
    trained on the same data, and a cache entry was decoded from it."""
    h = hashlib.sha256()
    for row in meta[["filename", "fold", "target", "path"]].itertuples(index=False):
        st = os.stat(row.path)
        h.update(f"{row.filename}|{row.fold}|{row.target}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _cache_key(meta: pd.DataFrame, audio: AudioConfig) -> str:
    """The cache entry of these clips decoded with these audio settings."""
    settings = json.dumps([CACHE_FORMAT_VERSION, audio.sample_rate, audio.clip_samples, listing_fingerprint(meta)])
    return hashlib.sha256(settings.encode()).hexdigest()[:16]


def load_waveforms(meta: pd.DataFrame, audio: AudioConfig, cache_dir: str | Path | None = None,
                   progress: bool = True) -> np.ndarray:
    """All clips as a float32 array ``[clips, samples]``, decoded once and cached on disk.

    The cache is keyed by the files (path, size, mtime) and the audio settings, so a changed file or
    sample rate decodes again; an entry that does not read back as that many finite clips is decoded
    again too. Every clip whose header could not be read (its ``problem``, see :func:`read_metadata`),
    cannot be decoded, or holds NaN or infinite samples is named in one :class:`DatasetError`, and
    nothing is cached.
    """
    readable = (meta["problem"] == "").to_numpy() if "problem" in meta.columns else np.ones(len(meta), bool)
    problems = list(meta["problem"][~readable]) if "problem" in meta.columns else []
    cache_file = None
    if cache_dir is not None and not problems:
        cache_file = Path(cache_dir) / f"waveforms-{_cache_key(meta, audio)}.npy"
        cached = _read_cache(cache_file, (len(meta), audio.clip_samples))
        if cached is not None:
            return cached
    waves = np.zeros((len(meta), audio.clip_samples), np.float32)
    rows = np.flatnonzero(readable)
    with tqdm(total=len(rows), desc="decoding audio", unit="clip", disable=not progress) as bar:
        start = 0
        while start < len(rows):  # after a clip that fails, go on with the next one
            done = start
            try:
                for wave in decoded_dataset(meta.iloc[rows[start:]], audio).as_numpy_iterator():
                    waves[rows[done]] = wave
                    done += 1
                    bar.update(1)
            except tf.errors.OpError as exc:
                problems.append(_decode_problem(meta["path"].iloc[rows[done]], exc))
                done += 1
                bar.update(1)
            start = done
    if problems:
        raise unusable_clips_error(problems)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, waves)
        write_bytes_atomic(cache_file, buffer.getvalue())
        write_text_atomic(_checksum_file(cache_file), hashlib.sha256(buffer.getvalue()).hexdigest())
    return waves


def _checksum_file(cache_file: Path) -> Path:
    return cache_file.with_suffix(".sha256")


def _decode_problem(path: str | Path, exc: tf.errors.OpError) -> str:
    """What is wrong with a clip the decoder refused, in one line naming it."""
    text = op_error_text(exc)
    if NON_FINITE in text:
        return f"{path}: {NON_FINITE}"
    return f"{path}: cannot decode audio, truncated or corrupt? ({text})"


def _read_cache(cache_file: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached clips, or None when there is no entry or it is damaged: not its recorded checksum, not
    readable, or not that many finite float32 clips (then it is removed, to be rebuilt)."""
    if not cache_file.is_file():
        return None
    try:
        raw = cache_file.read_bytes()
        if _checksum_file(cache_file).read_text().strip() == hashlib.sha256(raw).hexdigest():
            waves = np.load(io.BytesIO(raw))
            if waves.shape == shape and waves.dtype == np.float32 and np.isfinite(waves).all():
                return waves
    except (OSError, ValueError, EOFError):
        pass
    print(f"{cache_file}: damaged cache entry, decoding the audio again", file=sys.stderr)
    cache_file.unlink(missing_ok=True)
    _checksum_file(cache_file).unlink(missing_ok=True)
    return None


def probe_file(path: str | Path) -> pd.DataFrame:
    """A one-row metadata frame (path, sample_rate, channels, frames, decoder) for one file.

    The header goes through the dataset's own checks, so a missing, empty or non-audio file
    raises :class:`DatasetError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    row = _probe_audio(pd.DataFrame({"path": [str(path)]}))
    if row["problem"].iloc[0]:
        raise DatasetError(row["problem"].iloc[0])
    return row


def decode_file(path: str | Path, audio: AudioConfig) -> np.ndarray:
    """The whole file as a mono float32 waveform at ``audio.sample_rate``, decoded as in training.

    Runs :func:`decoded_dataset` (the training decoder) with the clip length set to
    the file's own duration, so nothing is cut or padded here.
    """
    row = probe_file(path)
    full = AudioConfig(sample_rate=audio.sample_rate,
                       clip_seconds=float(row["frames"].iloc[0] / row["sample_rate"].iloc[0]))
    try:
        return next(decoded_dataset(row, full).as_numpy_iterator())
    except tf.errors.OpError as exc:
        raise DatasetError(_decode_problem(path, exc)) from exc


def op_error_text(exc: tf.errors.OpError) -> str:
    """The decoder's own words, without tf.data's function-node and iterator prefixes."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", exc.message.splitlines()[0])
    return re.sub(r"^Error in user-defined function .*?Iterator::\S+: ", "", text)


# --------------------------------------------------------------------------- splits

@dataclass
class Split:
    """Row indices (into the metadata table) of one train/validation/test partition."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_fold: int | None = None

    def check_disjoint(self) -> None:
        """Raise if any clip is in two parts; a test clip in training would invalidate the run."""
        parts = {"train": set(self.train), "val": set(self.val), "test": set(self.test)}
        for a, b in (("train", "test"), ("val", "test"), ("train", "val")):
            if parts[a] & parts[b]:
                raise AssertionError(f"split {self.name}: {a} and {b} share clips")


def _groups(meta: pd.DataFrame) -> np.ndarray:
    """Takes of one source recording stay together when the validation part is carved."""
    column = "src_file" if "src_file" in meta.columns else "filename"
    return meta[column].to_numpy(str)


def carve_validation(meta: pd.DataFrame, train: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into (fit, validation), stratified by class, grouped by source."""
    if fraction <= 0:
        return train, np.array([], dtype=int)
    y = labels(meta)[train]
    # Tiny datasets: fewer, larger folds, since every class needs a member in most folds.
    n_splits = max(2, min(int(round(1 / fraction)), int(np.bincount(y).max())))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    fit, val = next(splitter.split(train, y, _groups(meta)[train]))
    return train[fit], train[val]


def make_splits(meta: pd.DataFrame, data: DataConfig) -> list[Split]:
    """Official-fold cross-validation (``split='folds'``) or one stratified 80/20 split."""
    rows = np.arange(len(meta))
    present = sorted(meta["fold"].unique())
    splits = []
    if data.split == "folds":
        wanted = data.folds or present
        for fold in wanted:
            if fold not in VALID_FOLDS:
                raise DatasetError(f"fold {fold} requested; folds are 1-5")
            if fold not in present:
                raise DatasetError(f"fold {fold} has no clips in this dataset (folds present: "
                                   f"{', '.join(map(str, present))})")
        if len(present) < 2:
            raise DatasetError("cross-validation needs at least two folds with clips")
        for fold in wanted:
            test = rows[meta["fold"].to_numpy() == fold]
            train, val = carve_validation(meta, rows[meta["fold"].to_numpy() != fold],
                                          data.val_fraction, data.random_state)
            splits.append(Split(f"fold{fold}", train, val, test, test_fold=int(fold)))
    elif data.split == "stratified":
        train, test = train_test_split(rows, test_size=data.test_size, stratify=labels(meta),
                                       random_state=data.random_state)
        train, val = carve_validation(meta, np.sort(train), data.val_fraction, data.random_state)
        splits.append(Split("stratified", train, val, np.sort(test)))
    else:
        raise DatasetError(f"unknown split {data.split!r}; use 'folds' or 'stratified'")
    for split in splits:
        split.check_disjoint()
    return splits

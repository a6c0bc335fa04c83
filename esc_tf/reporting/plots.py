"""Tables and figures for the notebooks and ``esc-tf explore``: the dataset, one clip, one run.

Every function takes its inputs (a metadata table from :func:`esc_tf.data.dataset.read_metadata`, a
waveform and a :class:`~esc_tf.config.Config`, or a run folder / its ``report.json``) and
returns a :class:`pandas.DataFrame` or a :class:`matplotlib.figure.Figure`. Figures are made
without pyplot, so nothing is shown twice in a notebook and nothing stays open in a script:
return one from a notebook cell to display it, or call ``fig.savefig(path)``.

Clip plots go through :mod:`esc_tf.audio.features` (the training front end), never a second
implementation. Level checks (silence, clipping) read the files' own samples with
libsndfile, before mixing and resampling, since resampling can move peaks.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import tensorflow as tf
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from esc_tf import artifacts
from esc_tf.artifacts import read_report
from esc_tf.audio import features as feat
from esc_tf.config import Config
from esc_tf.data import dataset as data_mod

tf.get_logger().setLevel("ERROR")  # as in training: tf.data notices about the resampling op drown the output

EDGE_VARIANTS = {  # the float / int8 / TFLM variants of esc_tf.stages.deploy, with their display names
    "keras_float": "Keras float",
    "tflite_float": "float .tflite (LiteRT)",
    "pruned_float": "pruned Keras float",
    "int8_unpruned_litert": "int8, not pruned (LiteRT)",
    "int8_litert": "int8 (LiteRT)",
    "int8_tflm": "int8 (TFLM)",
}

SILENT_PEAK = 1 / 32768  # below one 16-bit step: digital silence
NEAR_SILENT_DBFS = -60.0  # RMS level below which a clip is reported as near-silent
CLIP_LEVEL = 0.999  # |x| at or above this counts as a clipped sample
CLIPPED_FRACTION = 0.001  # a clip with more clipped samples than this is reported


def _figure(figsize: tuple[float, float], ax: Axes | None = None) -> tuple[Figure, Axes]:
    """A new figure with one axes, or the figure of ``ax`` when one is given."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


# --------------------------------------------------------------------------- dataset

def durations(meta: pd.DataFrame) -> pd.Series:
    """Duration of every clip in seconds, from the audio headers."""
    return (meta["frames"] / meta["sample_rate"]).rename("seconds")


def dataset_summary(meta: pd.DataFrame) -> pd.DataFrame:
    """One-column table: clips, classes, folds, clips per class, sample rates, channels, durations."""
    per_class = meta["category"].value_counts()
    secs = durations(meta)
    rows = {
        "clips": len(meta),
        "classes": meta["category"].nunique(),
        "folds": ", ".join(map(str, sorted(meta["fold"].unique()))),
        "clips per class (min-max)": f"{per_class.min()}-{per_class.max()}",
        "sample rates (Hz: clips)": ", ".join(f"{r}: {n}" for r, n in meta["sample_rate"].value_counts().items()),
        "channels (channels: clips)": ", ".join(f"{c}: {n}" for c, n in meta["channels"].value_counts().items()),
        "duration min / median / max (s)": f"{secs.min():.2f} / {secs.median():.2f} / {secs.max():.2f}",
        "total duration (h)": f"{secs.sum() / 3600:.2f}",
    }
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=pd.Index(list(rows), name="property"))


def class_fold_table(meta: pd.DataFrame) -> pd.DataFrame:
    """Clips per class (rows, in target order) and fold (columns), with totals."""
    table = pd.crosstab(meta["category"], meta["fold"], margins=True, margins_name="total")
    order = data_mod.class_names(meta) + ["total"]
    return table.loc[order].rename_axis(index="class", columns="fold")


def plot_class_balance(meta: pd.DataFrame) -> Figure:
    """Clips per class, each bar split by fold."""
    table = class_fold_table(meta).drop(index="total", columns="total")
    fig, ax = _figure((8, 1.5 + 0.22 * len(table)))
    left = np.zeros(len(table))
    y = np.arange(len(table))
    for fold in table.columns:
        ax.barh(y, table[fold], left=left, label=f"fold {fold}")
        left += table[fold].to_numpy()
    ax.set_yticks(y, table.index, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("clips")
    ax.set_title("clips per class")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def plot_fold_balance(meta: pd.DataFrame) -> Figure:
    """Clips per fold, and how many classes each fold contains."""
    counts = meta.groupby("fold").agg(clips=("filename", "size"), classes=("category", "nunique"))
    fig, ax = _figure((6, 3))
    bars = ax.bar(counts.index.astype(str), counts["clips"], color="#8fb3d9")
    for bar, n in zip(bars, counts["classes"]):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{n} classes", ha="center",
                va="bottom", fontsize=8)
    ax.set_xlabel("fold")
    ax.set_ylabel("clips")
    ax.set_title("clips per fold")
    ax.margins(y=0.15)
    return fig


def plot_durations(meta: pd.DataFrame) -> Figure:
    """Histogram of clip durations, with the sample rates and channel counts in the title."""
    fig, ax = _figure((6, 3))
    ax.hist(durations(meta), bins=30, color="#8fb3d9")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("clips")
    rates = ", ".join(f"{r} Hz" for r in sorted(meta["sample_rate"].unique()))
    chans = ", ".join(str(c) for c in sorted(meta["channels"].unique()))
    ax.set_title(f"durations ({rates}; channels: {chans})", fontsize=9)
    return fig


# --------------------------------------------------------------------------- quality

def clip_levels(path: str | Path, clip_level: float = CLIP_LEVEL) -> dict[str, float]:
    """Peak, RMS level (dBFS) and fraction of clipped samples of one file, over all channels."""
    x, _ = sf.read(str(path), dtype="float32", always_2d=True)
    a = np.abs(x)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return {"peak": float(a.max()) if x.size else 0.0,
            "rms_dbfs": 20 * np.log10(rms) if rms > 0 else -np.inf,
            "clipped_fraction": float(np.mean(a >= clip_level)) if x.size else 0.0}


def clip_quality(meta: pd.DataFrame, near_silent_dbfs: float = NEAR_SILENT_DBFS, clip_level: float = CLIP_LEVEL,
                 clipped_fraction: float = CLIPPED_FRACTION) -> pd.DataFrame:
    """Per clip: peak, RMS dBFS, clipped fraction and the flags ``silent``, ``near_silent``, ``clipped``.

    silent: peak below one 16-bit step; near_silent: not silent but RMS below ``near_silent_dbfs``;
    clipped: more than ``clipped_fraction`` of the samples at ``|x| >= clip_level``.
    """
    levels = pd.DataFrame([clip_levels(p, clip_level) for p in meta["path"]], index=meta.index)
    table = pd.concat([meta[["filename", "category", "fold"]], levels], axis=1)
    table["silent"] = table["peak"] < SILENT_PEAK
    table["near_silent"] = ~table["silent"] & (table["rms_dbfs"] < near_silent_dbfs)
    table["clipped"] = table["clipped_fraction"] > clipped_fraction
    return table


QUALITY_FLAGS = {"silent": "silent", "near_silent": "near-silent", "clipped": "clipped"}


def quality_offenders(quality: pd.DataFrame) -> pd.DataFrame:
    """The clips with at least one flag, with an ``issues`` column, worst level first."""
    flags = quality[list(QUALITY_FLAGS)]
    issues = flags.apply(lambda row: ", ".join(name for key, name in QUALITY_FLAGS.items() if row[key]), axis=1)
    bad = quality.assign(issues=issues)[flags.any(axis=1)]
    columns = ["filename", "category", "fold", "issues", "peak", "rms_dbfs", "clipped_fraction"]
    return bad[columns].sort_values(["rms_dbfs", "clipped_fraction"], ascending=[True, False]) \
        .reset_index(drop=True)


def quality_counts(quality: pd.DataFrame) -> pd.DataFrame:
    """How many clips carry each flag."""
    counts = {name: int(quality[key].sum()) for key, name in QUALITY_FLAGS.items()}
    counts["any"] = int(quality[list(QUALITY_FLAGS)].any(axis=1).sum())
    return pd.DataFrame({"clips": counts}).rename_axis("issue")


def plot_levels(quality: pd.DataFrame, near_silent_dbfs: float = NEAR_SILENT_DBFS) -> Figure:
    """Histogram of clip RMS levels with the near-silence threshold (silent clips counted apart)."""
    fig, ax = _figure((6, 3))
    finite = quality["rms_dbfs"][np.isfinite(quality["rms_dbfs"])]
    ax.hist(finite, bins=40, color="#8fb3d9")
    ax.axvline(near_silent_dbfs, color="crimson", ls="--", label=f"near-silent below {near_silent_dbfs:g} dBFS")
    ax.set_xlabel("RMS level (dBFS)")
    ax.set_ylabel("clips")
    ax.set_title(f"clip levels ({int(quality['silent'].sum())} silent clips not shown)", fontsize=9)
    ax.legend(fontsize=7)
    return fig


# --------------------------------------------------------------------------- one clip

def find_clip(meta: pd.DataFrame, clip: str | int | None) -> pd.Series:
    """A metadata row by filename, by row number, or the first clip for ``None``."""
    if clip is None:
        return meta.iloc[0]
    if isinstance(clip, (int, np.integer)):
        return meta.iloc[int(clip)]
    hits = meta[meta["filename"] == clip]
    if hits.empty:
        raise KeyError(f"clip {clip!r} is not in the metadata (e.g. {', '.join(meta['filename'].head(3))})")
    return hits.iloc[0]


def model_input_waveforms(meta: pd.DataFrame, config: Config) -> np.ndarray:
    """``[clips, samples]``: the clips of ``meta`` as the model sees them, through the training
    decoder (:func:`esc_tf.data.load_waveforms`: mono, resampled, cut or zero-padded)."""
    return data_mod.load_waveforms(meta, config.audio, cache_dir=None, progress=False)


def model_input_waveform(path: str | Path, config: Config) -> np.ndarray:
    """One audio file (any format or rate) as the model sees it."""
    return model_input_waveforms(data_mod.probe_file(path), config)[0]


def plot_waveform(wave: np.ndarray, sample_rate: int, ax: Axes | None = None) -> Figure:
    """Amplitude against time."""
    fig, ax = _figure((9, 2), ax)
    ax.plot(np.arange(len(wave)) / sample_rate, wave, lw=0.4)
    ax.set_xlim(0, len(wave) / sample_rate)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_title("waveform", fontsize=9)
    return fig


def _image(ax: Axes, values: np.ndarray, seconds: float, y_extent: tuple[float, float], label: str,
           title: str, cmap: str = "magma", vmin: float | None = None, vmax: float | None = None,
           cax: Axes | None = None) -> None:
    """``values`` is ``[rows, frames]``, row 0 at the bottom; the colour bar goes into ``cax`` if given."""
    im = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest",
                   extent=(0, seconds, *y_extent), vmin=vmin, vmax=vmax)
    if cax is None:
        ax.figure.colorbar(im, ax=ax, pad=0.01, label=label)
    else:
        ax.figure.colorbar(im, cax=cax, label=label)
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=9)


def plot_spectrogram(wave: np.ndarray, config: Config, ax: Axes | None = None, cax: Axes | None = None) -> Figure:
    """Log-magnitude STFT (dB) of the training front end's frames."""
    fig, ax = _figure((9, 2.5), ax)
    mag = feat.magnitude_spectrogram(tf.constant(wave, tf.float32), config.features).numpy()
    db = 20 * np.log10(mag.T + 1e-6)
    _image(ax, db, len(wave) / config.audio.sample_rate, (0, config.audio.sample_rate / 2), "dB",
           f"magnitude spectrogram ({config.features.fft_length}-point FFT, hop {config.features.hop_length})",
           vmin=float(db.max()) - 100, cax=cax)  # 100 dB of range: zero padding would stretch the scale
    ax.set_ylabel("Hz")
    return fig


def plot_log_mel(wave: np.ndarray, config: Config, ax: Axes | None = None, cax: Axes | None = None) -> Figure:
    """Natural-log mel spectrogram exactly as the front end computes it."""
    fig, ax = _figure((9, 2.5), ax)
    f = config.features
    log_mel = feat.log_mel_spectrogram(tf.constant(wave, tf.float32), f, config.audio.sample_rate).numpy()
    _image(ax, log_mel.T, len(wave) / config.audio.sample_rate, (0, f.num_mel_bins), "ln",
           f"log-mel ({f.num_mel_bins} bins, {f.fmin:g}-{f.fmax:g} Hz)", cax=cax)
    ax.set_ylabel("mel bin")
    return fig


def plot_mfcc(wave: np.ndarray, config: Config, normalization: artifacts.Normalization | None = None,
              ax: Axes | None = None, cax: Axes | None = None) -> Figure:
    """MFCCs from :func:`esc_tf.audio.features.compute_features`, whatever ``features.kind`` the model uses
    (normalised when ``normalization``, statistics of an MFCC model, is given)."""
    if normalization is not None and config.features.kind != "mfcc":
        raise ValueError("plot_mfcc: the normalization given belongs to a log-mel model; MFCCs cannot use it")
    fig, ax = _figure((9, 2.5), ax)
    f = replace(config.features, kind="mfcc")
    mfcc = feat.compute_features(tf.constant(wave, tf.float32), f, config.audio.sample_rate)
    if normalization is not None:
        mfcc = normalization.apply(mfcc)
    values = mfcc.numpy()
    # Symmetric colour scale set by coefficients 1.. : c0 (the log energy) would flatten the others.
    limit = float(np.percentile(np.abs(values[1:] if len(values) > 1 else values), 99)) or 1.0
    _image(ax, values, len(wave) / config.audio.sample_rate, (0, f.num_mfcc),
           "normalised" if normalization is not None else "value",
           f"MFCC ({f.num_mfcc} coefficients{', normalised' if normalization is not None else ''}; "
           "colour scale from c1 up, c0 saturates)", cmap="coolwarm", vmin=-limit, vmax=limit, cax=cax)
    ax.set_ylabel("coefficient")
    return fig


def plot_clip(wave: np.ndarray, config: Config, title: str = "",
              normalization: artifacts.Normalization | None = None) -> Figure:
    """Waveform, spectrogram, log-mel and MFCC of one clip, stacked on one time axis."""
    fig = Figure(figsize=(9, 9))  # a fixed grid: a layout engine costs more than the plots (explore makes many)
    grid = fig.add_gridspec(4, 2, width_ratios=[60, 1], left=0.09, right=0.9, bottom=0.06, top=0.93,
                            hspace=0.3, wspace=0.03)
    axes = [fig.add_subplot(grid[0, 0])]
    axes += [fig.add_subplot(grid[i, 0], sharex=axes[0]) for i in (1, 2, 3)]
    bars = [fig.add_subplot(grid[i, 1]) for i in (1, 2, 3)]
    plot_waveform(wave, config.audio.sample_rate, axes[0])
    plot_spectrogram(wave, config, axes[1], bars[0])
    plot_log_mel(wave, config, axes[2], bars[1])
    plot_mfcc(wave, config, normalization, axes[3], bars[2])
    for ax in axes[:-1]:
        ax.set_xlabel("")
        ax.tick_params(labelbottom=False)
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- run results

def latest_run(runs_root: str | Path = "runs") -> Path | None:
    """The most recently written run folder under ``runs_root`` that has a ``report.json``."""
    reports = sorted(Path(runs_root).glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    return reports[-1].parent if reports else None


def load_report(run: str | Path | dict[str, Any]) -> dict[str, Any]:
    """``report.json`` of a run folder (a dict is passed through)."""
    return run if isinstance(run, dict) else read_report(run)


def cv_table(report: dict[str, Any]) -> pd.DataFrame:
    """Per-fold test accuracy, clips, epochs and wall time, then mean, std and pooled accuracy."""
    folds = pd.DataFrame(report["folds"]).set_index("name")[["test_clips", "accuracy", "epochs", "wall_seconds"]]
    summary = pd.DataFrame({"accuracy": [report["mean_accuracy"], report["std_accuracy"],
                                         report["pooled_accuracy"]],
                            "test_clips": [np.nan, np.nan, report["test_clips"]]},
                           index=["mean", "std (sample)", "pooled"])
    table = pd.concat([folds, summary]).astype({"test_clips": "Int64", "epochs": "Int64"})
    return table.rename_axis("fold")


def per_class_table(report: dict[str, Any]) -> pd.DataFrame:
    """Precision, recall, F1 and support of every class (pooled test folds), worst F1 first."""
    table = pd.DataFrame(report["per_class"]).T.rename(columns={"f1-score": "f1"})
    table["support"] = table["support"].astype(int)
    return table.sort_values("f1").rename_axis("class")


def plot_confusion(report: dict[str, Any], normalize: bool = False) -> Figure:
    """Pooled test confusion matrix (rows: true class); ``normalize`` divides each row by its total."""
    names = report["class_names"]
    cm = np.array(report["confusion_matrix"], dtype=float)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.3 * len(names))
    fig, ax = _figure((size + 1, size))
    im = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, label="fraction of the true class" if normalize else "clips")
    if len(names) <= 20:
        for (i, j), v in np.ndenumerate(cm):
            if v:
                ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=7,
                        color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"pooled test folds, accuracy {report['pooled_accuracy']:.3f}")
    return fig


def plot_per_class_f1(report: dict[str, Any]) -> Figure:
    """F1 of every class on the pooled test folds, sorted."""
    table = per_class_table(report)
    fig, ax = _figure((7, 1.5 + 0.22 * len(table)))
    ax.barh(range(len(table)), table["f1"], color="#8fb3d9")
    ax.set_yticks(range(len(table)), table.index, fontsize=8)
    ax.axvline(report["pooled_accuracy"], color="k", ls="--", lw=1, label="pooled accuracy")
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (pooled test folds)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_training_curves(report: dict[str, Any]) -> Figure:
    """Training (solid) and validation (dashed) loss and accuracy of every fold."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for name, history in report.get("histories", {}).items():
        for ax, key in zip(axes, ("loss", "accuracy")):
            line, = ax.plot(history.get(key, []), label=f"{name} train")
            if f"val_{key}" in history:  # none when every training clip was fitted (data.val_fraction 0)
                ax.plot(history[f"val_{key}"], "--", color=line.get_color(), label=f"{name} val")
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    return fig


def edge_table(report: dict[str, Any]) -> pd.DataFrame | None:
    """Test accuracy of every float / int8 / TFLM variant per fold, mean, std and pooled (None: no edge stage)."""
    edge = report.get("edge")
    if not edge:
        return None
    rows = {EDGE_VARIANTS.get(k, k): {**dict(zip(edge["folds"], v["per_fold"])), "mean": v["mean"],
                                      "std": v["std"], "pooled": v["pooled"]}
            for k, v in edge["variants"].items()}
    return pd.DataFrame(rows).T.rename_axis("variant")


def agreement_table(report: dict[str, Any]) -> pd.DataFrame | None:
    """Top-1 agreement between variants on the pooled test clips (None: no edge stage)."""
    edge = report.get("edge")
    if not edge:
        return None
    return pd.DataFrame({"agreement": edge["agreement_pooled"]}).rename_axis("pair")


def plot_edge(report: dict[str, Any]) -> Figure | None:
    """Pooled test accuracy of every variant (bars) with each fold's accuracy (dots)."""
    table = edge_table(report)
    if table is None:
        return None
    folds = report["edge"]["folds"]
    fig, ax = _figure((9, 4))
    x = np.arange(len(table))
    ax.bar(x, table["pooled"], color="#8fb3d9")
    for i, (label, row) in enumerate(table.iterrows()):
        ax.plot([i] * len(folds), row[folds].to_numpy(float), "k.", alpha=0.6)
        ax.text(i, row["pooled"] + 0.01, f"{row['pooled']:.3f}", ha="center", fontsize=8)
    ax.set_xticks(x, table.index, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (bars: pooled, dots: folds)")
    ax.set_ylim(0, 1.05)
    ax.set_title("float vs int8 (each fold's model on its own test fold)", fontsize=9)
    return fig


FOOTPRINT_ROWS = {  # label: (key in edge sizes, key in deploy/export.json)
    "parameters": ("params", "params"),
    "MACs per inference": ("macs", "macs"),
    "float .tflite (bytes)": ("float_tflite_bytes", "float_tflite_bytes"),
    "int8 .tflite (bytes)": ("int8_bytes", "int8_tflite_bytes"),
    "int8 .tflite gzip (bytes)": ("int8_gzip_bytes", "int8_tflite_gzip_bytes"),
    "int8 .tflite, not pruned (bytes)": ("int8_unpruned_bytes", None),
    "TFLM arena, measured (bytes)": ("tflm_arena_bytes", "arena_measured_bytes"),
    "TFLM arena, configured (bytes)": (None, "arena_size_bytes"),
}


def footprint_table(report: dict[str, Any]) -> pd.DataFrame | None:
    """Sizes of the CV models (mean over folds) and of the deployment model (None: neither exported)."""
    sizes = (report.get("edge") or {}).get("sizes_mean_over_folds")
    deploy = report.get("deploy")
    if not sizes and not deploy:
        return None
    columns = {}
    if sizes:
        columns["CV folds (mean)"] = {label: sizes.get(k) for label, (k, _) in FOOTPRINT_ROWS.items() if k}
    if deploy:
        columns["deployment model"] = {label: deploy.get(k) for label, (_, k) in FOOTPRINT_ROWS.items() if k}
    table = pd.DataFrame(columns).reindex(list(FOOTPRINT_ROWS)).dropna(how="all")
    return table.astype("Int64").rename_axis("footprint")

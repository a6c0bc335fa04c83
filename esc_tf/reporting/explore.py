"""A static HTML report of a dataset, browsable offline from the file system (no server).

``esc-tf explore --data-dir DIR --out OUT_DIR [--clips-per-class 3] [--subset esc10]
[--config RUN/config.yaml] [--copy-audio] [--force]``

``OUT_DIR/index.html`` shows the dataset summary, class and fold balance, durations, the clip
level checks (silent, near-silent, clipped: see :func:`esc_tf.reporting.plots.clip_quality`) with the
offending clips, and per class a few clips (spread over folds) each with an ``<audio>``
player and a PNG of its waveform, spectrogram, log-mel and MFCC computed by the training
front end (settings from ``--config``, else the defaults).

Audio and licence: ESC-50 is CC BY-NC 3.0 (clips from freesound.org; attribution per clip
in ``meta/esc50.csv``). By default the players link to the dataset's own files with paths
relative to ``index.html``, so nothing is copied and the report must stay where it was
written relative to the dataset. ``--copy-audio`` copies only the selected clips into
``OUT_DIR/audio/`` for a self-contained folder: keep such a folder out of the repository.

Output is written to a temporary folder beside ``OUT_DIR`` and renamed into place at the
end, so an error leaves no partial report. An existing ``OUT_DIR`` is replaced only with
``--force``.
"""
from __future__ import annotations

import html
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from esc_tf.config import Config
from esc_tf.data import dataset as data_mod
from esc_tf.reporting import plots as viz

MAX_OFFENDER_ROWS = 200
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.plots img { max-width: 100%; margin: .3em 0; }
.clips { display: flex; flex-wrap: wrap; gap: 1em; }
.clip { border: 1px solid #ddd; border-radius: 4px; padding: .5em; width: 500px; }
.clip img { width: 100%; } .clip audio { width: 100%; }
.toc a { margin-right: .8em; white-space: nowrap; } .note { color: #555; font-size: .85em; }
"""


def select_clips(meta: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """``per_class`` clips of every class (target order), taken from different folds in turn."""
    ordered = meta.sort_values(["fold", "filename"])
    rank = ordered.groupby(["category", "fold"]).cumcount()
    ordered = ordered.assign(_rank=rank).sort_values(["target", "_rank", "fold", "filename"])
    return ordered.groupby("category", sort=False).head(per_class).drop(columns="_rank")


def _url(relative: str | Path) -> str:
    return quote(Path(relative).as_posix())


def _save(fig: Figure, path: Path, dpi: int = 80) -> None:
    fig.savefig(path, dpi=dpi)


def _audio_source(row: pd.Series, out_dir: Path, staging: Path, copy_audio: bool) -> str:
    """URL of the clip for the ``<audio>`` player: a copy inside the report, or a relative link."""
    source = Path(row["path"]).resolve()
    if copy_audio:
        (staging / "audio").mkdir(exist_ok=True)
        shutil.copy2(source, staging / "audio" / source.name)
        return _url(Path("audio") / source.name)
    return _url(os.path.relpath(source, out_dir.resolve()))


def _table(df: pd.DataFrame, float_format: str = "{:.3f}") -> str:
    return df.to_html(float_format=float_format.format, na_rep="", border=0)


def _dataset_section(meta: pd.DataFrame, quality: pd.DataFrame, staging: Path) -> list[str]:
    (staging / "img").mkdir(exist_ok=True)
    plots = {"class_balance.png": viz.plot_class_balance(meta), "fold_balance.png": viz.plot_fold_balance(meta),
             "durations.png": viz.plot_durations(meta), "levels.png": viz.plot_levels(quality)}
    for name, fig in plots.items():
        _save(fig, staging / "img" / name)
    offenders = viz.quality_offenders(quality)
    shown = offenders.head(MAX_OFFENDER_ROWS)
    parts = ["<h2 id='dataset'>Dataset</h2>", _table(viz.dataset_summary(meta)), "<div class='plots'>"]
    parts += [f"<img src='img/{name}' alt='{name[:-4].replace('_', ' ')}'>" for name in plots]
    parts += ["</div>", "<h2 id='quality'>Clip levels</h2>",
              f"<p class='note'>silent: peak below one 16-bit step; near-silent: RMS below "
              f"{viz.NEAR_SILENT_DBFS:g} dBFS; clipped: more than {100 * viz.CLIPPED_FRACTION:g} % of the samples "
              f"at |x| &ge; {viz.CLIP_LEVEL}. Levels of the files' own samples, all channels.</p>",
              _table(viz.quality_counts(quality))]
    if offenders.empty:
        parts.append("<p>No clip is silent, near-silent or clipped.</p>")
    else:
        more = f" (first {len(shown)} of {len(offenders)})" if len(shown) < len(offenders) else ""
        parts += [f"<h3>Offending clips{more}</h3>", _table(shown, "{:.4g}")]
    return parts


def _clip_card(row: pd.Series, wave: np.ndarray, config: Config, out_dir: Path, staging: Path,
               copy_audio: bool) -> str:
    name = Path(row["filename"]).stem
    fig = viz.plot_clip(wave, config, title=f"{row['category']}: {row['filename']}")
    _save(fig, staging / "clips" / f"{name}.png", dpi=60)
    seconds = row["frames"] / row["sample_rate"]
    return (f"<div class='clip'><b>{html.escape(row['filename'])}</b><br>"
            f"<span class='note'>fold {row['fold']}, {row['sample_rate']} Hz, {row['channels']} ch, "
            f"{seconds:.2f} s</span><br>"
            f"<audio controls preload='none' src='{_audio_source(row, out_dir, staging, copy_audio)}'></audio>"
            f"<img src='clips/{_url(name + '.png')}' alt='spectrogram and MFCC of {html.escape(row['filename'])}'>"
            "</div>")


def _class_id(category: str) -> str:
    return "class-" + quote(category.replace(" ", "_"), safe="")


def _clips_section(meta: pd.DataFrame, per_class: int, config: Config, out_dir: Path, staging: Path,
                   copy_audio: bool, progress: bool) -> list[str]:
    (staging / "clips").mkdir(exist_ok=True)
    chosen = select_clips(meta, per_class)
    waves = dict(zip(chosen.index, viz.model_input_waveforms(chosen, config)))
    f = config.features
    parts = ["<h2 id='classes'>Clips per class</h2>",
             f"<p class='note'>Decoded as in training ({config.audio.sample_rate} Hz mono, cut or padded to "
             f"{config.audio.clip_seconds:g} s); front end: {f.fft_length}-point FFT, hop {f.hop_length}, "
             f"{f.num_mel_bins} mel bins {f.fmin:g}-{f.fmax:g} Hz, {f.num_mfcc} MFCCs. The players play the "
             "original files.</p>",
             "<p class='toc'>" + " ".join(f"<a href='#{_class_id(c)}'>{html.escape(c)}</a>"
                                          for c in data_mod.class_names(meta)) + "</p>"]
    bar = tqdm(total=len(chosen), desc="clip plots", unit="clip", disable=not progress)
    for category, rows in chosen.groupby("category", sort=False):
        parts += [f"<h3 id='{_class_id(category)}'>{html.escape(category)}</h3>", "<div class='clips'>"]
        for index, row in rows.iterrows():
            parts.append(_clip_card(row, waves[index], config, out_dir, staging, copy_audio))
            bar.update()
        parts.append("</div>")
    bar.close()
    return parts


def write_report(data_dir: str | Path, out_dir: str | Path, clips_per_class: int = 3, config: Config | None = None,
                 subset: str = "all", copy_audio: bool = False, force: bool = False,
                 progress: bool = True) -> Path:
    """Write ``out_dir/index.html`` and its images atomically; returns the path of ``index.html``."""
    config = config or Config()
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise FileExistsError(f"{out_dir}: already exists (use --force to replace it)")
    meta = data_mod.select_subset(data_mod.read_metadata(data_dir), subset)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        quality = viz.clip_quality(meta)
        body = [f"<h1>Dataset report: {html.escape(str(Path(data_dir).resolve().name))}</h1>",
                f"<p class='note'>{html.escape(str(Path(data_dir).resolve()))}, subset {html.escape(subset)}. "
                "<a href='#dataset'>dataset</a> &middot; <a href='#quality'>clip levels</a> &middot; "
                "<a href='#classes'>clips per class</a></p>"]
        body += _dataset_section(meta, quality, staging)
        body += _clips_section(meta, clips_per_class, config, out_dir, staging, copy_audio, progress)
        body.append("<p class='note'>ESC-50 audio: K. J. Piczak, CC BY-NC 3.0; clips from freesound.org "
                    "(attribution per clip in meta/esc50.csv). "
                    + ("Selected clips copied into audio/." if copy_audio else
                       "Audio is linked from the dataset folder, not copied.") + "</p>")
        page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                f"<title>ESC dataset report</title><style>{STYLE}</style></head><body>\n"
                + "\n".join(body) + "\n</body></html>\n")
        (staging / "index.html").write_text(page, encoding="utf-8")
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / "index.html"


def _replace_dir(staging: Path, out_dir: Path) -> None:
    """Move ``staging`` to ``out_dir``, replacing an existing folder only once the new one is complete."""
    os.chmod(staging, 0o755)  # mkdtemp makes it private
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
    old.rmdir()
    out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)

"""esc_tf.reporting.plots: dataset statistics, clip level checks, clip plots and run-result tables."""
from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from matplotlib.figure import Figure

from esc_tf.artifacts import FoldResult
from esc_tf.audio import features
from esc_tf.config import Config, with_value
from esc_tf.data import dataset as data
from esc_tf.reporting import plots as viz
from esc_tf.reporting import run_report as report
from tests.conftest import make_dataset

SILENT, NEAR_SILENT, CLIPPED = "1-100000-A-0.wav", "1-100001-A-10.wav", "2-100005-A-41.wav"


@pytest.fixture(scope="module")
def flawed_meta(tmp_path_factory) -> pd.DataFrame:
    """Six 1 s clips (one per class and fold, folds 1-2) with a silent, a near-silent and a clipped one."""
    root = make_dataset(tmp_path_factory.mktemp("flawed"), clips_per_class_per_fold=1, folds=(1, 2))
    rate = 22050
    t = np.arange(rate) / rate
    sf.write(root / "audio" / SILENT, np.zeros(rate), rate, subtype="PCM_16")
    sf.write(root / "audio" / NEAR_SILENT, 2e-4 * np.sin(2 * np.pi * 1500 * t), rate, subtype="PCM_16")
    sf.write(root / "audio" / CLIPPED, np.clip(3 * np.sin(2 * np.pi * 4000 * t), -1, 1), rate, subtype="PCM_16")
    return data.read_metadata(root)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def test_dataset_statistics(flawed_meta):
    summary = viz.dataset_summary(flawed_meta)["value"]
    assert summary["clips"] == "6" and summary["classes"] == "3" and summary["folds"] == "1, 2"
    assert summary["sample rates (Hz: clips)"] == "22050: 6"
    assert summary["duration min / median / max (s)"] == "1.00 / 1.00 / 1.00"
    table = viz.class_fold_table(flawed_meta)
    assert list(table.index) == ["dog", "rain", "chainsaw", "total"]  # target order
    assert table.loc["total", "total"] == 6 and (table.loc["dog", [1, 2]] == 1).all()
    assert np.allclose(viz.durations(flawed_meta), 1.0)
    for plot in (viz.plot_class_balance, viz.plot_fold_balance, viz.plot_durations):
        assert _png(plot(flawed_meta))[:4] == b"\x89PNG"


def test_quality_flags_the_injected_clips(flawed_meta):
    quality = viz.clip_quality(flawed_meta).set_index("filename")
    assert quality.loc[SILENT, "silent"] and quality.loc[SILENT, "rms_dbfs"] == -np.inf
    assert quality.loc[NEAR_SILENT, "near_silent"] and not quality.loc[NEAR_SILENT, "silent"]
    assert quality.loc[NEAR_SILENT, "rms_dbfs"] == pytest.approx(20 * np.log10(2e-4 / np.sqrt(2)), abs=0.5)
    assert quality.loc[CLIPPED, "clipped"] and quality.loc[CLIPPED, "clipped_fraction"] > 0.5
    flagged = quality[["silent", "near_silent", "clipped"]].any(axis=1)
    assert set(quality.index[flagged]) == {SILENT, NEAR_SILENT, CLIPPED}

    offenders = viz.quality_offenders(quality.reset_index())
    assert dict(zip(offenders["filename"], offenders["issues"])) == {
        SILENT: "silent", NEAR_SILENT: "near-silent", CLIPPED: "clipped"}
    assert offenders["filename"].iloc[0] == SILENT  # quietest first
    counts = viz.quality_counts(quality)["clips"]
    assert counts.to_dict() == {"silent": 1, "near-silent": 1, "clipped": 1, "any": 3}
    assert _png(viz.plot_levels(quality))[:4] == b"\x89PNG"


def test_quality_thresholds_are_parameters(flawed_meta):
    strict = viz.clip_quality(flawed_meta, near_silent_dbfs=-5.0, clipped_fraction=0.9)
    quiet = set(strict["filename"][strict["near_silent"]])
    assert quiet == set(flawed_meta["filename"]) - {SILENT, CLIPPED}  # the clipped clip is near 0 dBFS
    assert not strict["clipped"].any()


def test_clip_plots_use_the_training_front_end(flawed_meta):
    config = with_value(Config(), "audio.clip_seconds", 1.0)
    row = viz.find_clip(flawed_meta, "1-100002-A-41.wav")
    wave = viz.model_input_waveform(row["path"], config)
    expected = data.load_waveforms(flawed_meta[flawed_meta["filename"] == row["filename"]], config.audio,
                                   progress=False)[0]
    np.testing.assert_array_equal(wave, expected)
    assert wave.shape == (config.audio.clip_samples,)

    fig = viz.plot_mfcc(wave, config)
    shown = fig.axes[0].images[0].get_array()
    mfcc = dataclasses.replace(config.features, kind="mfcc")  # the MFCC panel, whatever the model reads
    np.testing.assert_allclose(shown, features.compute_features(wave, mfcc, 16000).numpy(), rtol=1e-6)
    log_mel = viz.plot_log_mel(wave, config).axes[0].images[0].get_array()
    np.testing.assert_allclose(log_mel, features.log_mel_spectrogram(wave, config.features, 16000).numpy().T,
                               rtol=1e-6)
    clip = viz.plot_clip(wave, config, title="chainsaw")
    assert len(clip.axes) == 7  # waveform + 3 images with their colour bars
    assert _png(clip)[:4] == b"\x89PNG"
    with pytest.raises(KeyError, match="not in the metadata"):
        viz.find_clip(flawed_meta, "nope.wav")
    assert viz.find_clip(flawed_meta, None)["filename"] == flawed_meta["filename"].iloc[0]


def _fake_report(with_edge: bool) -> dict:
    """A report.json payload made by esc_tf.reporting.run_report itself from two invented folds."""
    names = ["dog", "rain", "chainsaw"]
    y_true = [0, 1, 2, 0, 1, 2]
    folds = [FoldResult("fold1", 2 / 3, y_true, [0, 1, 1, 0, 1, 2], [], 3, 10.0,
                        {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.5], "accuracy": [0.3, 0.6, 0.8],
                         "val_accuracy": [0.3, 0.5, 0.7]}),
             FoldResult("fold2", 1.0, y_true, y_true, [], 2, 8.0, {"loss": [0.9, 0.3], "accuracy": [0.4, 0.9]})]
    summary = report.summarize(folds, names)
    summary["histories"] = {r.name: r.history for r in folds}
    if with_edge:
        sizes = dict.fromkeys(report.EDGE_SIZES, 1000)
        edge = [{"name": r.name, "test_clips": 6, "y_true": y_true, "kernel_sparsity": 0.5, "calibration_clips": 12,
                 "sizes": sizes, "agreement": {"keras_float_vs_int8_tflm": 0.9},
                 "variants": {k: {"accuracy": r.accuracy, "y_pred": r.y_pred} for k in viz.EDGE_VARIANTS}}
                for r in folds]
        summary["edge"] = report.summarize_edge(edge)
        summary["deploy"] = {"params": 10, "macs": 20, "float_tflite_bytes": 30, "int8_tflite_bytes": 40,
                             "int8_tflite_gzip_bytes": 35, "arena_measured_bytes": 50, "arena_size_bytes": 64}
    return summary


def test_run_tables_and_figures():
    rep = _fake_report(with_edge=True)
    cv = viz.cv_table(rep)
    assert list(cv.index) == ["fold1", "fold2", "mean", "std (sample)", "pooled"]
    assert cv.loc["mean", "accuracy"] == pytest.approx(5 / 6) and cv.loc["pooled", "test_clips"] == 12
    per_class = viz.per_class_table(rep)
    assert per_class["f1"].is_monotonic_increasing and per_class["support"].tolist() == [4, 4, 4]
    edge = viz.edge_table(rep)
    assert edge.loc["int8 (TFLM)", "fold1"] == pytest.approx(2 / 3)
    assert edge.loc["int8 (TFLM)", "pooled"] == pytest.approx(rep["pooled_accuracy"])
    assert viz.agreement_table(rep).loc["keras_float_vs_int8_tflm", "agreement"] == pytest.approx(0.9)
    foot = viz.footprint_table(rep)
    assert foot.loc["int8 .tflite (bytes)"].tolist() == [1000, 40]
    assert pd.isna(foot.loc["TFLM arena, configured (bytes)", "CV folds (mean)"])
    for fig in (viz.plot_confusion(rep), viz.plot_confusion(rep, normalize=True), viz.plot_per_class_f1(rep),
                viz.plot_training_curves(rep), viz.plot_edge(rep)):
        assert _png(fig)[:4] == b"\x89PNG"
    confusion = viz.plot_confusion(rep, normalize=True).axes[0].images[0].get_array()
    np.testing.assert_allclose(confusion.sum(axis=1), 1.0)


def test_run_without_edge_stage(tmp_path):
    rep = _fake_report(with_edge=False)
    assert viz.edge_table(rep) is None and viz.plot_edge(rep) is None
    assert viz.agreement_table(rep) is None and viz.footprint_table(rep) is None
    with pytest.raises(FileNotFoundError, match="report.json"):
        viz.load_report(tmp_path)
    assert viz.latest_run(tmp_path) is None
    for name in ("old", "new"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text("{}")
    os.utime(tmp_path / "old" / "report.json", (1e9, 1e9))
    (tmp_path / "unfinished").mkdir()
    assert viz.latest_run(tmp_path) == Path(tmp_path / "new")

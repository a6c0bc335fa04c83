"""Models that read a window of a clip: random crops in training, clip scores averaged over windows
(each window also rotated in time, model.time_rolls, in the windowed run)."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from esc_tf import augment, edge, evaluate, pipeline, report, train
from esc_tf import data as data_mod
from esc_tf.config import Config, load_config
from esc_tf.evaluate import ModelMeta
from esc_tf.export import io_quantization
from esc_tf.features import (Normalization, check_window_config, feature_shape, inferences_per_clip,
                             model_input_shape, window_starts, window_stride)
from firmware_stub.tools import host_build, reference
from tests.conftest import small_config

REPO = Path(__file__).resolve().parents[1]


def windowed(config: Config, frames: int, windows: int = 3) -> Config:
    config.model.input_frames, config.model.clip_windows = frames, windows
    return config


def test_windows_are_a_stride_apart_and_span_the_clip():
    config = Config()
    assert feature_shape(config) == (64, 155)
    assert window_starts(config) == [0] and model_input_shape(config) == (64, 155)
    assert window_starts(windowed(Config(), 95, 3)) == [0, 30, 60]  # the last window ends on the last frame
    assert window_starts(windowed(Config(), 96, 3)) == [0, 29, 58]  # within clip_windows - 2 frames of it
    assert window_stride(windowed(Config(), 96, 3)) == 29
    assert window_starts(windowed(Config(), 96, 1)) == [0]
    assert window_starts(windowed(Config(), 155, 3)) == [0]  # a window the size of the clip is the clip
    assert model_input_shape(windowed(Config(), 96)) == (64, 96)


@pytest.mark.parametrize("frames, windows, message", [(156, 3, "input_frames"), (-1, 3, "input_frames"),
                                                      (96, 0, "clip_windows"), (96, 9, "clip_windows"),
                                                      (154, 3, "apart"), (150, 4, "apart")])
def test_impossible_windows_are_refused(frames, windows, message):
    with pytest.raises(ValueError, match=message):
        check_window_config(windowed(Config(), frames, windows))


def test_a_random_crop_is_a_contiguous_window_of_its_own_clip():
    feats = tf.constant(np.arange(4 * 3 * 20, dtype=np.float32).reshape(4, 3, 20))
    crops = augment.random_crop(feats, 7, tf.random.Generator.from_seed(1)).numpy()
    starts = set()
    for clip, crop in zip(feats.numpy(), crops):
        start = int(crop[0, 0] - clip[0, 0])
        np.testing.assert_array_equal(crop, clip[:, start:start + 7])
        starts.add(start)
    assert len(starts) > 1  # clips draw their own windows


def test_model_windows_and_the_validation_dataset_cut_the_same_windows():
    config = windowed(Config(), 96)
    waves = np.random.default_rng(0).standard_normal((2, config.audio.clip_samples)).astype(np.float32) * 0.1
    norm = Normalization.identity(64)
    feats = pipeline.feature_array(waves, config, norm)
    windows = pipeline.model_windows(feats, config)
    assert windows.shape == (6, 64, 96, 1)
    np.testing.assert_array_equal(windows[4], feats[1, :, 29:125])  # clip 1, second window
    pairs = list(pipeline.eval_dataset(waves, np.array([0, 1]), 2, config, norm).unbatch().as_numpy_iterator())
    np.testing.assert_allclose(np.stack([x for x, _ in pairs]), windows, rtol=1e-5, atol=1e-5)
    assert [int(y.argmax()) for _, y in pairs] == [0, 0, 0, 1, 1, 1]


def test_model_inputs_are_each_window_rotated_in_time():
    config = windowed(Config(), 96)
    config.model.time_rolls = 3
    feats = np.random.default_rng(2).standard_normal((2, 64, 155, 1)).astype(np.float32)
    inputs = pipeline.model_inputs(feats, config)
    assert inputs.shape == (2 * 3 * 3, 64, 96, 1)  # clips x windows x rotations
    window = feats[1, :, 29:125]  # clip 1, second window
    for roll in range(3):
        np.testing.assert_array_equal(inputs[(1 * 3 + 1) * 3 + roll], np.roll(window, roll, axis=1))
    np.testing.assert_array_equal(inputs[(1 * 3 + 1) * 3 + 2][:, :2], window[:, -2:])  # the end wraps to the front
    config.model.time_rolls = 1
    np.testing.assert_array_equal(pipeline.model_inputs(feats, config), pipeline.model_windows(feats, config))


def test_mel_shifts_move_the_bands_with_the_edge_band_repeated_and_multiply_the_views():
    feats = np.random.default_rng(3).standard_normal((2, 64, 155, 1)).astype(np.float32)
    up, down = pipeline.shift_mels(feats, 2), pipeline.shift_mels(feats, -1)
    np.testing.assert_array_equal(up[:, 2:], feats[:, :-2])  # a sound two bands higher
    np.testing.assert_array_equal(up[:, :2], feats[:, [0, 0]])
    np.testing.assert_array_equal(down[:, :-1], feats[:, 1:])
    np.testing.assert_array_equal(down[:, -1], feats[:, -1])
    config = windowed(Config(), 96)
    config.model.time_rolls, config.model.mel_shifts = 2, 1
    inputs = pipeline.model_inputs(feats, config)
    assert inputs.shape == (2 * 3 * 3 * 2, 64, 96, 1)  # clips x windows x mel shifts x rotations
    assert inferences_per_clip(config) == 18
    window = feats[1, :, 29:125]  # clip 1, second window
    for k, (shift, roll) in enumerate((s, r) for s in (-1, 0, 1) for r in range(2)):
        expected = np.roll(pipeline.shift_mels(window[None], shift)[0], roll, axis=1)
        np.testing.assert_array_equal(inputs[(1 * 3 + 1) * 6 + k], expected)


@pytest.mark.parametrize("change, message", [({"mel_shifts": 64}, "between 0 and 63"),
                                             ({"mel_shifts": -1}, "between 0 and 63"),
                                             ({"mel_shifts": 1, "kind": "mfcc"}, "must be 0")])
def test_impossible_mel_shifts_are_refused(change, message):
    config = Config()
    config.model.mel_shifts = change["mel_shifts"]
    config.features.kind = change.get("kind", config.features.kind)
    with pytest.raises(ValueError, match=message):
        check_window_config(config)


def test_clip_scores_average_the_softmax_over_the_rotations():
    config = Config()
    config.model.time_rolls = 4
    feats = np.zeros((1, 64, 155, 1), np.float32)
    feats[0, 0, 0] = 1.0  # one marked frame: rotation r moves it to frame r
    # Logits that depend on where the mark is: (0, 0) when it is in frame 0, else (0, log 3).
    predictor = lambda x: np.stack([np.zeros(len(x)), np.where(x[:, 0, 0, 0] == 1.0, 0.0, np.log(3.0))], axis=1)
    scores = evaluate.clip_scores(predictor, feats, config)
    np.testing.assert_allclose(scores, [[(0.5 + 3 * 0.25) / 4, (0.5 + 3 * 0.75) / 4]])


@pytest.mark.parametrize("rolls", [0, 97])
def test_impossible_rotations_are_refused(rolls):
    config = windowed(Config(), 96)
    config.model.time_rolls = rolls
    with pytest.raises(ValueError, match="time_rolls"):
        check_window_config(config)


def test_training_batches_are_windows():
    config = windowed(Config(), 40)
    config.train.batch_size = 4
    waves = np.random.default_rng(1).standard_normal((6, config.audio.clip_samples)).astype(np.float32) * 0.1
    ds = pipeline.train_dataset(waves, np.arange(6) % 3, 3, config, Normalization.identity(64), seed=3)
    assert [x.shape for x, _ in ds.as_numpy_iterator()] == [(4, 64, 40, 1), (2, 64, 40, 1)]


def test_clip_scores_average_the_softmax_of_each_clips_windows():
    config = windowed(Config(), 96)
    feats = np.zeros((2, 64, 155, 1), np.float32)
    feats[1] = 1.0
    logits = {0.0: [[0.0, 0.0], [0.0, np.log(3.0)], [0.0, 0.0]], 1.0: [[np.log(3.0), 0.0]] * 3}

    def predictor(windows: np.ndarray) -> np.ndarray:
        assert windows.shape == (6, 64, 96, 1)
        return np.concatenate([np.array(logits[float(w[0, 0, 0])], np.float32)[i % 3:i % 3 + 1]
                               for i, w in enumerate(windows)])

    scores = evaluate.clip_scores(predictor, feats, config)
    np.testing.assert_allclose(scores, [[(0.5 + 0.25 + 0.5) / 3, (0.5 + 0.75 + 0.5) / 3], [0.75, 0.25]])
    whole = Config()  # one window: the softmax of the model's own scores
    np.testing.assert_allclose(evaluate.clip_scores(lambda x: np.array([[0.0, np.log(3.0)]] * len(x)),
                                                    feats, whole), [[0.25, 0.75]] * 2)


@pytest.fixture(scope="module")
def windowed_run(tmp_path_factory, dataset_dir) -> Path:
    """A one-fold run of a model that reads half a clip of 13 log-mels, each window scored in 2 rotations
    at 3 mel shifts, with the edge stage and the export."""
    tmp = tmp_path_factory.mktemp("windowed")
    config = windowed(small_config(dataset_dir, tmp), 32)
    config.features.kind, config.features.num_mel_bins = "logmel", 13  # mel shifts need log-mels
    config.model.time_rolls = 2
    config.model.mel_shifts = 1
    config.data.folds = [1]
    config.train.epochs = 4
    config.export.publish_dir = str(tmp / "tflite")
    run_dir = train.run_cross_validation(config, tmp / "runs", progress=False)
    edge.run_edge_stages(run_dir, progress=False)
    return run_dir


def test_a_windowed_model_is_trained_scored_and_exported_on_windows(windowed_run, dataset_dir, capsys):
    coeffs, clip_frames = feature_shape(load_config(windowed_run / "config.yaml"))
    assert clip_frames == 61
    result = json.loads((windowed_run / "fold1" / "result.json").read_text())
    assert len(result["y_pred"]) == 6 and result["accuracy"] > 1 / 3  # clip-level, better than chance
    edge_result = json.loads((windowed_run / "fold1" / "edge.json").read_text())
    assert edge_result["calibration_clips"] == 12
    assert edge_result["sizes"]["inferences_per_clip"] == 18  # 3 windows x 2 rotations x 3 mel shifts
    assert "(18 inferences per clip)" in (windowed_run / "report.md").read_text()
    assert "× 18 per clip" in report.accuracy_table([windowed_run])
    assert edge_result["variants"]["keras_float"]["y_pred"] == result["y_pred"]
    assert edge_result["agreement"]["int8_litert_vs_int8_tflm"] == 1.0
    int8 = windowed_run / "deploy" / "model_int8.tflite"
    details = tf.lite.Interpreter(model_path=str(int8)).get_input_details()[0]
    assert list(details["shape"]) == [1, coeffs, 32, 1]
    settings = (windowed_run / "deploy" / "model_settings.h").read_text()
    assert re.search(r"#define kNumFrames 32\b", settings)
    assert evaluate.main(["--model", str(int8), "--data-dir", str(dataset_dir), "--folds", "1"]) == 0
    assert "accuracy:" in capsys.readouterr().out



def test_the_device_scores_a_clip_on_the_windows_the_model_was_scored_on(windowed_run, dataset_dir, tmp_path):
    """The firmware's default stride, views and averaging (kClipWindowStrideFrames, kTimeRolls, kMelShifts,
    kClipWindows) replay the clip-level evaluation: its inputs of a clip are pipeline.model_inputs, and
    the mean softmax of their TFLM scores picks the class evaluate.clip_scores picks."""
    if host_build.compiler() is None:
        pytest.skip("no C compiler found")
    deploy = windowed_run / edge.DEPLOY_DIR
    settings = (deploy / "model_settings.h").read_text()
    assert re.search(r"#define kClipWindows 3\b", settings) and re.search(r"#define kClipWindowStrideFrames 14\b",
                                                                         settings)
    assert re.search(r"#define kTimeRolls 2\b", settings) and re.search(r"#define kMelShifts 1\b", settings)
    meta = ModelMeta.for_model(deploy / "model_int8.tflite")
    model = (deploy / "model_int8.tflite").read_bytes()
    config = meta.config
    waves = data_mod.load_waveforms(data_mod.load_dataset(config), config.audio, config.data.cache_dir,
                                    progress=False)[:12]
    pcm = reference.to_int16(waves)
    program = host_build.build(deploy, tmp_path / "build")["host_pipeline"]
    device_windows = host_build.run_host_pipeline(program, pcm, stride=window_stride(config), views=2, mel_shifts=1)
    feats = pipeline.feature_array(reference.from_int16(pcm), config, meta.normalization)
    scale, zero_point = reference.input_quantization(model)
    expected = evaluate.quantize(pipeline.model_inputs(feats, config), scale, zero_point).reshape(len(pcm) * 18, -1)
    assert device_windows.shape == expected.shape
    diff = np.abs(device_windows.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) <= 0.005  # the C front end's float rounding (tests/test_firmware.py)
    out_scale, out_zero_point = io_quantization(model)["output_scale"], io_quantization(model)["output_zero_point"]
    device_scores = evaluate.dequantize(reference.tflm_scores(model, device_windows), out_scale, out_zero_point)
    device_classes = evaluate.softmax(device_scores).reshape(len(pcm), 18, -1).mean(axis=1).argmax(axis=1)
    python_classes = evaluate.clip_scores(evaluate.TFLMPredictor(model), feats, config).argmax(axis=1)
    assert np.array_equal(device_classes, python_classes)


@pytest.mark.parametrize("settings, expected", [
    ("#define kNumFrames 95\n#define kClipFrames 155\n#define kClipWindows 3\n#define kClipWindowStrideFrames 30\n",
     "30 3 1 1"),  # a windowed model: the clip's windows, averaged
    ("#define kNumFrames 95\n#define kClipFrames 155\n#define kClipWindows 1\n#define kClipWindowStrideFrames 0\n",
     "19 1 1 1"),  # one window per clip: each inference decides alone
    ("#define kNumFrames 155\n#define kClipFrames 155\n#define kClipWindows 1\n#define kClipWindowStrideFrames 0\n",
     "31 3 1 1"),  # a whole-clip model: every fifth of the window, 3 averaged
    ("#define kNumFrames 155\n#define kClipFrames 155\n#define kClipWindows 1\n#define kClipWindowStrideFrames 0\n"
     "#define kTimeRolls 4\n", "31 3 4 4"),  # each inference on 4 rotations of the window
    ("#define kNumFrames 155\n#define kClipFrames 155\n#define kClipWindows 1\n#define kClipWindowStrideFrames 0\n"
     "#define kTimeRolls 4\n#define kMelShifts 1\n", "31 3 4 12"),  # ... each at 3 mel shifts
    ("#define kNumFrames 155\n", "31 3 1 1"),  # a header exported before windowed models
])
def test_the_firmware_inference_schedule_follows_the_clip_windows(settings, expected, tmp_path):
    cc = host_build.compiler()
    if cc is None:
        pytest.skip("no C compiler found")
    (tmp_path / "model_settings.h").write_text(settings)
    (tmp_path / "main.c").write_text('#include <stdio.h>\n#include "inference_schedule.h"\nint main(void) {\n'
                                     '  printf("%d %d %d %d", (int)(FIRMWARE_INFERENCE_STRIDE_FRAMES), '
                                     '(int)(FIRMWARE_AVERAGE_WINDOW), (int)(FIRMWARE_TIME_ROLLS), '
                                     '(int)(FIRMWARE_VIEWS));\n  return 0;\n}\n')
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-I", str(tmp_path), "-I", str(host_build.FIRMWARE),
                    str(tmp_path / "main.c"), "-o", str(tmp_path / "schedule")], check=True)
    assert subprocess.run([str(tmp_path / "schedule")], capture_output=True, text=True).stdout == expected


def test_device_parity_scores_a_windowed_model_on_the_clip_windows(windowed_run, dataset_dir, tmp_path):
    """benchmarks/device_parity.py runs the C path on the firmware's inference schedule and scores clips
    as evaluate does: its Python-path accuracy is evaluate's TFLM accuracy on the same clips."""
    spec = importlib.util.spec_from_file_location("device_parity", REPO / "benchmarks" / "device_parity.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = windowed_run / edge.DEPLOY_DIR / "model_int8.tflite"
    out = tmp_path / "parity.json"
    assert bench.main(["--model", str(model), "--data-dir", str(dataset_dir), "--folds", "1", "--min-clips", "6",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["clips"] == 6 and result["top1_agreement"] >= 5 / 6 and result["max_abs_input_diff"] <= 1
    expected = evaluate.evaluate_on_dataset(model, dataset_dir, [1], progress=False)["accuracy"]
    assert result["accuracy_python_path"] == pytest.approx(expected)

"""How a clip is scored: the softmax averaged over views of the whole clip, each rotated in time
(model.time_rolls) and moved by whole mel bands (model.mel_shifts), on the host and on the device."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from esc_tf import artifacts, pipeline
from esc_tf.artifacts import ModelMeta
from esc_tf.audio.features import check_scoring_config, feature_shape, views_per_clip
from esc_tf.cli.main import main as cli_main
from esc_tf.config import Config, ConfigError, load_config, with_value, with_values
from esc_tf.data import dataset as data_mod
from esc_tf.reporting.run_report import write_run_report
from esc_tf.reporting.tables import results_table
from esc_tf.runtime import predictors as evaluate
from esc_tf.stages import deploy as edge
from esc_tf.stages import evaluate as evaluate_stage
from esc_tf.stages import train
from esc_tf.stages.export import io_quantization
from firmware_stub.tools import host_build, reference
from tests.conftest import CHANCE, chance_of_at_least, held_out_hits, load_benchmark, small_config

REPO = Path(__file__).resolve().parents[1]


def test_model_inputs_are_each_clip_rotated_in_time():
    config = with_value(Config(), "model.time_rolls", 3)
    feats = np.random.default_rng(2).standard_normal((2, 64, 155, 1)).astype(np.float32)
    inputs = pipeline.model_inputs(feats, config)
    assert inputs.shape == (2 * 3, 64, 155, 1)  # clips x rotations
    for roll in range(3):
        np.testing.assert_array_equal(inputs[1 * 3 + roll], np.roll(feats[1], roll, axis=1))
    np.testing.assert_array_equal(inputs[1 * 3 + 2][:, :2], feats[1][:, -2:])  # the end wraps to the front
    assert pipeline.model_inputs(feats, with_value(Config(), "model.time_rolls", 1)) is feats


def test_mel_shifts_move_the_bands_with_the_edge_band_repeated_and_multiply_the_views():
    feats = np.random.default_rng(3).standard_normal((2, 64, 155, 1)).astype(np.float32)
    up, down = pipeline.shift_mels(feats, 2), pipeline.shift_mels(feats, -1)
    np.testing.assert_array_equal(up[:, 2:], feats[:, :-2])  # a sound two bands higher
    np.testing.assert_array_equal(up[:, :2], feats[:, [0, 0]])
    np.testing.assert_array_equal(down[:, :-1], feats[:, 1:])
    np.testing.assert_array_equal(down[:, -1], feats[:, -1])
    config = with_values(Config(), {"model.time_rolls": 2, "model.mel_shifts": 1})
    inputs = pipeline.model_inputs(feats, config)
    assert inputs.shape == (2 * 3 * 2, 64, 155, 1)  # clips x mel shifts x rotations
    assert views_per_clip(config) == 6
    for k, (shift, roll) in enumerate((s, r) for s in (-1, 0, 1) for r in range(2)):
        expected = np.roll(pipeline.shift_mels(feats[1][None], shift)[0], roll, axis=1)
        np.testing.assert_array_equal(inputs[1 * 6 + k], expected)


@pytest.mark.parametrize("change, message", [({"model.mel_shifts": 64}, "between 0 and 63"),
                                             ({"model.mel_shifts": 1, "features.kind": "mfcc"}, "must be 0"),
                                             ({"model.time_rolls": 156}, "time_rolls must be between 1 and")])
def test_impossible_views_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        check_scoring_config(with_values(Config(), change))


def test_clip_scores_average_the_softmax_over_the_rotations():
    config = with_value(Config(), "model.time_rolls", 4)
    feats = np.zeros((1, 64, 155, 1), np.float32)
    feats[0, 0, 0] = 1.0  # one marked frame: rotation r moves it to frame r
    # Logits that depend on where the mark is: (0, 0) when it is in frame 0, else (0, log 3).
    predictor = lambda x: np.stack([np.zeros(len(x)), np.where(x[:, 0, 0, 0] == 1.0, 0.0, np.log(3.0))], axis=1)
    scores = evaluate.clip_scores(predictor, feats, config)
    np.testing.assert_allclose(scores, [[(0.5 + 3 * 0.25) / 4, (0.5 + 3 * 0.75) / 4]])


def test_clip_scores_of_one_view_are_the_softmax_of_the_models_scores():
    feats = np.zeros((2, 64, 155, 1), np.float32)
    np.testing.assert_allclose(evaluate.clip_scores(lambda x: np.array([[0.0, np.log(3.0)]] * len(x)),
                                                    feats, Config()), [[0.25, 0.75]] * 2)


@pytest.fixture(scope="module")
def viewed_run(tmp_path_factory, dataset_dir) -> Path:
    """A one-fold run of a model on 13 log-mels, each clip scored in 2 rotations at 3 mel shifts, with the
    edge stage and the export."""
    tmp = tmp_path_factory.mktemp("viewed")
    config = with_values(small_config(dataset_dir, tmp), {
        "features.kind": "logmel", "features.num_mel_bins": 13,  # mel shifts need log-mels
        "model.time_rolls": 2, "model.mel_shifts": 1, "data.folds": [1], "train.epochs": 4,
        "export.publish_dir": str(tmp / "tflite")})
    run_dir = train.run_cross_validation(config, tmp / "runs", progress=False)
    edge.run_edge_stages(run_dir, progress=False)
    write_run_report(run_dir, 0.0)
    return run_dir


def test_a_model_scored_on_views_is_trained_scored_and_exported(viewed_run, dataset_dir, tmp_path, capsys):
    coeffs, clip_frames = feature_shape(load_config(viewed_run / "config.yaml"))
    assert clip_frames == 61
    result = json.loads((viewed_run / "fold1" / "result.json").read_text())
    assert len(result["y_pred"]) == 6
    hits, clips = held_out_hits(viewed_run / "deploy" / "model_int8.tflite", tmp_path / "held_out")
    assert chance_of_at_least(hits, clips, 3) < CHANCE, (hits, clips)  # clip-level, far better than chance
    edge_result = json.loads((viewed_run / "fold1" / "edge.json").read_text())
    assert edge_result["calibration_clips"] == 12
    assert edge_result["sizes"]["inferences_per_clip"] == 6  # 2 rotations x 3 mel shifts
    assert "(6 inferences per clip)" in (viewed_run / "report.md").read_text()
    assert "| 6 |" in results_table([viewed_run])  # inferences per clip
    assert edge_result["variants"]["keras_float"]["y_pred"] == result["y_pred"]
    assert edge_result["agreement"]["int8_litert_vs_int8_tflm"] == 1.0
    int8 = viewed_run / "deploy" / "model_int8.tflite"
    details = tf.lite.Interpreter(model_path=str(int8)).get_input_details()[0]
    assert list(details["shape"]) == [1, coeffs, clip_frames, 1]
    settings = (viewed_run / "deploy" / "model_settings.h").read_text()
    assert re.search(rf"#define kNumFrames {clip_frames}\b", settings) and "kClipWindows" not in settings
    assert cli_main(["evaluate", "--model", str(int8), "--data-dir", str(dataset_dir), "--folds", "1"]) == 0
    assert "accuracy:" in capsys.readouterr().out



def test_the_device_scores_a_clip_on_the_views_the_model_was_scored_on(viewed_run, dataset_dir, tmp_path):
    """The firmware's default views (kTimeRolls, kMelShifts) replay the clip-level evaluation: its inputs
    of a clip are pipeline.model_inputs, and the mean softmax of their TFLM scores picks the class
    evaluate.clip_scores picks."""
    if host_build.compiler() is None:
        pytest.skip("no C compiler found")
    deploy = viewed_run / artifacts.DEPLOY_DIR
    settings = (deploy / "model_settings.h").read_text()
    assert re.search(r"#define kTimeRolls 2\b", settings) and re.search(r"#define kMelShifts 1\b", settings)
    meta = ModelMeta.for_model(deploy / "model_int8.tflite")
    model = (deploy / "model_int8.tflite").read_bytes()
    config = meta.config
    waves = data_mod.load_waveforms(data_mod.load_dataset(config), config.audio, config.data.cache_dir,
                                    progress=False)[:12]
    pcm = reference.to_int16(waves)
    program = host_build.build(deploy, tmp_path / "build")["host_pipeline"]
    device_windows = host_build.run_host_pipeline(program, pcm, views=2, mel_shifts=1)
    feats = pipeline.feature_array(reference.from_int16(pcm), config, meta.normalization)
    scale, zero_point = reference.input_quantization(model)
    expected = evaluate.quantize(pipeline.model_inputs(feats, config), scale, zero_point).reshape(len(pcm) * 6, -1)
    assert device_windows.shape == expected.shape
    diff = np.abs(device_windows.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) <= 0.005  # the C front end's float rounding (tests/test_firmware.py)
    out_scale, out_zero_point = io_quantization(model)["output_scale"], io_quantization(model)["output_zero_point"]
    device_scores = evaluate.dequantize(reference.tflm_scores(model, device_windows), out_scale, out_zero_point)
    device_classes = evaluate.softmax(device_scores).reshape(len(pcm), 6, -1).mean(axis=1).argmax(axis=1)
    python_classes = evaluate.clip_scores(evaluate.TFLMPredictor(model), feats, config).argmax(axis=1)
    assert np.array_equal(device_classes, python_classes)


@pytest.mark.parametrize("settings, expected", [
    ("#define kNumFrames 155\n", "155 1 1 1"),  # one inference per window length, as clips are scored
    ("#define kNumFrames 155\n#define kTimeRolls 4\n", "155 1 4 4"),  # each inference on 4 rotations of the window
    ("#define kNumFrames 155\n#define kTimeRolls 4\n#define kMelShifts 1\n", "155 1 4 12"),  # ... each at 3 mel shifts
    ("#define kNumFrames 155\n#define kClipFrames 155\n#define kClipWindows 1\n#define kClipWindowStrideFrames 0\n",
     "155 1 1 1"),  # a header exported while models could read part of a clip
])
def test_the_firmware_inference_schedule_and_views(settings, expected, tmp_path):
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


def test_device_parity_scores_clips_on_their_views(viewed_run, dataset_dir, tmp_path):
    """benchmarks/device_parity.py runs the C path on every view of a clip and scores clips as evaluate
    does: its Python-path accuracy is evaluate's TFLM accuracy on the same clips."""
    bench = load_benchmark("device_parity")
    model = viewed_run / artifacts.DEPLOY_DIR / "model_int8.tflite"
    out = tmp_path / "parity.json"
    assert bench.main(["--model", str(model), "--data-dir", str(dataset_dir), "--folds", "1", "--min-clips", "6",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["clips"] == 6 and result["top1_agreement"] >= 5 / 6 and result["max_abs_input_diff"] <= 1
    expected = evaluate_stage.evaluate_on_dataset(model, dataset_dir, [1], progress=False)["accuracy"]
    assert result["accuracy_python_path"] == pytest.approx(expected)

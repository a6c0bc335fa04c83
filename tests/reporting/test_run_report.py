"""Run reports and the results tables generated from them."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from esc_tf import artifacts
from esc_tf.artifacts import MODEL_FILE, ModelMeta
from esc_tf.cli.main import main as cli_main
from esc_tf.config import FeatureConfig, load_config, with_values
from esc_tf.reporting import run_report as report
from esc_tf.reporting.tables import features_label, write_docs_tables


def test_features_label_names_size_fft_hop_and_a_non_default_log_offset():
    features = dataclasses.asdict(FeatureConfig())
    assert features_label(features) == "logmel 64, 1024/512"
    assert features_label({**features, "log_offset": 1e-6}) == "logmel 64, 1024/512, log offset 1e-06"
    mfcc = {**features, "kind": "mfcc", "fft_length": 512, "hop_length": 256, "num_mel_bins": 40}
    assert features_label(mfcc) == "mfcc 13 of 40, 512/256"


def test_the_runs_table_has_one_row_per_run_with_its_scores_and_cost(exported_run, tmp_path, capsys):
    out = tmp_path / "table.md"
    assert cli_main(["report", "runs", str(exported_run), "--out", str(out)]) == 0
    report_json = json.loads((exported_run / "report.json").read_text())
    rows = [line for line in out.read_text().splitlines() if line.startswith(f"| `{exported_run.name}` |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    folds = report_json["folds"]
    assert cells[6].startswith(f"{sum(f['accuracy'] for f in folds) / len(folds):.4f}")
    tflm = [e["variants"]["int8_tflm"]["accuracy"] for e in
            (json.loads(p.read_text()) for p in sorted(exported_run.glob("fold*/edge.json")))]
    assert cells[7].startswith(f"{sum(tflm) / len(tflm):.4f}")
    assert cli_main(["report", "runs", str(tmp_path / "never-finished")]) == 1
    assert "never-finished: no report.json" in capsys.readouterr().err


def test_the_committed_docs_tables_are_what_the_reports_give(tmp_path):
    """docs/results.md is generated: regenerating it from reports/ changes nothing (no hand edits)."""
    root = Path(__file__).resolve().parents[2]
    shutil.copytree(root / "docs", tmp_path / "docs")
    written = write_docs_tables(root / "reports", tmp_path / "docs")
    assert written, "no generated table"
    for path in written:
        assert path.read_text() == (root / "docs" / path.name).read_text(), f"docs/{path.name} is stale: " \
            "run esc-tf report tables"


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

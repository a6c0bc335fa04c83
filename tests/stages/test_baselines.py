"""Classical baselines in the CV harness."""
from __future__ import annotations

import json

import numpy as np

from esc_tf.cli.main import main as cli_main
from esc_tf.stages import baselines


def test_pooled_statistics_shape_and_values():
    f = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5, 1)
    v = baselines.pooled_statistics(f)
    assert v.shape == (2, 24)
    np.testing.assert_allclose(v[0, :3], [2, 7, 12])  # per-coefficient means
    np.testing.assert_allclose(v[0, 12:15], [1, 1, 1])  # mean first difference


def test_baselines_beat_chance_on_separable_data(dataset_dir, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert cli_main(["baselines", "--data-dir", str(dataset_dir), "--folds", "1,2", "--set", "audio.clip_seconds=1.0",
                           "--set", f"data.cache_dir={tmp_path}", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"svm_rbf", "random_forest", "logistic_regression"}
    for r in results.values():
        assert set(r["per_fold"]) == {"fold1", "fold2"} and r["mean"] > 0.6
    assert "svm_rbf:" in capsys.readouterr().out

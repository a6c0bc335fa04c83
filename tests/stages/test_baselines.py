"""Classical baselines in the CV harness."""
from __future__ import annotations

import json

import numpy as np

from esc_tf.cli.main import main as cli_main
from esc_tf.stages import baselines
from tests.conftest import CHANCE, chance_of_at_least


def test_pooled_statistics_are_every_statistic_of_every_coefficient_and_its_difference():
    f = np.random.default_rng(0).normal(size=(4, 3, 7, 1)) * np.array([1.0, 5.0, 0.1])[:, None, None]
    f = f.astype(np.float32)
    v = baselines.pooled_statistics(f)
    assert v.shape == (4, 24)
    x = f[..., 0].astype(np.float64)
    d = np.diff(x, axis=2)
    expected = [x.mean(2), x.std(2), x.min(2), x.max(2), d.mean(2), d.std(2), d.min(2), d.max(2)]
    for k, stat in enumerate(expected):  # blocks of 3 (one value per coefficient), in this order
        np.testing.assert_allclose(v[:, 3 * k:3 * k + 3], stat, rtol=1e-5, atol=1e-6, err_msg=f"block {k}")


def test_baselines_beat_chance_on_separable_data(dataset_dir, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert cli_main(["baselines", "--data-dir", str(dataset_dir), "--folds", "1,2", "--set", "audio.clip_seconds=1.0",
                           "--set", f"data.cache_dir={tmp_path}", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"svm_rbf", "random_forest", "logistic_regression"}
    for r in results.values():
        assert set(r["per_fold"]) == {"fold1", "fold2"}
        hits = round(sum(r["per_fold"].values()) * 6)  # 6 test clips per fold, 3 classes
        assert chance_of_at_least(hits, 12, 3) < CHANCE, r
    assert "svm_rbf:" in capsys.readouterr().out

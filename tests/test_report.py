"""Labels of the accuracy table (esc_tf.report)."""
from __future__ import annotations

import dataclasses

from esc_tf.config import FeatureConfig
from esc_tf.report import _features_label


def test_features_label_names_size_fft_hop_and_a_non_default_log_offset():
    features = dataclasses.asdict(FeatureConfig())
    assert _features_label(features) == "logmel 64, 1024/512"
    assert _features_label({**features, "log_offset": 1e-6}) == "logmel 64, 1024/512, log offset 1e-06"
    mfcc = {**features, "kind": "mfcc", "fft_length": 512, "hop_length": 256, "num_mel_bins": 40}
    assert _features_label(mfcc, windows=(3, 95)) == "mfcc 13 of 40, 512/256, 3 x 95-frame windows"

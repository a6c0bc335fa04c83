"""Labels of the accuracy table (esc_tf.report)."""
from __future__ import annotations

import dataclasses

from esc_tf.config import FeatureConfig
from esc_tf.report import _features_label, run_label


def test_features_label_names_size_fft_hop_and_a_non_default_log_offset():
    features = dataclasses.asdict(FeatureConfig())
    assert _features_label(features) == "logmel 64, 1024/512"
    assert _features_label({**features, "log_offset": 1e-6}) == "logmel 64, 1024/512, log offset 1e-06"
    mfcc = {**features, "kind": "mfcc", "fft_length": 512, "hop_length": 256, "num_mel_bins": 40}
    assert _features_label(mfcc, windows=(3, 95)) == "mfcc 13 of 40, 512/256, 3 x 95-frame windows"


def test_run_label_is_the_config_hash_with_the_suffix_of_a_rescored_copy():
    assert run_label("esc50-16k-all-dscnn-folds-5bf7bea6") == "5bf7bea6"
    assert run_label("esc50-16k-all-dscnn-folds-5bf7bea6-rolls16") == "5bf7bea6-rolls16"
    assert run_label("esc50-16k-not-esc10-micro_wide-pretrain") == "pretrain"

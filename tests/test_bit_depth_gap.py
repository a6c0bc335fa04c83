"""benchmarks/bit_depth_gap.py: bringing an original to its copy's level."""
import numpy as np
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bit_depth_gap():
    return load_benchmark("bit_depth_gap")


@pytest.mark.parametrize("lag", [0, 32, -45])
def test_level_to_finds_the_gain_of_a_shifted_quantised_copy(bit_depth_gap, lag):
    rng = np.random.default_rng(lag + 100)
    original = (rng.standard_normal(16000) * 0.05).astype(np.float32)
    copy = np.roll(original, lag) * 1.8
    copy = np.floor(copy * 128) / 128  # 8-bit, low byte zeroed, as the training pool
    assert bit_depth_gap.level_to(original, copy) == pytest.approx(1.8, rel=0.02)


def test_level_to_leaves_silence_alone(bit_depth_gap):
    assert bit_depth_gap.level_to(np.zeros(1000, np.float32), np.ones(1000, np.float32)) == 1.0


def test_the_gaps_interval_comes_from_the_clips_right_on_one_version_only(bit_depth_gap):
    assert bit_depth_gap.gap_half_width_95(0, 0, 320) == 0.0
    # 20 clips right on the copies only, 10 on the originals only: gap 10/320, se sqrt((30/320 - (10/320)^2)/320)
    assert bit_depth_gap.gap_half_width_95(20, 10, 320) == pytest.approx(1.96 * ((30 / 320 - (10 / 320) ** 2) / 320) ** 0.5)
    assert 0.03 < bit_depth_gap.gap_half_width_95(20, 10, 320) < 0.04

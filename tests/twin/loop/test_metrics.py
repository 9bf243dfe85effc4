"""Every metric against cases worked out by hand from its definition."""

from __future__ import annotations

import numpy as np
import pytest

from twin.loop.metrics import (
    METRIC_NAMES,
    FrameRecord,
    aggregate,
    dba,
    dba_per_frame,
    frame_metrics,
    pad_rankings,
    pooled_with_ci,
    rate,
    topk_hits,
    unit_sums,
)


def test_rate_is_log2_one_plus_snr() -> None:
    np.testing.assert_allclose(rate(np.array([0.0, 10.0, -np.inf])), [1.0, np.log2(11.0), 0.0])


def test_dba_small_example_from_the_definition() -> None:
    # Frame 1: truth 10, ranked [10, 12, 30] -> distances/5 capped: [0, 0.4, 1] -> running min [0, 0, 0].
    # Frame 2: truth 20, ranked [23, 21, 40] -> [0.6, 0.2, 1] -> running min [0.6, 0.2, 0.2].
    # DBA = 1/3 * ([1 - (0 + 0.6)/2] + [1 - (0 + 0.2)/2] + [1 - (0 + 0.2)/2]) = (0.7 + 0.9 + 0.9) / 3.
    ranked = np.array([[10, 12, 30], [23, 21, 40]])
    truth = np.array([10, 20])
    assert dba(ranked, truth) == pytest.approx(2.5 / 3)
    np.testing.assert_allclose(dba_per_frame(ranked, truth), [1.0, 2 / 3])


def test_dba_is_linear_in_distance_and_saturates_at_delta() -> None:
    truth = np.array([32])
    for offset, expected in [(0, 1.0), (1, 0.8), (2, 0.6), (4, 0.2), (5, 0.0), (30, 0.0)]:
        assert dba(np.array([[32 + offset]] * 1), truth) == pytest.approx(expected)
        assert dba(np.array([[32 - offset]]), truth) == pytest.approx(expected)  # linear, not circular


def test_single_beam_is_repeated_for_top_k_and_dba() -> None:
    np.testing.assert_array_equal(
        pad_rankings([[5], [7, 8], [1, 2, 3, 4]]), [[5, 5, 5], [7, 8, 8], [1, 2, 3]]
    )
    np.testing.assert_array_equal(pad_rankings(np.array([[5], [6]])), [[5, 5, 5], [6, 6, 6]])
    # One guess 2 away: every k sees distance 2/5.
    assert dba(pad_rankings([[12]]), np.array([10])) == pytest.approx(0.6)


def test_top_k() -> None:
    ranked = np.array([[3, 4, 5], [4, 3, 5], [5, 6, 3], [0, 1, 2]])
    truth = np.array([3, 3, 3, 3])
    np.testing.assert_array_equal(topk_hits(ranked, truth, 1), [True, False, False, False])
    np.testing.assert_array_equal(topk_hits(ranked, truth, 3), [True, True, True, False])


def _record() -> FrameRecord:
    return FrameRecord(
        ranked=np.array([[2, 1, 3], [1, 2, 0], [0, 0, 0], [3, 3, 3]]),
        oracle=np.array([2, 2, 2, 2]),
        snr_db=np.array([20.0, 14.0, -3.0, 5.0]),
        oracle_snr_db=np.array([20.0, 20.0, 10.0, 5.0]),
        rsrp_diff_db=np.array([0.0, -5.5, 12.0, 0.2]),
        overhead=np.array([0.1, 0.0, 0.0, 0.5]),
    )


def test_frame_metrics_hand_computed() -> None:
    m = frame_metrics(_record(), outage_snr_db=0.0)
    assert set(m) == set(METRIC_NAMES)
    np.testing.assert_allclose(m["snr_loss_db"], [0.0, 6.0, 13.0, 0.0])
    np.testing.assert_allclose(m["rsrp_diff_db"], [0.0, 5.5, 12.0, 0.2])
    np.testing.assert_allclose(m["rate"], np.log2(1 + 10 ** (np.array([20.0, 14.0, -3.0, 5.0]) / 10)))
    np.testing.assert_allclose(m["effective_rate"], m["rate"] * [0.9, 1.0, 1.0, 0.5])
    np.testing.assert_allclose(m["oracle_rate"], np.log2(1 + 10 ** (np.array([20.0, 20.0, 10.0, 5.0]) / 10)))
    np.testing.assert_array_equal(m["top1"], [1, 0, 0, 0])
    np.testing.assert_array_equal(m["top3"], [1, 1, 0, 0])
    np.testing.assert_array_equal(m["outage"], [0, 0, 1, 0])
    np.testing.assert_allclose(m["overhead"], [0.1, 0.0, 0.0, 0.5])
    # DBA: [2,1,3] vs 2 -> 1; [1,2,0] -> running min [0.2, 0, 0] -> (0.8 + 1 + 1)/3;
    # [0,0,0] -> 0.6; [3,3,3] -> 0.8.
    np.testing.assert_allclose(m["dba"], [1.0, 2.8 / 3, 0.6, 0.8])


def test_pooled_means_weight_frames_not_units() -> None:
    units = [
        unit_sums({name: np.full(10, 1.0) for name in METRIC_NAMES}),
        unit_sums({name: np.full(30, 3.0) for name in METRIC_NAMES}),
    ]
    assert units[1]["frames"] == 30 and units[1]["rate"] == 90
    estimates = aggregate(units, resamples=200)
    assert estimates["rate"].mean == pytest.approx((10 * 1 + 30 * 3) / 40)
    assert 1.0 <= estimates["rate"].low <= estimates["rate"].mean <= estimates["rate"].high <= 3.0


def test_bootstrap_interval_is_deterministic_and_narrows_with_more_units() -> None:
    rng = np.random.default_rng(0)
    few = rng.normal(5, 1, 8)
    many = rng.normal(5, 1, 200)
    a = pooled_with_ci(few, np.ones(8), seed=3)
    assert a == pooled_with_ci(few, np.ones(8), seed=3)
    b = pooled_with_ci(many, np.ones(200), seed=3)
    assert (b.high - b.low) < (a.high - a.low)
    assert a.low <= a.mean <= a.high
    single = pooled_with_ci(np.array([4.0]), np.array([2.0]))
    assert single.mean == single.low == single.high == 2.0

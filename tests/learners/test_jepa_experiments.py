"""The JEPA experiments script (learners.jepa_experiments): ADE/FDE, ΔP, RSSI and top-k against
hand-computed values, the random window split puts windows of one drive on both sides and the run
split never does, and on the tiny store the script prints every table, the same seed gives the same
numbers, and bad input is one error line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from learners.horizon_metrics import delta_p, displacement, power_errors, rssi_db, top_k
from learners.jepa_experiments import HORIZONS, anchors, main, split_windows
from tests.learners.conftest import synthetic_frames

FAST = [
    "--pretrain-epochs",
    "1",
    "--head-epochs",
    "1",
    "--baseline-epochs",
    "1",
    "--dims",
    "16",
    "--mask-ratios",
    "0.75",
    "--future-shares",
    "1",
    "--leave-out",
    "gps",
    "--latency-windows",
    "2",
]


def test_ade_is_the_running_mean_and_fde_the_error_at_each_horizon() -> None:
    truth = np.zeros((2, 3, 2))
    predicted = np.array([[[3, 4], [0, 0], [0, 1]], [[1, 0], [0, 2], [3, 0]]], float)
    ade, fde = displacement(predicted, truth)
    # per-horizon errors: (5, 0, 1) and (1, 2, 3) → means 3, 1, 2
    assert np.allclose(fde, [3, 1, 2]) and np.allclose(ade, [3, 2, 2])


def test_delta_p_top_k_and_rssi_against_hand_values() -> None:
    sweeps = np.array([[[-60.0, -70.0, -65.0], [-80.0, -75.0, -90.0]]])  # one window, two horizons
    beams = np.array([[0, 1]])
    assert np.allclose(delta_p(np.array([[2, 1]]), beams, sweeps), [5.0, 0.0])
    ranked = np.array([[[2, 0, 1], [1, 0, 2]]])
    assert np.allclose(top_k(ranked, beams, 1), [0, 1]) and np.allclose(top_k(ranked, beams, 2), [1, 1])
    # mean of 1e-6 mW and 0.5e-6 mW: 0.75e-6 mW
    assert rssi_db(np.array([-60.0, -60 - 10 * np.log10(2)])) == pytest.approx(10 * np.log10(0.75e-6))
    mae, rmse = power_errors(np.array([[1.0], [-3.0]]), np.zeros((2, 1)))
    assert mae == pytest.approx([2.0]) and rmse == pytest.approx([np.sqrt(5.0)])


def test_the_random_split_shares_drives_and_the_run_split_never_does() -> None:
    frames = synthetic_frames(frames=30, drives=4)
    assert all(t + HORIZONS < 30 for _, t in anchors(frames, range(4), 1))
    train, test = split_windows(frames, "run", 0.3, 0, 1)
    assert train and test and not {d for d, _ in train} & {d for d, _ in test}
    train, test = split_windows(frames, "window", 0.3, 0, 1)
    assert {d for d, _ in train} & {d for d, _ in test}  # windows of one drive on both sides
    assert not set(train) & set(test) and len(train) + len(test) == len(anchors(frames, range(4), 1))
    assert split_windows(frames, "window", 0.3, 0, 1) == (train, test)  # seeded


def _numbers(text: str) -> list[str]:
    """Table rows whose numbers are seeded (latency rows are timings)."""
    timed = ("tokeniser", "backbone", "heads (", "baseline", "target encoder")
    return [line for line in text.splitlines() if line.startswith("| ") and not any(t in line for t in timed)]


def test_the_script_prints_every_table_and_the_same_seed_gives_the_same_numbers(
    tiny_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--store", str(tiny_store), *FAST])
    out = capsys.readouterr().out
    for heading in (
        "Per-horizon scores, split by run",
        "Horizon averages beside the paper's Table III",
        "the paper's random window split",
        "Leak: random window split − split by run",
        "Table III analogue",
        "Table IV analogue",
        "target (frozen-JEPA top-3",
        "target (RankMe",
    ):
        assert heading in out
    for row in (
        "| GRU | 5 | — | — |",
        "| E2E | 1 |",
        "| Kalman CTRV | 1 |",
        "| w/o gps | ",
        "| paper | camera",
    ):
        assert row in out
    main(["--store", str(tiny_store), *FAST, "--tables", "horizons"])
    again = _numbers(capsys.readouterr().out)
    first = _numbers(out)
    assert again and all(line in first for line in again)


def test_bad_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.h5"
    with pytest.raises(SystemExit) as exit_info:
        main(["--store", str(missing)])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith(f"{missing}: store not found (expected a twin store: python -m twin.generate)")
    )
    with pytest.raises(SystemExit):
        main(["--store", str(missing), "--bogus"])
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("unrecognized arguments: --bogus")

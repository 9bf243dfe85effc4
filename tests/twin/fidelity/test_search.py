"""The twin's post-trace parameters re-applied to stored paths, and the calibration search recovering
known ones from a twin-generated "recording"."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import replace
from twin.dataset.generation import generate
from twin.fidelity.distances import compare
from twin.fidelity.resweep import NO_BLOCKER_LOSS, PostTrace, load_paths, measured_drives, noiseless_sweeps
from twin.fidelity.search import PostTraceGrid, SweepModel, fit_post_trace, matched_empty_lanes, score
from twin.fidelity.statistics import store_statistics, sweep_statistics
from twin.fidelity.twin_fit import twin_calibration
from twin.radio.codebook import UniformLinearArray
from twin.scenario.config import LaneConfig, ScenarioConfig
from twin.store import TwinStore
from twin.trace.channel import PathTable, narrowband_channel, through_blockers


@pytest.fixture(scope="module")
def static_store(tiny: ScenarioConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 4 s runs of a UE standing across the tiny street while cars and buses pass."""
    cfg = replace(
        tiny,
        name="static_search",
        **{
            "street.lanes": (LaneConfig(offset_m=0.0, direction=1),),
            "traffic.static_ue.enabled": True,
            "traffic.static_ue.position_m": (0.0, 9.0, 1.2),
            "traffic.served_per_run": 1,
            "traffic.vehicles_per_lane": 3,
            "traffic.mix": {"car": 0.5, "bus": 0.5},
            "base_station.position_m": (0.0, -9.0, 1.2),
            "base_station.array.pattern": "tr38901",
            "dataset.drives": 3,
            "dataset.frames_per_drive": 40,
            "sensors.camera.enabled": False,
            "sensors.lidar.enabled": False,
            "sensors.radar.enabled": False,
            "sensors.gps.enabled": False,
        },
    )
    path, _ = generate(cfg, tmp_path_factory.mktemp("static"), progress=False)
    return path


def test_stored_paths_reproduce_the_stored_sweeps(static_store: Path) -> None:
    paths = load_paths(static_store)
    assert paths.static_ue and paths.post_trace.blocker_loss_db == NO_BLOCKER_LOSS
    with TwinStore(static_store) as store:
        stored = [store.episode(e, ["rsrp_noiseless_dbm"])["rsrp_noiseless_dbm"] for e in store.episode_ids]
    for sweep, again in zip(stored, noiseless_sweeps(paths, paths.post_trace)):
        np.testing.assert_allclose(again, sweep, atol=1e-3)
    louder = noiseless_sweeps(paths, dataclasses.replace(paths.post_trace, tx_power_dbm=5.0))
    np.testing.assert_allclose(louder[0], stored[0] + 5.0 - paths.post_trace.tx_power_dbm, atol=1e-3)


def test_through_blockers_adds_the_clear_frames_line_of_sight() -> None:
    array = UniformLinearArray(4, 0.5, np.zeros(3), 0.0)
    departure = np.array([[[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]]] * 2, np.float32)
    table = PathTable(
        gain=np.array([[1.0, 0.2], [0.0, 0.2]], np.complex64),
        delay_s=np.zeros((2, 2), np.float32),
        departure=departure,
        doppler_hz=np.zeros((2, 2), np.float32),
        is_los=np.array([[True, False], [False, False]]),
        bounces=np.array([[0, 1], [0, 1]], np.int8),
        vertices=np.full((2, 2, 1, 3), np.nan, np.float32),
        valid=np.array([[True, True], [False, True]]),  # frame 1: the LoS path is cut
    )
    h = narrowband_channel(table, array)
    out = through_blockers(table, h, array, 20.0)
    np.testing.assert_allclose(out[0], h[0])
    np.testing.assert_allclose(out[1], h[1] + 0.1 * array.response(0.0), atol=1e-6)  # 20 dB: amplitude 0.1


def test_calibration_recovers_known_parameters(static_store: Path) -> None:
    """Transmit power and blocker loss come back from 120 frames; the array errors need more frames
    than a test traces (their sidelobes move spread and SNR by fractions of a dB), so only the
    search's determinism and improvement are asserted for them."""
    paths = load_paths(static_store)
    truth = PostTrace(3.0, 0.3, 1.0, 20.0, 12.0)
    rate = paths.scenario.dataset.frame_rate_hz
    recorded = measured_drives(paths, truth, seed=7)
    # The tiny street's reflections sit 7 dB under its line of sight: drops of 5 dB are events here.
    real = sweep_statistics(recorded, paths.noise_power_dbm, rate, "real", drop_db=5.0)
    assert len(real.samples["blockage_depth_db"]) >= 2  # the buses cut the link
    start = PostTrace(0.0, 0.3, 0.0, 0.0, NO_BLOCKER_LOSS)
    grid = PostTraceGrid(
        tx_offsets_db=tuple(np.arange(-2.0, 8.1, 0.5)),
        gain_error_db=(0.0, 1.0, 2.0),
        phase_error_deg=(0.0, 20.0, 50.0),
        blocker_loss_db=(NO_BLOCKER_LOSS, 6.0, 12.0, 18.0),
    )
    fit = fit_post_trace(real, SweepModel(paths, seed=0, drop_db=5.0), start, grid)
    assert fit.model.tx_power_dbm == pytest.approx(3.0, abs=1.0)
    assert fit.model.blocker_loss_db == 12.0
    assert fit.score_after < fit.score_before / 2
    again = fit_post_trace(real, SweepModel(paths, seed=0, drop_db=5.0), start, grid)
    assert again.model == fit.model and again.score_after == fit.score_after  # deterministic


def test_score_counts_a_missing_statistic_as_one() -> None:
    rng = np.random.default_rng(0)
    sweeps = [rng.normal(-70, 1, (50, 8))]
    stats = sweep_statistics(
        [type("D", (), {"t": np.arange(50) / 10, "rsrp_dbm": sweeps[0]})()], -87.0, 10.0, "x"
    )
    distances = compare(stats, stats)
    assert score(distances, ("spread_db",)) == 0.0
    assert score(distances, ("spread_db", "blockage_depth_db")) == 0.5  # no drops on either side


def test_matched_empty_lanes_scales_the_drop_rate() -> None:
    assert matched_empty_lanes(0.5, twin_rate=0.2, real_rate=0.1) == pytest.approx(0.75)
    assert matched_empty_lanes(0.5, twin_rate=0.1, real_rate=0.2) == pytest.approx(0.0)
    assert matched_empty_lanes(0.3, twin_rate=0.0, real_rate=0.2) == 0.3


def test_twin_calibration_prints_the_tables_and_the_overrides(
    static_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = store_statistics(static_store, drop_db=5.0)  # the store against its own sweeps
    report = twin_calibration(real, static_store, static_store, tmp_path, drop_db=5.0, traffic=False)
    printed = capsys.readouterr().out
    assert "fidelity before calibration:" in printed and "fidelity after calibration:" in printed
    assert "calibrated twin: scenario.radio.tx_power_dbm=" in printed
    assert "scenario.traffic.static_ue.blocker_loss_db=" in printed
    assert report["post_trace"]["before"]["tx_power_dbm"] == 20.0  # tiny.yaml's
    assert set(report["ks_after"]) >= {"spread_db", "snr_db", "blockage_depth_db"}

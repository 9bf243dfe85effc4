"""Twin versus real: distances, sweep statistics, calibration of the measurement model and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from twin.fidelity.calibration import MeasurementModel, calibrate, detector_noise_db, remeasure
from twin.fidelity.distances import compare, ks_distance, ks_pvalue, wasserstein
from twin.fidelity.statistics import Drive, NoiselessDrive, drop_events, runs, sweep_statistics
from twin.store import Episode, write_store


def test_ks_distance_and_wasserstein() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert ks_distance(a, a) == 0.0
    assert ks_distance(a, a + 10) == 1.0
    assert ks_distance(a, np.array([2.5])) == pytest.approx(0.5)  # CDFs 0.5 vs 0 just below 2.5
    assert wasserstein(a, a + 3.0) == pytest.approx(3.0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=400), rng.normal(0.3, 1.0, size=300)
    brute = max(abs((x <= v).mean() - (y <= v).mean()) for v in np.concatenate([x, y]))
    assert ks_distance(x, y) == pytest.approx(brute)
    stats = pytest.importorskip("scipy.stats")
    reference = stats.ks_2samp(x, y, method="asymp")
    assert ks_distance(x, y) == pytest.approx(reference.statistic)
    assert ks_pvalue(ks_distance(x, y), x.size, y.size) == pytest.approx(reference.pvalue, rel=0.2)
    assert np.isnan(ks_distance(a, np.array([])))


def test_runs_and_drop_events() -> None:
    assert runs(np.array([3, 3, 4, 4, 4, 3])).tolist() == [2, 3, 1]
    best = np.full(60, -60.0)
    best[20:23] = -75.0  # a 15 dB blockage of 0.3 s
    best[50:] = -80.0  # the car leaves: never recovers, not a blockage
    ((onset, end, reference, depth),) = drop_events(best, frame_rate_hz=10.0, drop_db=10.0)
    assert (onset, end, reference, depth) == (20, 23, -60.0, 15.0)


def _static_link(frames: int, beam: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    k = np.arange(64)
    clean = -60.0 - 0.5 * (k - beam) ** 2  # dBm
    clean = 10 * np.log10(10 ** (clean / 10) + 10 ** (-87.0 / 10))
    return clean + rng.normal(0.0, sigma, size=(frames, 64))


def test_sweep_statistics_of_known_sweeps() -> None:
    rsrp = np.full((5, 4), -90.0)
    rsrp[:, 0] = [-60, -60, -61, -80, -60]
    rsrp[3, 2] = -70  # frame 3: beam 2 is best
    rsrp[1, 3] = np.nan  # NaN beams are ignored
    stats = sweep_statistics(
        [Drive(np.arange(5) / 10, rsrp)], noise_power_dbm=-87.0, frame_rate_hz=10.0, label="x"
    )
    np.testing.assert_allclose(stats.samples["spread_db"], [30, 30, 29, 20, 30])
    np.testing.assert_allclose(stats.samples["snr_db"], [27, 27, 26, 17, 27])
    np.testing.assert_allclose(stats.samples["dwell_s"], [0.3, 0.1, 0.1])
    np.testing.assert_allclose(stats.samples["beam_step"], [0, 0, 2, 2])
    np.testing.assert_allclose(stats.samples["rsrp_step_db"], [0, -1, -9, 10])
    assert stats.drives == 1 and stats.frames == 5


def test_detector_noise_is_measured_from_a_static_link() -> None:
    rng = np.random.default_rng(1)
    drives = [Drive(np.arange(400) / 10, _static_link(400, 30, 0.3, rng))]
    assert detector_noise_db(drives, noise_power_dbm=-87.0) == pytest.approx(0.3, rel=0.1)


def test_remeasure_shifts_the_transmit_power() -> None:
    noiseless = [NoiselessDrive(np.arange(3) / 10, np.full((3, 4), -50.0))]
    model = MeasurementModel(tx_power_dbm=25.0, noise_figure_db=7.0, measurement_noise_db=0.0)
    (drive,) = remeasure(noiseless, stored_tx_dbm=20.0, model=model)
    noise = model.noise_power_dbm
    np.testing.assert_allclose(drive.rsrp_dbm, 10 * np.log10(10 ** (-45 / 10) + 10 ** (noise / 10)))


def _moving_link(rng: np.random.Generator) -> list[NoiselessDrive]:
    """Sweeps of cars passing at varying distance: the beam moves, the level follows the distance."""
    drives = []
    for _ in range(12):
        frames = 60
        beams = np.linspace(rng.uniform(5, 20), rng.uniform(40, 60), frames)
        level = -75.0 + 10 * np.sin(np.linspace(0, np.pi, frames)) + rng.normal(0, 2)
        k = np.arange(64)
        rsrp = level[:, None] - 0.8 * (k[None, :] - beams[:, None]) ** 2
        drives.append(NoiselessDrive(np.arange(frames) / 10, np.maximum(rsrp, -150.0)))
    return drives


def test_calibration_recovers_the_transmit_power_of_a_recording() -> None:
    rng = np.random.default_rng(2)
    twin = _moving_link(rng)
    current = MeasurementModel(tx_power_dbm=20.0, noise_figure_db=7.0, measurement_noise_db=1.0)
    truth = MeasurementModel(tx_power_dbm=26.0, noise_figure_db=7.0, measurement_noise_db=0.3)
    recorded = remeasure(_moving_link(np.random.default_rng(3)), 20.0, truth, seed=5)
    real = sweep_statistics(recorded, truth.noise_power_dbm, 10.0, "real")
    result = calibrate(real, twin, current, 10.0, measurement_noise_db=0.3, tx_offsets_db=range(-4, 13))
    assert result.after.tx_power_dbm == pytest.approx(26.0, abs=2.0)
    assert result.after.measurement_noise_db == 0.3
    before = {d.statistic: d.ks for d in result.distances_before}
    after = {d.statistic: d.ks for d in result.distances_after}
    assert after["snr_db"] < before["snr_db"] and after["spread_db"] < before["spread_db"]


def _store(path: Path, source: str, rsrp: list[np.ndarray], noiseless: bool) -> Path:
    attrs = {
        "source": source,
        "scenario_name": source,
        "modalities": json.dumps(["rsrp_noiseless_dbm"] if noiseless else []),
        "carrier_hz": 60e9,
        "bandwidth_hz": 1e8,
        "noise_figure_db": 7.0,
        "noise_power_dbm": -87.0,
        "tx_power_dbm": 20.0,
        "measurement_noise_db": 0.5,
        "frame_rate_hz": 10.0,
        "num_beams": 64,
    }
    episodes = []
    for i, sweep in enumerate(rsrp):
        data = {"t": np.arange(len(sweep)) / 10.0, "rsrp_dbm": sweep.astype(np.float32)}
        data["best_beam"] = np.argmax(sweep, axis=1).astype(np.int16)
        if noiseless:
            data["rsrp_noiseless_dbm"] = sweep.astype(np.float32)
        episodes.append(Episode(f"d{i}", data))
    return write_store(path, attrs, {}, episodes)


def test_cli_prints_distances_and_writes_the_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    real = _store(tmp_path / "real.h5", "deepsense", [_static_link(200, 32, 0.2, rng)], noiseless=False)
    twin_sweeps = [d.rsrp_noiseless_dbm for d in _moving_link(rng)]
    twin = _store(tmp_path / "twin.h5", "twin", twin_sweeps, noiseless=True)
    out = tmp_path / "out"

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "twin.compare", *args, f"store={twin}", f"hydra.run.dir={out}"]
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)

    result = run(f"real={real}", "calibrate=true")
    assert result.returncode == 0, result.stderr
    printed = result.stdout
    assert (
        "KS D" in printed and "spread_db" in printed and "calibration    radio.tx_power_dbm 20 ->" in printed
    )
    report = json.loads((out / "compare.json").read_text())
    assert {d["statistic"] for d in report["distances"]} >= {"spread_db", "dwell_s", "blockage_depth_db"}
    assert (out / "compare.png").stat().st_size > 10_000
    missing = run(f"real={tmp_path / 'nope'}")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: real") and missing.stderr.count("\n") == 1


def test_compare_reports_every_statistic() -> None:
    rng = np.random.default_rng(6)
    a = sweep_statistics([Drive(np.arange(300) / 10, _static_link(300, 30, 0.3, rng))], -87.0, 10.0, "a")
    b = sweep_statistics([Drive(np.arange(300) / 10, _static_link(300, 30, 0.3, rng))], -87.0, 10.0, "b")
    distances = {d.statistic: d for d in compare(a, b)}
    assert distances["spread_db"].ks < 0.15  # two draws of the same link are close
    assert np.isnan(distances["blockage_depth_db"].ks)  # no drop events on either side

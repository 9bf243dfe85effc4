"""Faults: configuration errors, rates within statistical tolerance, seeds, and their effect on sweeps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from twin.benchmarks.synthetic import synthetic_store
from twin.errors import ConfigError
from twin.loop.drives import load_drives
from twin.loop.faults import (
    blockage_schedule,
    blocked_sweeps,
    burst_mask,
    corrupt,
    dropout_schedule,
    schedules,
)
from twin.radio.codebook import Codebook, UniformLinearArray
from twin.scenario.config import ScenarioConfig, config_digest, scenario_from_dict, scenario_to_dict
from twin.scenario.faults import BlockageFaultConfig, DropoutConfig, faults_from


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_store(tmp_path_factory.mktemp("faults") / "s.h5", drives=2, frames=30)


@pytest.fixture(scope="module")
def replay_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_store(tmp_path_factory.mktemp("faults") / "r.h5", drives=2, frames=30, channel=False)


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (
            {"dropout": {"camera": {"mode": "broken"}}},
            "faults.dropout.camera.mode = 'broken': expected one of",
        ),
        (
            {"dropout": {"lidar": {"probability": 1.5}}},
            "faults.dropout.lidar.probability = 1.5: expected a value in [0, 1]",
        ),
        (
            {"dropout": {"sonar": {}}},
            "faults.dropout.sonar: unknown key; allowed keys: camera, lidar, radar, gps",
        ),
        ({"blockage": {"rate_per_s": -1}}, "faults.blockage.rate_per_s = -1: expected a value in [0, 100]"),
        (
            {"blockage": {"duration_s": [2.0, 1.0]}},
            "faults.blockage.duration_s = [2.0, 1.0]: expected a pair",
        ),
        (
            {"blockage": {"duration_s": [0.0, 1.0], "duration_distribution": "log_uniform"}},
            "faults.blockage.duration_s = [0.0, 1.0]: expected min > 0",
        ),
        (3, "faults = 3: expected a mapping"),
    ],
)
def test_bad_fault_values_name_key_value_and_allowed(faults: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        faults_from(faults)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_faults_live_in_the_scenario_but_not_in_the_dataset_hash(tiny: ScenarioConfig) -> None:
    data = scenario_to_dict(tiny)
    data["faults"] = {
        "blockage": {"rate_per_s": 0.7},
        "dropout": {"gps": {"probability": 0.4, "mode": "partial"}},
    }
    changed = scenario_from_dict(data)
    assert changed.faults.blockage.rate_per_s == 0.7 and changed.faults.dropout.gps.mode == "partial"
    assert config_digest(changed) == config_digest(tiny)
    assert config_digest(dataclasses.replace(tiny, seed=tiny.seed + 1)) != config_digest(tiny)
    with pytest.raises(ConfigError, match=r"scenario.faults.dropout.gps.mode = 'gone'"):
        scenario_from_dict({**data, "faults": {"dropout": {"gps": {"mode": "gone"}}}}, source="scenario")


@pytest.mark.parametrize(("probability", "burst"), [(0.1, 5.0), (0.3, 2.0), (0.5, 10.0)])
def test_dropout_bursts_hit_the_configured_share_and_length(probability: float, burst: float) -> None:
    mask = burst_mask(probability, burst, 400_000, np.random.default_rng(1))
    assert mask.mean() == pytest.approx(probability, abs=0.02)
    starts = np.flatnonzero(mask[1:] & ~mask[:-1])
    assert mask.sum() / len(starts) == pytest.approx(burst, rel=0.08)


def test_dropout_extremes() -> None:
    rng = np.random.default_rng(0)
    assert not burst_mask(0.0, 3, 50, rng).any() and burst_mask(1.0, 3, 50, rng).all()
    assert burst_mask(0.9, 1, 100_000, rng).mean() == pytest.approx(0.9, abs=0.02)  # bursts lengthened


def test_blockage_events_start_at_the_configured_rate() -> None:
    config = BlockageFaultConfig(rate_per_s=0.4, duration_s=(0.5, 1.5))
    t = np.arange(100) / 10.0  # 10 s drives
    rng = np.random.default_rng(2)
    events = [blockage_schedule(config, t, rng).events_s for _ in range(2000)]
    count = sum(len(e) for e in events)
    expected = 0.4 * 10.0 * 2000
    assert abs(count - expected) < 4 * np.sqrt(expected)  # Poisson: 4 sigma
    durations = np.concatenate([e[:, 1] - e[:, 0] for e in events if len(e)])
    assert durations.min() >= 0.5 and durations.max() <= 1.5
    assert durations.mean() == pytest.approx(1.0, abs=0.03)
    # Frames are blocked exactly while an event covers their time.
    schedule = blockage_schedule(config, t, np.random.default_rng(5))
    covered = ((t[:, None] >= schedule.events_s[:, 0]) & (t[:, None] < schedule.events_s[:, 1])).any(1)
    np.testing.assert_array_equal(schedule.active, covered)


def test_log_uniform_durations_stay_in_range() -> None:
    config = BlockageFaultConfig(rate_per_s=5.0, duration_s=(0.1, 10.0), duration_distribution="log_uniform")
    events = blockage_schedule(config, np.arange(1000) / 10.0, np.random.default_rng(0)).events_s
    durations = events[:, 1] - events[:, 0]
    assert durations.min() >= 0.1 and durations.max() <= 10.0
    assert np.median(durations) == pytest.approx(1.0, rel=0.2)  # geometric mean of the range


def test_schedules_are_reproducible_by_seed_and_streams_independent() -> None:
    faults = faults_from(
        {
            "blockage": {"rate_per_s": 1.0},
            "dropout": {"camera": {"probability": 0.3}, "gps": {"probability": 0.3}},
        }
    )
    t = np.arange(200) / 10.0
    modalities = ("camera", "gps")
    a = schedules(faults, t, modalities, 10.0, seed=7, episode=3)
    b = schedules(faults, t, modalities, 10.0, seed=7, episode=3)
    c = schedules(faults, t, modalities, 10.0, seed=8, episode=3)
    np.testing.assert_array_equal(a.blockage.active, b.blockage.active)
    np.testing.assert_array_equal(a.dropouts["camera"].active, b.dropouts["camera"].active)
    assert not np.array_equal(a.dropouts["camera"].active, c.dropouts["camera"].active)
    # Switching the camera's dropout off changes neither the blockage nor the GPS draws.
    without_camera = faults.with_dropout("camera", probability=0.0)
    d = schedules(without_camera, t, modalities, 10.0, seed=7, episode=3)
    assert "camera" not in d.dropouts
    np.testing.assert_array_equal(a.blockage.active, d.blockage.active)
    np.testing.assert_array_equal(a.dropouts["gps"].active, d.dropouts["gps"].active)


def test_injected_blockage_cuts_paths_and_h_is_recomputed(store: Path) -> None:
    replay = load_drives(store)
    context, drive = replay.context, replay.drives[0]
    active = np.zeros(drive.num_frames, bool)
    active[10:15] = True
    config = BlockageFaultConfig(rate_per_s=1.0, attenuation_db=30.0, half_width_deg=0.0)  # the LoS path only
    true, measured, used_paths = blocked_sweeps(drive, context, config, active, np.random.default_rng(0))
    assert used_paths
    np.testing.assert_array_equal(true[~active], drive.true_dbm[~active].astype(np.float64))
    # By hand: h with the LoS path scaled by -30 dB in amplitude.
    p = drive.paths
    array = UniformLinearArray(16, 0.5, context.array.position, context.array.yaw_rad)
    gain = p.gain.astype(np.complex128) * np.where(p.is_los, 10 ** (-30 / 20), 1.0)
    h = np.einsum("tl,tln->tn", gain, array.steering(array.sin_angle(p.departure.astype(np.float64))))
    codebook = Codebook(np.deg2rad(context.angles_deg), context.weights)
    expected = context.tx_power_dbm + 10 * np.log10(codebook.beamforming_gain(h))
    np.testing.assert_allclose(true[active], expected[active], atol=1e-3)
    assert (drive.true_dbm[active].max(1) - true[active].max(1)).min() > 3  # the best beam lost power
    # Measurement: signal + thermal noise with the detector's error, redrawn per seed.
    with_noise = 10 * np.log10(10 ** (true / 10) + 10 ** (context.noise_power_dbm / 10))
    assert measured.dtype == np.float32 and np.abs(measured - with_noise).max() < 6 * 0.5
    again = blocked_sweeps(drive, context, config, active, np.random.default_rng(0))[1]
    np.testing.assert_array_equal(measured, again)


def test_without_paths_blockage_attenuates_measured_rsrp(replay_store: Path) -> None:
    replay = load_drives(replay_store)
    context, drive = replay.context, replay.drives[0]
    assert drive.paths is None and context.truth == "measured"
    active = np.zeros(drive.num_frames, bool)
    active[12:17] = True  # the UE passes in front of the base station
    config = BlockageFaultConfig(rate_per_s=1.0, attenuation_db=20.0, half_width_deg=5.0)
    true, measured, used_paths = blocked_sweeps(drive, context, config, active, np.random.default_rng(0))
    assert not used_paths
    np.testing.assert_allclose(true, measured, atol=1e-4)
    np.testing.assert_allclose(true[~active], drive.measured_dbm[~active], atol=1e-4)
    drop = drive.measured_dbm[active] - true[active]
    assert drop.max() > 10 and np.all(drop >= -1e-4)
    # Only beams aimed within ±5 degrees of the UE lose power.
    hit = (drop > 1e-3).sum(axis=1)
    assert np.all(hit <= 8)


def test_corruption_modes() -> None:
    frames = 6
    config = DropoutConfig(probability=1.0, burst_s=1.0, mode="noisy", noise_std=0.2, fraction=0.5)
    rng = np.random.default_rng(0)
    image = np.full((8, 12, 3), 100, np.uint8)
    noisy = corrupt("camera", image, 0, dropout_schedule("camera", config, frames, 10.0, rng), config)
    assert noisy.dtype == np.uint8 and noisy.shape == image.shape and not np.array_equal(noisy, image)
    partial = dataclasses.replace(config, mode="partial")
    occluded = corrupt("camera", image, 2, dropout_schedule("camera", partial, frames, 10.0, rng), partial)
    assert (occluded == 0).all(axis=2).mean() == pytest.approx(0.5, abs=0.1)
    points = np.zeros((100, 4), np.float32)
    points[:80] = 1.0
    lost = corrupt("lidar", points, 1, dropout_schedule("lidar", partial, frames, 10.0, rng), partial)
    kept = np.any(lost != 0, axis=1)
    assert 20 < kept.sum() < 60 and kept[: kept.sum()].all()  # survivors first, zero padding after
    cube = np.ones((4, 8, 16, 2), np.float32)
    chirps = corrupt("radar", cube, 1, dropout_schedule("radar", partial, frames, 10.0, rng), partial)
    assert 0 < (chirps[0, 0, :, 0] == 0).sum() < 16
    missing = dataclasses.replace(config, mode="missing")
    assert not corrupt("radar", cube, 0, dropout_schedule("radar", missing, frames, 10.0, rng), missing).any()
    # Frozen and GPS outages deliver the frame before the burst (index `source`), unchanged.
    gps_outage = dataclasses.replace(config, probability=0.5, burst_s=0.3, mode="partial")
    schedule = dropout_schedule("gps", gps_outage, 1000, 10.0, rng)
    starts = np.flatnonzero(schedule.active & ~np.concatenate([[False], schedule.active[:-1]]))
    starts = starts[starts > 0]
    np.testing.assert_array_equal(schedule.source[starts], starts - 1)
    assert schedule.masked[schedule.active].all()
    frozen = dataclasses.replace(gps_outage, mode="frozen")
    assert not dropout_schedule("camera", frozen, 100, 10.0, rng).masked.any()  # frozen looks valid

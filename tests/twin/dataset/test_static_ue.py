"""A static UE (traffic.static_ue): the store's `blocked` label agrees with the traced geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, replace
from twin.dataset.generation import generate
from twin.errors import ConfigError
from twin.scenario.config import LaneConfig, ScenarioConfig, config_digest, load_scenario, scenario_from_dict
from twin.store import TwinStore
from twin.trace.scene import load_vehicle_models
from twin.trace.traffic import make_run, ue_antennas


def _street(tiny: ScenarioConfig, empty: float) -> ScenarioConfig:
    """The tiny street with one lane of buses between the base station and a UE standing across it."""
    return replace(
        tiny,
        name="static_ue",
        **{
            "street.lanes": (LaneConfig(offset_m=0.0, direction=1),),
            "traffic.static_ue.enabled": True,
            "traffic.static_ue.position_m": (0.0, 9.0, 1.2),
            "traffic.served_per_run": 1,
            "traffic.vehicles_per_lane": 1,
            "traffic.mix": {"bus": 1.0},
            "traffic.empty_lane_probability": empty,
            "base_station.position_m": (0.0, -9.0, 1.2),
            "dataset.drives": 1,
            "dataset.frames_per_drive": 3,
            "sensors.camera.enabled": False,
            "sensors.lidar.enabled": False,
            "sensors.radar.enabled": False,
        },
    )


def _labels(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with TwinStore(path) as store:
        (episode,) = store.episode_ids
        ep = store.episode(episode, fields=["blocked", "los", "ue_pos"])
    return ep["blocked"], ep["los"], ep["ue_pos"]


def test_a_bus_between_ue_and_base_station_sets_blocked(tiny: ScenarioConfig, tmp_path: Path) -> None:
    cfg = _street(tiny, empty=0.0)
    run = make_run(cfg, 0, {k: m.size_m for k, m in load_vehicle_models(cfg).items()})
    (bus,) = [i for i, v in enumerate(run.vehicles) if not v.served]
    half_length = run.vehicles[bus].size_m[0] / 2
    assert np.all(np.abs(run.positions[:, bus, 0]) < half_length)  # the 12 m bus covers x = 0 throughout
    blocked, los, ue = _labels(generate(cfg, tmp_path, progress=False)[0])
    np.testing.assert_allclose(ue, [[0.0, 9.0, 1.2]] * 3, atol=1e-6)  # the antenna stands still
    assert blocked.all() and not los.any()  # the label and the traced line of sight agree


def test_an_empty_street_leaves_the_link_clear(tiny: ScenarioConfig, tmp_path: Path) -> None:
    blocked, los, _ = _labels(generate(_street(tiny, empty=1.0), tmp_path, progress=False)[0])
    assert not blocked.any() and los.all()


def test_the_parked_car_stands_behind_the_antenna(tiny: ScenarioConfig) -> None:
    cfg = _street(tiny, empty=1.0)
    run = make_run(cfg, 0, {k: m.size_m for k, m in load_vehicle_models(cfg).items()})
    (served,) = run.served
    car = run.vehicles[served]
    assert car.served and np.all(run.velocities[:, served] == 0)
    assert run.positions[0, served, 1] - car.size_m[1] / 2 > 9.0  # beyond the antenna, off the street
    antennas = ue_antennas(run, cfg.traffic, cfg.base_station.position_m)
    assert antennas.yaws[0] == pytest.approx(-np.pi / 2)  # facing the base station at smaller y


def test_static_ue_needs_one_served_ue_per_run() -> None:
    data = {"name": "x", "traffic": {"static_ue": {"enabled": True}, "served_per_run": 2}}
    with pytest.raises(ConfigError, match="served_per_run = 2: expected 1 with static_ue on"):
        scenario_from_dict(data, "x")


def test_scenarios_without_a_static_ue_keep_their_digest() -> None:
    cfg = load_scenario(REPO / "scenarios" / "urban_street.yaml")
    # urban_street's config digest before traffic.static_ue existed
    assert config_digest(cfg) == "94a037c5d5345bfde63c5bb809fcaee96114435ab39eae896fcacbfca45f2b44"
    assert config_digest(replace(cfg, **{"traffic.static_ue.enabled": True})) != config_digest(cfg)

"""LiDAR geometry against known surfaces and vehicle poses."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import replace
from tests.twin.sensors.conftest import CAR, lone_car
from twin.scenario.config import ScenarioConfig
from twin.sensors.base import FrameState
from twin.sensors.lidar import Lidar, beam_directions
from twin.sensors.raycast import BUILDING_LABEL, GROUND_LABEL
from twin.trace.scene import TwinScene


@pytest.fixture(scope="module")
def setup(tiny: ScenarioConfig) -> tuple[ScenarioConfig, TwinScene]:
    cfg = replace(
        tiny,
        **{
            "buildings.gap_m": (0.0, 0.0),  # an unbroken facade on each side
            "sensors.lidar.channels": 16,
            "sensors.lidar.azimuth_steps": 360,
            "sensors.lidar.range_noise_m": 0.02,
        },
    )
    return cfg, TwinScene(cfg, pool={"car": 1})


def test_beams_cover_the_configured_field_of_view(tiny: ScenarioConfig) -> None:
    directions = beam_directions(tiny.sensors.lidar)
    assert directions.shape == (8 * 128, 3)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
    elevation = np.rad2deg(np.arcsin(directions[:, 2]))
    assert elevation.min() == pytest.approx(-22.5) and elevation.max() == pytest.approx(22.5)


def test_wall_returns_lie_at_the_facade_distance(setup: tuple[ScenarioConfig, TwinScene]) -> None:
    cfg, twin = setup
    run = lone_car([40.0])  # the car is out of the way
    twin.pose(run, 0)
    out = Lidar(cfg, twin)(FrameState(twin, run, 0))
    n = int(out["lidar_count"])
    points, labels = out["lidar"][:n], out["lidar_object"][:n]
    origin = np.asarray(cfg.sensors.lidar.position_m)
    facade = cfg.street.width_m / 2 + cfg.street.sidewalk_m + cfg.buildings.setback_m
    # Below the lowest roof only the facade is visible (higher up, a taller neighbour's side wall is).
    below_roofs = points[:, 2] + origin[2] < cfg.buildings.height_m[0]
    near_wall = (labels == BUILDING_LABEL) & (points[:, 1] + origin[1] < 0) & below_roofs
    assert near_wall.sum() > 50
    y = points[near_wall, 1] + origin[1]
    assert np.all(np.abs(y + facade) < 5 * 0.02)
    assert np.std(y) == pytest.approx(0.02, rel=0.5)  # the configured range noise shows
    ground = labels == GROUND_LABEL
    assert np.all(np.abs(points[ground, 2] + origin[2]) < 5 * 0.02)
    assert np.all(out["lidar_object"][n:] == -3) and np.all(out["lidar"][n:] == 0)


def test_points_of_the_car_cluster_at_its_pose(setup: tuple[ScenarioConfig, TwinScene]) -> None:
    cfg, twin = setup
    lidar = Lidar(cfg, twin)
    run = lone_car([-6.0, 4.0])
    centres = []
    for frame in range(2):
        twin.pose(run, frame)
        out = lidar(FrameState(twin, run, frame))
        n = int(out["lidar_count"])
        car = out["lidar"][:n][out["lidar_object"][:n] == 0, :3] + np.asarray(cfg.sensors.lidar.position_m)
        assert len(car) > 20
        position = run.positions[frame, 0]
        assert np.all(np.abs(car[:, 0] - position[0]) <= CAR[0] / 2 + 0.1)
        assert np.all(np.abs(car[:, 1] - position[1]) <= CAR[1] / 2 + 0.1)
        assert np.all((car[:, 2] > 0.2) & (car[:, 2] < CAR[2] + 0.1))
        centres.append(car[:, 0].mean())
    assert centres[1] - centres[0] == pytest.approx(10.0, abs=1.5)  # moved with the car

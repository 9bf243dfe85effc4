"""Camera: pinhole projection lands on the right object; images are plausible and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import replace
from tests.twin.sensors.conftest import CAR, lone_car
from twin.scenario.config import ScenarioConfig
from twin.sensors.base import FrameState
from twin.sensors.camera import Camera, pixel_rays, project
from twin.trace.scene import TwinScene


@pytest.fixture(scope="module")
def setup(tiny: ScenarioConfig) -> tuple[ScenarioConfig, TwinScene]:
    cfg = replace(tiny, **{"sensors.camera.resolution": (160, 90)})
    return cfg, TwinScene(cfg, pool={"car": 1})


def test_pixel_rays_and_projection_are_inverse(setup: tuple[ScenarioConfig, TwinScene]) -> None:
    cfg, _ = setup
    camera = cfg.sensors.camera
    rays = pixel_rays(camera)
    points = np.asarray(camera.position_m) + 7.0 * rays
    uv = project(camera, points).reshape(90, 160, 2)
    cols, rows = np.meshgrid(np.arange(160) + 0.5, np.arange(90) + 0.5)
    np.testing.assert_allclose(uv[..., 0], cols, atol=1e-6)
    np.testing.assert_allclose(uv[..., 1], rows, atol=1e-6)
    assert np.isnan(project(camera, np.asarray(camera.position_m) - rays[:1])).all()  # behind


def test_projected_vehicle_centre_lands_on_the_vehicle_and_follows_it(
    setup: tuple[ScenarioConfig, TwinScene],
) -> None:
    cfg, twin = setup
    camera = Camera(cfg, twin)
    run = lone_car([-4.0, 5.0])
    pixels = []
    for frame in range(2):
        twin.pose(run, frame)
        rgb, labels, depth = camera.render(FrameState(twin, run, frame))
        centre = run.positions[frame, 0] + [0.0, 0.0, CAR[2] / 2]
        col, row = project(cfg.sensors.camera, centre).astype(int)
        assert labels[row, col] == 0  # the car, vehicle index 0
        expected = np.linalg.norm(centre - cfg.sensors.camera.position_m)
        assert depth[row, col] < expected  # its near side is in front of its centre
        assert rgb.shape == (90, 160, 3) and rgb.dtype == np.uint8
        pixels.append(col)
        assert (labels == 0).sum() > 30
    assert pixels[1] != pixels[0]


def test_day_and_night_differ_and_rendering_is_deterministic(setup: tuple[ScenarioConfig, TwinScene]) -> None:
    cfg, twin = setup
    run = lone_car([0.0])
    twin.pose(run, 0)
    state = FrameState(twin, run, 0)
    day = Camera(cfg, twin).render(state)[0]
    again = Camera(cfg, twin).render(state)[0]
    night_cfg = replace(cfg, **{"sensors.camera.lighting": "night"})
    night = Camera(night_cfg, twin).render(state)[0]
    np.testing.assert_array_equal(day, again)
    assert night.mean() < 0.6 * day.mean()
    # The car stands out from the street behind it at day.
    labels = Camera(cfg, twin).render(state)[1]
    car_rgb = day[labels == 0].mean(axis=0)
    ground_rgb = day[labels == -1].mean(axis=0)
    assert np.abs(car_rgb - ground_rgb).max() > 30

"""One scene state per frame: channels, LiDAR, camera and GPS of frame t see the same vehicles."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import replace
from twin.dataset.generation import generate
from twin.scenario.config import GeodeticOrigin, ScenarioConfig
from twin.scenario.geodetic import geodetic_to_local
from twin.store import TwinStore


@pytest.fixture(scope="module")
def store_path(tiny: ScenarioConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = replace(tiny, **{"sensors.lidar.channels": 16, "sensors.lidar.azimuth_steps": 256})
    return generate(cfg, tmp_path_factory.mktemp("cache"), progress=False)[0]


def test_sensor_fields_are_stored_once_per_run(tiny: ScenarioConfig, store_path: Path) -> None:
    with TwinStore(store_path) as store:
        assert {"camera", "lidar", "lidar_count", "lidar_object", "gps", "gps_valid"} <= set(store.modalities)
        episode = store.episode(store.episode_ids[0])
        width, height = tiny.sensors.camera.resolution
        assert episode["camera"].shape == (tiny.dataset.frames_per_drive, height, width, 3)
        assert episode["lidar"].shape == (tiny.dataset.frames_per_drive, 16 * 256, 4)
        np.testing.assert_allclose(store.attrs["camera_intrinsics"][0, 2], width / 2)
    with h5py.File(store_path, "r") as f:
        links = [f["episodes"][e].get("camera", getlink=True) for e in f["episodes"]]
        assert all(isinstance(link, h5py.SoftLink) for link in links)
        assert len({link.path for link in links}) == tiny.num_runs  # shared by the drives of a run


def test_all_modalities_of_a_frame_see_the_same_vehicle_positions(
    tiny: ScenarioConfig, store_path: Path
) -> None:
    with TwinStore(store_path) as store:
        lidar_origin = np.asarray(store.attrs["lidar_position_m"])
        checked = 0
        lat, lon, alt = store.attrs["geodetic_origin"]
        origin = GeodeticOrigin(lat, lon, alt, float(store.attrs["geodetic_heading_deg"]))
        for episode in store.episodes():
            vehicle = int(episode.attrs["vehicle_index"])
            traffic = episode.groups["traffic"]
            footprint = traffic["positions"][:, vehicle]
            length, width, _ = traffic["sizes"][vehicle]
            # The channel's UE sits on the roof of the very car the traffic placed there.
            np.testing.assert_allclose(episode["ue_pos"][:, :2], footprint[:, :2], atol=1e-5)
            for t in range(episode.num_frames):
                n = int(episode["lidar_count"][t])
                mine = episode["lidar_object"][t, :n] == vehicle
                if mine.sum() < 5:
                    continue  # hidden behind another vehicle at this frame
                points = episode["lidar"][t, :n][mine, :3] + lidar_origin
                assert np.all(np.abs(points[:, 0] - footprint[t, 0]) <= length / 2 + 0.1)
                assert np.all(np.abs(points[:, 1] - footprint[t, 1]) <= width / 2 + 0.1)
                checked += 1
            fixes = episode["gps_valid"]
            reported = geodetic_to_local(origin, episode["gps"][fixes])
            error = reported - episode["ue_pos"][fixes, :2]
            assert np.abs(error).max() < 5 * tiny.sensors.gps.noise_m
    assert checked >= 10


def test_stored_sensor_frames_re_render_from_that_frames_traffic(
    tiny: ScenarioConfig, store_path: Path
) -> None:
    """Render frame t again from the stored traffic of frame t: camera and radar come out identical,
    so they were made from that very scene state (not the frame before or after)."""
    from twin.sensors.base import FrameState
    from twin.sensors.camera import Camera
    from twin.sensors.radar import FmcwRadar
    from twin.trace.scene import TwinScene, load_vehicle_models
    from twin.trace.traffic import make_run, pool_sizes

    cfg = replace(tiny, **{"sensors.lidar.channels": 16, "sensors.lidar.azimuth_steps": 256})
    sizes = {k: m.size_m for k, m in load_vehicle_models(cfg).items()}
    run = make_run(cfg, 1, sizes)
    twin = TwinScene(cfg, pool_sizes([make_run(cfg, r, sizes) for r in range(cfg.num_runs)]))
    camera, radar = Camera(cfg, twin), FmcwRadar(cfg, twin)
    with TwinStore(store_path) as store:
        episode = store.episode("run00001-ue00")
    np.testing.assert_allclose(episode.groups["traffic"]["positions"], run.positions, atol=1e-5)
    for t in (1, 3):
        twin.pose(run, t)
        state = FrameState(twin, run, t)
        np.testing.assert_array_equal(camera(state)["camera"], episode["camera"][t])
        np.testing.assert_array_equal(radar(state)["radar"], episode["radar"][t])
        assert not np.array_equal(episode["camera"][t], episode["camera"][t - 1])

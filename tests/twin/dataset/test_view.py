"""Drives as DeepSense sequences: passes through the base station's view, one UE (and its rig) per scene."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import replace
from twin.dataset.generation import generate
from twin.dataset.view import in_view, longest_stretch, plan_run
from twin.scenario.config import ScenarioConfig
from twin.sensors.raycast import RIG_LABEL
from twin.store import TwinStore
from twin.trace.scene import load_vehicle_models
from twin.trace.traffic import make_run

VIEW = {
    "dataset.view.enabled": True,
    "dataset.view.min_frames": 3,
    "dataset.frames_per_drive": 40,
    "dataset.drives": 2,
    "traffic.served_per_run": 1,
    "traffic.served_lanes": "random",
    "traffic.ue_rig.enabled": True,
    "traffic.ue_antenna_mount": "rig_side",
    "traffic.ue_antenna_pattern": "tr38901",
    "sensors.lidar.channels": 32,  # dense enough to see a 0.3 m rig at 12 m
    "sensors.lidar.azimuth_steps": 1024,
}


@pytest.fixture(scope="module")
def view_tiny(tiny: ScenarioConfig) -> ScenarioConfig:
    return replace(tiny, **VIEW)


@pytest.fixture(scope="module")
def view_store(view_tiny: ScenarioConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = generate(view_tiny, tmp_path_factory.mktemp("view"), progress=False, workers=1)
    return path


def _at_angle(config: ScenarioConfig, degrees: float, distance: float = 10.0) -> np.ndarray:
    bs = np.asarray(config.base_station.position_m, float)
    yaw = np.deg2rad(config.base_station.yaw_deg + degrees)
    return bs + distance * np.array([np.cos(yaw), np.sin(yaw), 0.0])


def test_the_view_is_the_sector_with_its_margin_and_the_camera(view_tiny: ScenarioConfig) -> None:
    rf_only = replace(view_tiny, **{"dataset.view.camera": False})  # sector ±45 plus 10 degrees
    angles = [0.0, 30.0, -50.0, 54.0, 56.0, -60.0, 120.0, 180.0]
    inside = in_view(rf_only, np.stack([_at_angle(rf_only, a) for a in angles]))
    assert inside.tolist() == [True, True, True, True, False, False, False, False]
    # The camera's 90 degree field of view is narrower than the widened sector.
    with_camera = in_view(view_tiny, np.stack([_at_angle(view_tiny, a) for a in (0.0, 40.0, 50.0)]))
    assert with_camera.tolist() == [True, True, False]


def test_a_drive_is_the_longest_stretch_inside_the_view() -> None:
    inside = np.array([0, 1, 1, 0, 1, 1, 1, 1, 0, 1], bool)
    assert longest_stretch(inside, 2, 100).tolist() == [4, 5, 6, 7]
    assert longest_stretch(inside, 2, 2).tolist() == [5, 6]  # centred when longer than allowed
    assert longest_stretch(inside, 5, 100).size == 0  # too short: no drive
    assert longest_stretch(np.zeros(5, bool), 1, 100).size == 0


def test_a_car_that_never_enters_the_view_gives_no_drive(view_tiny: ScenarioConfig) -> None:
    behind = replace(view_tiny, **{"base_station.yaw_deg": -90.0})  # the array faces away from the street
    sizes = {k: m.size_m for k, m in load_vehicle_models(behind).items()}
    plan = plan_run(behind, make_run(behind, 0, sizes), 1)
    assert plan.drives == () and plan.frames.size == 0
    facing = plan_run(view_tiny, make_run(view_tiny, 0, sizes), 1)
    assert len(facing.drives) == 1 and facing.frames.size >= 3


def test_every_frame_of_a_drive_lies_inside_the_view(view_tiny: ScenarioConfig, view_store: Path) -> None:
    with TwinStore(view_store) as store:
        assert len(store.episode_ids) == 2
        for episode_id in store.episode_ids:
            episode = store.episode(episode_id)
            assert in_view(view_tiny, episode["ue_pos"]).all()
            assert 3 <= len(episode["t"]) <= 40
            np.testing.assert_allclose(np.diff(episode["t"]), 0.1, atol=1e-9)


def test_each_drive_sees_exactly_one_rig_on_its_own_car(view_store: Path) -> None:
    with h5py.File(view_store, "r") as f:
        links = set()
        for episode_id, group in f["episodes"].items():
            links.add(group.get("camera", getlink=True).path)
            vehicle = int(group.attrs["vehicle_index"])
            positions, sizes = group["traffic/positions"][()], group["traffic/sizes"][()]
            points, labels, counts = group["lidar"][()], group["lidar_object"][()], group["lidar_count"][()]
            lidar = np.asarray(f.attrs["lidar_position_m"])
            seen = 0
            for frame in range(len(counts)):
                rig = labels[frame, : counts[frame]] == RIG_LABEL
                if not rig.any():
                    continue
                seen += 1
                hits = points[frame, : counts[frame]][rig, :3] + lidar
                car = positions[frame, vehicle]
                # Every rig point sits on top of the labelled car (within its footprint, above its roof).
                assert np.abs(hits[:, 0] - car[0]).max() < sizes[vehicle, 0] / 2
                assert np.abs(hits[:, 1] - car[1]).max() < sizes[vehicle, 1] / 2
                assert hits[:, 2].min() > sizes[vehicle, 2] - 0.05
            assert seen > 0, f"{episode_id}: the LiDAR never saw the rig"
        assert len(links) == len(f["episodes"])  # no two drives share a sensor frame


def _arrays(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return out


def test_two_worker_processes_write_the_same_store(
    view_tiny: ScenarioConfig, view_store: Path, tmp_path: Path
) -> None:
    path, stats = generate(view_tiny, tmp_path, progress=False, workers=2)
    assert stats.frames > 0 and path.name == view_store.name
    one, two = _arrays(view_store), _arrays(path)
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)

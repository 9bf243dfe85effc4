"""DeepVerse 6G replay on a small scenario folder in the `deepverse` package's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.twin.replay.conftest import write_jpg, write_ply
from twin.loop.env import BeamSelectionEnv
from twin.radio.codebook import Codebook, UniformLinearArray
from twin.replay import ReplayError, replay_store
from twin.store import TwinStore

savemat = pytest.importorskip("scipy.io").savemat  # scipy comes with sionna-rt

BS = np.array([0.0, 0.0, 5.0])
TX_DBM = 20.0
SCENES = [0, 1, 2, 4, 5]  # scene 3 missing: each UE's drive splits there


def ue_position(ue: int, scene: int) -> np.ndarray:
    return np.array([-10.0 + 2.0 * scene, 10.0 + 5.0 * ue, 1.5])


def path_row(tx: np.ndarray, rx: np.ndarray, power_dbm: float, phase_deg: float, los: bool) -> list[float]:
    """phase, ToA, power, DoA phi, DoA theta, DoD phi, DoD theta (degrees, theta from zenith), LoS."""
    d = rx - tx
    dist = np.linalg.norm(d)
    phi, theta = np.rad2deg(np.arctan2(d[1], d[0])), np.rad2deg(np.arccos(d[2] / dist))
    return [phase_deg, dist / 3e8, power_dbm, phi + 180, 180 - theta, phi, theta, float(los)]


def make_deepverse(root: Path, name: str = "Town-test", yaml_in_param: bool = False) -> Path:
    folder = root / name
    (folder / "wireless").mkdir(parents=True)
    modalities = [
        {"name": "camera", "path": "RGB_images", "sensors": [{"id": "cam1", "properties": {"FoV": 90}}]},
        {"name": "LiDAR", "path": "lidar", "sensors": [{"id": "bs1"}]},
    ]
    meta = folder / ("param/scenario.yaml" if yaml_in_param else "scenario.yaml")
    meta.parent.mkdir(exist_ok=True)
    meta.write_text(yaml.safe_dump({"modalities": modalities}))
    params = {"carrier_freq": 60e9, "transmit_power": TX_DBM, "num_BS": 1}
    # and the keys the deepverse package's own reader insists on
    params |= {"user_grids": np.array([[1, 1, 2]]), "doppler_available": 0, "dual_polar_available": 0}
    savemat(folder / "wireless" / "params.mat", params)
    (folder / "RGB_images" / "cam1").mkdir(parents=True)
    (folder / "lidar" / "bs1").mkdir(parents=True)
    for scene in SCENES:
        cells = np.empty((1, 2), dtype=object)
        rx = [ue_position(0, scene), ue_position(1, scene)]
        # UE 0: line of sight only; UE 1: line of sight and a weaker path off a wall at y = 30 m
        cells[0, 0] = {"p": np.array([path_row(BS, rx[0], -70.0, 10.0, True)]).T}
        mirror = rx[1] * [1, -1, 1] + [0, 60, 0]
        cells[0, 1] = {
            "p": np.array([path_row(BS, rx[1], -72.0, 0.0, True), path_row(BS, mirror, -80.0, 90.0, False)]).T
        }
        locs = np.array([[*p, np.linalg.norm(p - BS), 70.0] for p in rx])
        scene_dir = folder / "wireless" / f"scene_{scene}"
        scene_dir.mkdir()
        savemat(scene_dir / "BS1_UE_0-1.mat", {"channels": cells, "rx_locs": locs, "tx_loc": BS[None]})
        write_jpg(folder / "RGB_images" / "cam1" / f"{scene}.jpg", 20 * scene)
        write_ply(folder / "lidar" / "bs1" / f"{scene}.ply", np.full((2 + scene % 2, 4), float(scene)))
    return folder


def test_paths_become_codebook_sweeps_like_the_twin(tmp_path: Path) -> None:
    make_deepverse(tmp_path / "dv")
    path = replay_store(
        "deepverse",
        tmp_path / "dv",
        tmp_path / "cache",
        scenario="Town-test",
        bs_yaw_deg=90.0,
        resolution=[16, 9],
    )
    with TwinStore(path) as store:
        assert store.attrs["source"] == "deepverse"
        assert store.attrs["carrier_hz"] == 60e9 and store.attrs["tx_power_dbm"] == TX_DBM
        assert set(store.modalities) == {
            "ue_pos",
            "h",
            "rsrp_noiseless_dbm",
            "los",
            "camera",
            "lidar",
            "lidar_count",
        }
        assert store.episode_ids == ["ue0000-d0000", "ue0000-d0001", "ue0001-d0002", "ue0001-d0003"]
        first = store.episode("ue0000-d0000")
        weights = store.constant("codebook/weights")
    np.testing.assert_allclose(first["t"], [0.0, 0.1, 0.2])
    np.testing.assert_allclose(first["ue_pos"], [ue_position(0, s) for s in (0, 1, 2)], atol=1e-6)
    # one line-of-sight path of -70 dBm: |h|^2 = N x 10^((P - P_tx)/10), and the sweep is P_tx + |h^H w|^2
    np.testing.assert_allclose(
        np.sum(np.abs(first["h"]) ** 2, axis=1), 16 * 10 ** ((-70.0 - TX_DBM) / 10), rtol=1e-4
    )
    array = UniformLinearArray(16, 0.5, BS, np.deg2rad(90.0))
    codebook = Codebook.steering(array, 64, -45.0, 45.0)
    np.testing.assert_allclose(weights, codebook.weights, atol=1e-6)
    expected = TX_DBM + 10 * np.log10(codebook.beamforming_gain(first["h"].astype(np.complex128)))
    np.testing.assert_allclose(first["rsrp_noiseless_dbm"], expected, atol=1e-3)
    assert first["rsrp_noiseless_dbm"].max() <= -70.0 + 10 * np.log10(16) + 1e-3
    for frame, scene in enumerate((0, 1, 2)):  # the best beam points at the UE
        d = ue_position(0, scene) - BS
        theta = np.rad2deg(np.arcsin(array.sin_angle(d / np.linalg.norm(d))))
        assert abs(np.rad2deg(codebook.angles_rad[first["best_beam"][frame]]) - theta) < 1.5
    assert first["los"].all()
    assert first["camera"].shape == (3, 9, 16, 3)
    assert first["lidar"].shape == (3, 3, 4) and first["lidar_count"].tolist() == [2, 3, 2]
    assert first.groups["paths"]["gain"].shape == (3, 1)


def test_deepverse_drives_replay_with_path_based_blockage(tmp_path: Path) -> None:
    make_deepverse(tmp_path / "dv", yaml_in_param=True)  # param/scenario.yaml is accepted too
    path = replay_store("deepverse", tmp_path / "dv", tmp_path / "cache", scenario="Town-test", modalities=[])
    with TwinStore(path) as store:
        assert store.attrs["bs_yaw_source"] == "aimed at the UEs' mean bearing"
        assert set(store.modalities) == {"ue_pos", "h", "rsrp_noiseless_dbm", "los"}  # sensors not asked for
    env = BeamSelectionEnv(
        path, faults={"blockage": {"rate_per_s": 50.0, "duration_s": [0.5, 1.0], "attenuation_db": 30.0}}
    )
    assert env.context.truth == "noiseless" and env.modalities == ("position",)
    _, info = env.reset(seed=0, options={"episode": "ue0001-d0002"})
    assert info["blockage_model"] == "paths"  # the stored path table is cut, as on twin data
    _, reward, *_ = env.step(env.oracle_beam())
    assert np.isfinite(reward)


def test_deepverse_folder_errors_name_the_file(tmp_path: Path) -> None:
    folder = make_deepverse(tmp_path / "dv")
    (folder / "scenario.yaml").unlink()
    with pytest.raises(ReplayError, match=r"not a DeepVerse scenario folder; expected scenario.yaml"):
        replay_store("deepverse", tmp_path / "dv", tmp_path / "cache", scenario="Town-test")
    folder = make_deepverse(tmp_path / "dv2")
    broken = folder / "wireless" / "scene_2" / "BS1_UE_0-1.mat"
    broken.write_bytes(b"not a mat file")
    with pytest.raises(ReplayError, match=rf"{broken}: not a readable MATLAB file"):
        replay_store("deepverse", tmp_path / "dv2", tmp_path / "cache", scenario="Town-test")
    path = replay_store(
        "deepverse",
        tmp_path / "dv2",
        tmp_path / "cache",
        scenario="Town-test",
        skip_bad_files=True,
        modalities=[],
    )
    with TwinStore(path) as store:
        assert store.attrs["skipped_frames"] == 1  # the scene, for both UEs
        assert [store.episode(e).num_frames for e in store.episode_ids] == [2, 2, 2, 2]


def test_the_official_deepverse_package_reads_the_fixture_as_our_loader_does(tmp_path: Path) -> None:
    """The fixture is DeepVerse's layout, not our guess of it: the `deepverse` package's own readers
    (`ScenarioManager`, `RayTracingLoader`) find the same modalities, positions and paths."""
    pytest.importorskip("deepverse", reason="the official deepverse package is not installed")
    from deepverse.scenario.scenario_manager import ScenarioManager
    from deepverse.wireless.RayTracingLoader import RayTracingLoader

    from twin.replay.deepverse import _read_scene

    folder = make_deepverse(tmp_path / "dv", yaml_in_param=True)  # ScenarioManager reads param/
    manager = ScenarioManager(str(folder))
    assert set(manager.sensors) == {"camera", "LiDAR"}
    params = RayTracingLoader.load_scenario_params(str(folder / "wireless" / "params.mat"))
    assert params["carrier_freq"] == 60e9 and params["tx_power"] == TX_DBM
    for scene in SCENES:
        scene_dir = folder / "wireless" / f"scene_{scene}"
        ours = _read_scene(scene_dir, scene, 1, TX_DBM)
        # the package counts UEs as the largest rx_end (one short of the file's range), so ask for both
        theirs, tx_loc = RayTracingLoader(str(scene_dir)).load_data(0, np.arange(2))
        np.testing.assert_allclose(tx_loc, ours.tx_pos)
        np.testing.assert_allclose(theirs["location"], ours.ue_pos)
        for ue, paths in enumerate(theirs["paths"]):
            # the package's power is 10^(P/10) (dBm, its "+30" normalisation); ours is relative to P_tx
            np.testing.assert_allclose(paths["power"] / 10 ** (TX_DBM / 10), np.abs(ours.gains[ue]) ** 2)
            np.testing.assert_allclose(np.deg2rad(paths["phase"]), np.angle(ours.gains[ue]), atol=1e-9)
            np.testing.assert_allclose(paths["ToA"], ours.delays[ue])
            np.testing.assert_array_equal(paths["LoS"] > 0.5, ours.los[ue])
            phi, theta = np.deg2rad(paths["DoD_phi"]), np.deg2rad(paths["DoD_theta"])
            sin_theta = np.sin(theta)
            direction = np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), np.cos(theta)], -1)
            np.testing.assert_allclose(direction, ours.departures[ue], atol=1e-12)
            towards_ue = (ours.ue_pos[ue] - ours.tx_pos) / np.linalg.norm(ours.ue_pos[ue] - ours.tx_pos)
            np.testing.assert_allclose(ours.departures[ue][0], towards_ue, atol=1e-9)  # line of sight first

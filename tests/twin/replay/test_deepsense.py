"""DeepSense 6G replay on small fixtures in the published layouts: scenario, challenge, power files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.twin.replay.conftest import (
    BEAMS,
    RADAR,
    YAW_DEG,
    Frame,
    make_scenario,
    scenario_frames,
    sweep,
    write_frames,
    write_ply,
    write_power,
    write_scenario_csv,
)
from twin.errors import ConfigError
from twin.loop.env import BeamSelectionEnv
from twin.replay import ReplayError, replay_config_from, replay_store
from twin.store import TwinStore

OPTIONS = {"resolution": [32, 18], "radar_shape": list(RADAR)}


def convert(root: Path, cache: Path, **options: object) -> Path:
    return replay_store("deepsense", root, cache, **{**OPTIONS, **options})


def test_scenario_csv_becomes_schema_valid_drives(tmp_path: Path) -> None:
    _, frames = make_scenario(tmp_path / "data")
    path = convert(tmp_path / "data", tmp_path / "cache", scenario="scenario31")
    with TwinStore(path) as store:
        assert store.attrs["source"] == "deepsense"
        assert store.modalities == ["camera", "lidar", "lidar_count", "radar", "gps", "gps_valid"]
        assert store.episode_ids == ["scenario31-d0000", "scenario31-d0001"]  # seq_index 1, then 2
        first, second = (store.episode(e) for e in store.episode_ids)
        assert first.num_frames == 5 and second.num_frames == 3
        # 1-based at the DeepSense boundary, 0-based in the store
        np.testing.assert_array_equal(first["best_beam"], [f.beam for f in frames[:5]])
        np.testing.assert_array_equal(first.groups["source"]["label_beam"], [f.beam for f in frames[:5]])
        np.testing.assert_array_equal(first.groups["source"]["index"], [100, 101, 102, 103, 104])
        np.testing.assert_allclose(first["t"], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-9)  # from the time stamps
        assert first["camera"].shape == (5, 18, 32, 3) and first["camera"].dtype == np.uint8
        assert first["radar"].shape == (5, *RADAR) and first["radar"].dtype == np.complex64
        counts = np.concatenate([first["lidar_count"], second["lidar_count"]])
        assert first["lidar"].shape[1] == counts.max() == 6  # padded to the largest cloud
        assert np.all(first["lidar"][0, first["lidar_count"][0] :] == 0)
        assert first["gps_valid"].all()
        np.testing.assert_allclose(store.attrs["bs_latlon"], [33.4193, -111.9347])
        assert store.attrs["bs_yaw_deg"] == pytest.approx(YAW_DEG, abs=1.0)  # fitted from GPS + beams
        assert store.attrs["label_mismatches"] == 0
        # the calibration anchors the recorded noise floor to the thermal noise
        floor = 10 * np.log10(sweep(0).min())
        offset = store.attrs["rsrp_calibration_offset_db"]
        assert first["rsrp_dbm"].min() == pytest.approx(floor + offset, abs=0.01)
        assert store.attrs["noise_power_dbm"] == pytest.approx(-87.0)
        assert "lidar_object" not in store.modalities  # unknown for real clouds: absent, not faked


def test_conversion_is_cached_and_follows_the_files(tmp_path: Path) -> None:
    folder, _ = make_scenario(tmp_path / "data")
    first = convert(tmp_path / "data", tmp_path / "cache", scenario="scenario31", modalities=[])
    stamp = first.stat().st_mtime_ns
    assert convert(tmp_path / "data", tmp_path / "cache", scenario="scenario31", modalities=[]) == first
    assert first.stat().st_mtime_ns == stamp  # not converted again
    power = folder / "unit1" / "mmWave_data" / "mmWave_power_100.txt"
    write_power(power, sweep(3))
    os.utime(power, ns=(stamp + 10**9, stamp + 10**9))
    assert convert(tmp_path / "data", tmp_path / "cache", scenario="scenario31", modalities=[]) != first


def test_nan_powers_are_kept_flagged_and_relabelled(tmp_path: Path) -> None:
    frames = scenario_frames()
    folder = tmp_path / "data" / "scenario32"
    label = frames[2].beam
    write_frames(folder, frames, nan_beams={frames[2].index: [label, 0]})  # the labelled beam is NaN
    write_scenario_csv(folder, frames)
    path = convert(tmp_path / "data", tmp_path / "cache", scenario="scenario32", modalities=[])
    with TwinStore(path) as store:
        assert store.attrs["invalid_power_frames"] == 1
        episode = store.episode(store.episode_ids[0])
        rsrp = episode["rsrp_dbm"][2]
        assert np.isnan(rsrp[label]) and np.isnan(rsrp[0])
        assert episode.groups["source"]["invalid_beams"].tolist() == [0, 0, 2, 0, 0]
        assert episode["best_beam"][2] == int(np.nanargmax(rsrp))  # nanargmax, not the published label
        assert episode["best_beam"][2] in (label - 1, label + 1)
    env = BeamSelectionEnv(path)  # NaN beams read as "no signal" in the loop
    env.reset(seed=0, options={"episode": 0})
    for _ in range(5):
        _, reward, *_ = env.step(label)
        assert np.isfinite(reward)


@pytest.mark.parametrize("bad", ["../../outside.txt", "./unit1/../../../outside.txt", "/etc/passwd"])
def test_paths_leaving_the_dataset_are_rejected(tmp_path: Path, bad: str) -> None:
    folder, frames = make_scenario(tmp_path / "data")
    (tmp_path / "outside.txt").write_text("\n".join(["0.1"] * BEAMS))
    rows = [{} for _ in frames]
    rows[3] = {"unit1_pwr_60ghz": bad}
    write_scenario_csv(folder, frames, rows)
    with pytest.raises(ReplayError) as info:
        convert(tmp_path / "data", tmp_path / "cache", scenario="scenario31")
    message = str(info.value)
    assert "row 4 column unit1_pwr_60ghz" in message and bad in message
    assert "leaves the dataset root" in message or "absolute path" in message


def test_missing_file_is_named_or_skipped_and_counted(tmp_path: Path) -> None:
    folder, _ = make_scenario(tmp_path / "data")
    missing = folder / "unit1" / "lidar_data" / "lidar_data_102.ply"
    missing.unlink()
    with pytest.raises(ReplayError, match=rf"{missing}: file not found \(scenario31_dev.csv row 3\)"):
        convert(tmp_path / "data", tmp_path / "cache", scenario="scenario31")
    path = convert(tmp_path / "data", tmp_path / "cache", scenario="scenario31", skip_bad_files=True)
    with TwinStore(path) as store:
        assert store.attrs["skipped_frames"] == 1
        assert str(missing) in json.loads(store.attrs["skipped_files"])[0]
        assert store.episode(store.episode_ids[0]).groups["source"]["index"].tolist() == [100, 101, 103, 104]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda f: write_power(f / "unit1/mmWave_data/mmWave_power_101.txt", np.ones(63)),
            "expected 64 power",
        ),
        (
            lambda f: write_ply(f / "unit1/lidar_data/lidar_data_101.ply", np.ones((3, 4)), declared=10),
            "truncated",
        ),
        (
            lambda f: np.save(f / "unit1/radar_data/radar_data_101.npy", np.zeros((4, 8, 5), np.complex64)),
            "shape",
        ),
        (
            lambda f: np.save(f / "unit1/radar_data/radar_data_101.npy", np.zeros(RADAR, np.float32)),
            "complex",
        ),
        (lambda f: (f / "unit1/camera_data/image_101.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage"), "image"),
        (
            lambda f: (f / "unit2/GPS_data/gps_location_101.txt").write_text("33.4\n"),
            "latitude and longitude",
        ),
        (lambda f: write_power(f / "unit1/mmWave_data/mmWave_power_101.txt", np.full(64, np.nan)), "NaN"),
    ],
)
def test_broken_files_get_one_line_naming_them(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    folder, _ = make_scenario(tmp_path / "data")
    damage(folder)
    with pytest.raises(ReplayError) as info:
        convert(tmp_path / "data", tmp_path / "cache", scenario="scenario31")
    assert message in str(info.value) and "_101." in str(info.value)
    assert "\n" not in str(info.value)


def _challenge_csv(root: Path, frames: list[Frame], labelled: bool = True) -> Path:
    """The 2022 challenge's windows over scenario31's frames: rows = 5 frames, in shuffled order."""
    columns = [f"unit1_{m}_{k}" for m in ("rgb", "lidar", "radar") for k in range(1, 6)]
    columns += ["unit1_loc", "unit2_loc_1", "unit2_loc_2"] + ["unit1_beam", "unit1_pwr_60ghz"] * labelled
    path = root / "ml_challenge_dev_multi_modal.csv"

    def rel(value: str) -> str:
        return "./scenario31/" + value[2:]

    rows = []
    for end in range(4, len(frames)):
        window = frames[end - 4 : end + 1]
        row = {f"unit1_rgb_{k + 1}": rel(f.files["unit1_rgb"]) for k, f in enumerate(window)}
        row |= {f"unit1_lidar_{k + 1}": rel(f.files["unit1_lidar"]) for k, f in enumerate(window)}
        row |= {f"unit1_radar_{k + 1}": rel(f.files["unit1_radar"]) for k, f in enumerate(window)}
        row |= {
            "unit1_loc": rel(window[0].files["unit1_loc"]),
            "unit2_loc_1": rel(window[0].files["unit2_loc"]),
            "unit2_loc_2": rel(window[1].files["unit2_loc"]),
        }
        if labelled:
            row |= {
                "unit1_beam": window[-1].beam + 1,
                "unit1_pwr_60ghz": rel(window[-1].files["unit1_pwr_60ghz"]),
            }
        rows.append(row)
    rows = rows[::-1]  # splits are shuffled
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_challenge_windows_become_their_labelled_frames(tmp_path: Path) -> None:
    root = tmp_path / "challenge"
    folder, frames = make_scenario(root)
    (folder / "scenario31_dev.csv").unlink()  # the challenge ships its own CSVs
    _challenge_csv(root, frames)
    path = convert(root, tmp_path / "cache")
    with TwinStore(path) as store:
        assert store.attrs["layout"] == "challenge CSV"
        (episode_id,) = store.episode_ids  # rows sorted back into one contiguous drive
        episode = store.episode(episode_id)
        np.testing.assert_array_equal(episode.groups["source"]["index"], [104, 105, 106, 107])
        np.testing.assert_array_equal(episode["best_beam"], [f.beam for f in frames[4:]])
        assert episode["camera"].shape[0] == 4
        # GPS is the window's latest fix (unit2_loc_2: frame 2 of 5), as the challenge gives it
        from tests.twin.replay.conftest import ORIGIN
        from twin.scenario.geodetic import geodetic_to_local

        local = geodetic_to_local(ORIGIN, episode["gps"])
        np.testing.assert_allclose(local, [f.xy for f in frames[1:5]], atol=1e-3)


def test_unlabelled_challenge_split_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "challenge"
    folder, frames = make_scenario(root)
    (folder / "scenario31_dev.csv").unlink()
    _challenge_csv(root, frames, labelled=False)
    with pytest.raises(ReplayError, match="unlabelled challenge split"):
        convert(root, tmp_path / "cache")


def _power_files(folder: Path, sweeps: dict[int, np.ndarray]) -> None:
    (folder / "unit1" / "mmWave_data").mkdir(parents=True)
    for i, values in sweeps.items():
        path = folder / "unit1" / "mmWave_data" / f"mmWave_power_{i}.txt"
        path.write_text("\n".join(str(v) for v in values) + "\n")  # str: 1e300, inf as written


def test_absurd_and_infinite_powers_are_flagged_like_nan_and_never_scored(tmp_path: Path) -> None:
    sweeps = {i: sweep(32) for i in range(1, 11)}
    sweeps[3] = sweep(32).astype(object)
    sweeps[3][5] = "1e300"  # a finite number no detector reports: 2954 dBm once calibrated
    sweeps[6] = sweep(32).astype(object)
    sweeps[6][40] = "1e400"  # overflows to +inf
    _power_files(tmp_path / "data" / "scenario17", sweeps)
    path = convert(tmp_path / "data", tmp_path / "cache", scenario="scenario17")
    with TwinStore(path) as store:
        assert store.attrs["invalid_power_frames"] == 2 and store.attrs["implausible_power_values"] == 1
        episode = store.episode(store.episode_ids[0])
    rsrp = episode["rsrp_dbm"]
    assert np.isnan(rsrp[2, 5]) and np.isnan(rsrp[5, 40])
    assert np.nanmax(rsrp) < -50 and (episode["best_beam"] == 32).all()  # labels unchanged
    assert episode.groups["source"]["invalid_beams"].tolist() == [0, 0, 1, 0, 0, 1, 0, 0, 0, 0]
    env = BeamSelectionEnv(path)
    env.reset(seed=0, options={"episode": 0})
    rates = [env.step(env.oracle_beam())[4]["oracle_rate"] for _ in range(10)]
    assert np.ptp(rates) < 1e-6  # every frame the same link: the flagged frames score no higher


def test_a_sweep_without_one_usable_power_is_a_bad_file(tmp_path: Path) -> None:
    sweeps = {i: sweep(32) for i in range(1, 6)}
    sweeps[4] = np.full(64, np.inf)
    folder = tmp_path / "data" / "scenario17"
    _power_files(folder, sweeps)
    bad = folder / "unit1" / "mmWave_data" / "mmWave_power_4.txt"
    message = f"{bad}: no beam power is finite, positive and plausible (at most 100 dBm calibrated)"
    with pytest.raises(ReplayError) as refused:
        convert(tmp_path / "data", tmp_path / "cache", scenario="scenario17")
    assert str(refused.value) == f"{message} (mmWave_power_4.txt)"
    assert not list((tmp_path / "cache").glob("*.h5"))  # nothing written
    path = convert(tmp_path / "data", tmp_path / "cache", scenario="scenario17", skip_bad_files=True)
    with TwinStore(path) as store:
        assert store.attrs["skipped_frames"] == 1
        assert [store.episode(e).num_frames for e in store.episode_ids] == [3, 1]  # 4 is a gap now


def test_power_files_only_split_at_numbering_gaps_and_mask_sensors(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "scenario17"
    (folder / "unit1" / "mmWave_data").mkdir(parents=True)
    for i in [1, 2, 3, 4, 9, 10, 11]:
        write_power(folder / "unit1" / "mmWave_data" / f"mmWave_power_{i}.txt", sweep(32))
    path = convert(tmp_path / "data", tmp_path / "cache", scenario="scenario17")
    with TwinStore(path) as store:
        assert store.modalities == []  # wireless only: every sensor masked
        assert [store.episode(e).num_frames for e in store.episode_ids] == [4, 3]
        assert (store.episode(store.episode_ids[1])["best_beam"] == 32).all()
        assert "bs_yaw_deg" not in store.attrs  # no GPS: no pose is invented
    env = BeamSelectionEnv(path)
    assert env.modalities == () and env.mask_names == ("rsrp",)
    sliced = convert(tmp_path / "data", tmp_path / "cache", scenario="scenario17", offset=2, limit=4)
    with TwinStore(sliced) as store:
        assert [store.episode(e).groups["source"]["index"].tolist() for e in store.episode_ids] == [
            [3, 4],
            [9, 10],
        ]
    split = convert(tmp_path / "data", tmp_path / "cache", scenario="scenario17", max_drive_frames=2)
    with TwinStore(split) as store:
        assert [store.episode(e).num_frames for e in store.episode_ids] == [2, 2, 2, 1]


def test_folders_that_are_not_recordings(tmp_path: Path) -> None:
    (tmp_path / "data" / "empty").mkdir(parents=True)
    with pytest.raises(ReplayError, match="not a DeepSense scenario folder"):
        convert(tmp_path / "data", tmp_path / "cache", scenario="empty")
    with pytest.raises(ReplayError, match=r"replay.scenario = 'nope': no such folder .*folders: empty"):
        convert(tmp_path / "data", tmp_path / "cache", scenario="nope")
    with pytest.raises(ReplayError, match=r"replay.scenario = '\.\./\.\.': path leaves the dataset root"):
        convert(tmp_path / "data", tmp_path / "cache", scenario="../..")
    with pytest.raises(ReplayError, match=r"replay.path = .*: folder not found"):
        convert(tmp_path / "missing", tmp_path / "cache")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"kind": "deepmimo", "path": "x"},
            "replay.kind = 'deepmimo': expected one of 'deepsense', 'deepverse'",
        ),
        ({"kind": "deepsense"}, "replay.path: missing; expected the deepsense dataset folder"),
        ({"path": "x", "resolution": [0, 5]}, "replay.resolution = [0, 5]: expected values in [8, 8192]"),
        ({"path": "x", "modalities": ["sonar"]}, "replay.modalities = ['sonar']: expected values among"),
        ({"path": "x", "colour": 1}, "replay.colour: unknown key"),
    ],
)
def test_options_are_validated_with_one_line_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        replay_config_from(options)
    assert message in str(info.value)

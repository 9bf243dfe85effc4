"""Reading stores: clear errors for anything that is not a complete, schema-valid dataset."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from twin.errors import StoreError
from twin.store import Episode, StoreWriter, TwinStore, write_store


def _attrs() -> dict:
    return {
        "source": "test",
        "modalities": '["los"]',
        "carrier_hz": 60e9,
        "bandwidth_hz": 1e8,
        "noise_figure_db": 7.0,
        "noise_power_dbm": -87.0,
        "tx_power_dbm": 20.0,
        "frame_rate_hz": 10.0,
        "num_beams": 4,
    }


def _episode(frames: int = 3, beams: int = 4) -> Episode:
    rsrp = np.arange(frames * beams, dtype=np.float32).reshape(frames, beams)
    return Episode(
        "ep0",
        {
            "t": np.arange(frames) / 10.0,
            "rsrp_dbm": rsrp,
            "best_beam": rsrp.argmax(-1).astype(np.int16),
            "los": np.ones(frames, bool),
        },
    )


def test_round_trip(tmp_path: Path) -> None:
    path = write_store(tmp_path / "a.h5", _attrs(), {}, [_episode()])
    with TwinStore(path) as store:
        assert store.episode_ids == ["ep0"]
        np.testing.assert_array_equal(store.episode("ep0")["best_beam"], [3, 3, 3])
    assert not (tmp_path / "a.h5.parts").exists()


def test_missing_and_non_hdf5_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"nope.h5: store not found"):
        TwinStore(tmp_path / "nope.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(StoreError, match=r"junk.h5: not a readable HDF5 file"):
        TwinStore(junk)


def test_incomplete_store_is_not_read_as_valid(tmp_path: Path) -> None:
    path = write_store(tmp_path / "a.h5", _attrs(), {}, [_episode()])
    with h5py.File(path, "a") as f:
        f.attrs["complete"] = False
    with pytest.raises(StoreError, match=r"not completely written"):
        TwinStore(path)


def test_unfinished_writer_leaves_no_dataset(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "b.h5", _attrs(), {})
    writer.write_run(0, [_episode()])
    assert not (tmp_path / "b.h5").exists()
    with pytest.raises(StoreError, match="runs \\[1\\] are not written"):
        writer.finalize(2)


def _corrupt(tmp_path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    path = write_store(tmp_path / "c.h5", _attrs(), {}, [_episode()])
    with h5py.File(path, "a") as f:
        edit(f)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.attrs.__setitem__("format", "other"), "not a beam-twin-store file"),
        (lambda f: f.attrs.__setitem__("schema_version", 99), "schema_version 99"),
        (lambda f: f.attrs.__delitem__("carrier_hz"), "missing root attribute 'carrier_hz'"),
        (lambda f: f["episodes/ep0"].__delitem__("los"), "episode 'ep0': missing dataset 'los'"),
        (
            lambda f: (
                f["episodes/ep0"].__delitem__("rsrp_dbm"),
                f["episodes/ep0"].create_dataset("rsrp_dbm", data=np.zeros((3, 5), np.float32)),
            ),
            "dataset 'rsrp_dbm' has per-frame shape (5,)",
        ),
        (
            lambda f: (
                f["episodes/ep0"].__delitem__("los"),
                f["episodes/ep0"].create_dataset("los", data=np.ones(2, bool)),
            ),
            "dataset 'los' has 2 frames, 't' has 3",
        ),
        (
            lambda f: (
                f["episodes/ep0"].__delitem__("best_beam"),
                f["episodes/ep0"].create_dataset("best_beam", data=np.zeros(3, np.float64)),
            ),
            "dataset 'best_beam' has dtype float64, expected int16",
        ),
        (lambda f: f.attrs.__setitem__("modalities", '["lidar_points"]'), "unknown fields ['lidar_points']"),
    ],
)
def test_schema_violations_name_file_episode_and_field(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _corrupt(tmp_path, edit)
    with pytest.raises(StoreError) as info:
        TwinStore(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)

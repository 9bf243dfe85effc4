"""Reading stores: clear errors for anything that is not a complete, schema-valid dataset."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import REPO
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


def _replace(group: h5py.Group, name: str, array: np.ndarray) -> None:
    del group[name]
    group[name] = array


def _first(f: h5py.File) -> h5py.Group:
    return f["episodes"][sorted(f["episodes"])[0]]


DAMAGE = {
    "path gains of another width": (
        lambda f: _replace(_first(f)["paths"], "gain", _first(f)["paths"]["gain"][()][:, :1]),
        "dataset 'paths/gain' has shape (5, 1), expected (T=5, L=",
    ),
    "2-D path departures": (
        lambda f: _replace(_first(f)["paths"], "departure", _first(f)["paths"]["departure"][()][..., :2]),
        "dataset 'paths/departure' has shape (5, 16, 2), expected (T=5, L=16, 3)",
    ),
    "path table without 'valid'": (
        lambda f: _first(f)["paths"].__delitem__("valid"),
        "path table 'paths/' lacks ['valid']",
    ),
    "codebook for 8 elements": (
        lambda f: _replace(f, "codebook/weights", f["codebook/weights"][()][:, :8]),
        "dataset 'codebook/weights' has shape (64, 8), expected (64, 16) (num_beams x num_antennas)",
    ),
    "10 beam angles": (
        lambda f: _replace(f, "codebook/angles_deg", f["codebook/angles_deg"][()][:10]),
        "dataset 'codebook/angles_deg' has shape (10,), expected (64,)",
    ),
    "best beam 99": (
        lambda f: _replace(_first(f), "best_beam", np.full(5, 99, np.int16)),
        "dataset 'best_beam' = 99 at frame 0: expected a beam in [0, 63]",
    ),
    "infinite RSRP": (
        lambda f: _replace(_first(f), "rsrp_dbm", np.full((5, 64), np.inf, np.float32)),
        "dataset 'rsrp_dbm' = inf dBm at frame 0, beam 0: expected a power <= 100 dBm or NaN (flagged)",
    ),
    "time of NaN": (
        lambda f: _replace(_first(f), "t", np.full(5, np.nan)),
        "dataset 't' must hold finite seconds that never decrease",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_tables_codebooks_and_values_are_refused_before_scoring(
    damage: str, tiny_store: Path, tmp_path: Path
) -> None:
    from twin.loop.evaluate import evaluate, evaluation_from
    from twin.scenario.faults import NO_FAULTS

    edit, message = DAMAGE[damage]
    path = tmp_path / "damaged.h5"
    shutil.copy(tiny_store, path)
    with h5py.File(path, "a") as f:
        edit(f)
    with pytest.raises(StoreError) as info:
        TwinStore(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(StoreError) as scored:  # the evaluation refuses it the same way
        config = evaluation_from({"plots": False, "snapshot": False})
        evaluate(path, NO_FAULTS, config, ["genie"], progress=False)
    assert str(scored.value) == str(info.value)


def test_the_main_job_refuses_a_damaged_store_in_one_line(tiny_store: Path, tmp_path: Path) -> None:
    path = tmp_path / "damaged.h5"
    shutil.copy(tiny_store, path)
    with h5py.File(path, "a") as f:
        DAMAGE["best beam 99"][0](f)
    command = [sys.executable, "-m", "twin.run", f"store={path}", "learned.train=[]", "progress=false",
               f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}: episode 'run00000-ue00': dataset 'best_beam' = 99")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "run" / "results.json").exists()


def test_the_report_says_when_blockage_cannot_cut_the_path_table(tiny_store: Path, tmp_path: Path) -> None:
    from twin.loop.evaluate import evaluate, evaluation_from
    from twin.scenario.faults import NO_FAULTS

    path = tmp_path / "no-pose.h5"
    shutil.copy(tiny_store, path)
    with h5py.File(path, "a") as f:
        del f.attrs["bs_position_m"]  # a path table, but no array to recompute the channel with
    config = evaluation_from(
        {"seeds": [0], "conditions": ["clean"], "blockage_rates_per_s": [1.0], "dropout_probabilities": [],
         "bootstrap": 10, "plots": False, "snapshot": False}
    )  # fmt: skip
    result = evaluate(path, NO_FAULTS, config, ["genie"], progress=False)
    assert any(n.startswith("path table unused (the store lacks the base-station pose") for n in result.notes)
    intact = evaluate(tiny_store, NO_FAULTS, config, ["genie"], progress=False)
    assert not any("path table" in n for n in intact.notes)

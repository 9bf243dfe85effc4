"""Windows, masks and splits of the data pipeline: exact on synthetic drives, shapes on a twin store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from learners.data import WindowDataset, data_config, load_frames, split_drives
from learners.preprocess import PreprocessConfig
from tests.learners.conftest import synthetic_frames
from twin.errors import ConfigError
from twin.store import TwinStore


def test_window_holds_history_rf_lag_and_future_targets() -> None:
    frames = synthetic_frames(frames=6)
    data = WindowDataset(frames, [0], data_config({"history": 3, "future": 2}))
    assert len(data) == 6  # one window per frame, from the first on
    sample = data[4]  # anchor frame 4
    np.testing.assert_array_equal(sample["inputs"]["gps"][:, 0], [2, 3, 4])  # sensors of frames 2..4
    np.testing.assert_array_equal(sample["inputs"]["camera"][:, 0, 0, 0], [0, 3, 4])  # frame 2 masked → 0
    np.testing.assert_array_equal(sample["masks"]["camera"], [False, True, True])
    np.testing.assert_array_equal(sample["inputs"]["beams"], [1, 2, 3])  # RF feedback of frames 1..3
    np.testing.assert_allclose(sample["inputs"]["beam_rsrp"], [1 + 10, 2 + 20, 3 + 30])
    np.testing.assert_array_equal(sample["target"], [4, 5])
    np.testing.assert_array_equal(sample["target_mask"], [True, True])
    assert sample["target_rsrp"].shape == (2, 8)


def test_a_share_of_the_windows_is_a_seeded_subset_of_them() -> None:
    frames = synthetic_frames(frames=20, drives=2)
    config = data_config({"history": 3})
    every = WindowDataset(frames, [0, 1], config).items
    share = WindowDataset(frames, [0, 1], config, seed=4, share=0.4).items
    assert len(share) == 16 and set(share) < set(every)  # ceil(0.4 · 40) of the 40 windows
    assert share == sorted(share, key=every.index)  # in the full set's order
    assert WindowDataset(frames, [0, 1], config, seed=4, share=0.4).items == share  # same seed: same windows
    assert WindowDataset(frames, [0, 1], config, seed=5, share=0.4).items != share
    assert len(WindowDataset(frames, [0, 1], config, share=0.001).items) == 1  # never empty


def test_window_at_the_drive_edges_is_padded_with_masked_zeros() -> None:
    frames = synthetic_frames(frames=6)
    data = WindowDataset(frames, [1], data_config({"history": 3, "future": 2}))
    first, last = data[0], data[5]
    np.testing.assert_array_equal(first["masks"]["gps"], [False, False, True])
    np.testing.assert_array_equal(first["inputs"]["gps"][:2], np.zeros((2, 4)))
    np.testing.assert_array_equal(first["masks"]["beams"], [False, False, False])  # no feedback yet
    np.testing.assert_array_equal(last["target_mask"], [True, False])  # frame 6 does not exist
    ahead = WindowDataset(frames, [1], data_config({"history": 3, "future": 3, "future_sensors": True}))
    np.testing.assert_array_equal(ahead[3]["inputs"]["gps"][:, 0] - 100, [1, 2, 3])  # history unchanged
    np.testing.assert_array_equal(ahead[3]["future_inputs"]["gps"][:, 0] - 100, [4, 5])
    np.testing.assert_array_equal(ahead[4]["future_masks"]["gps"], [True, False])  # frame 6 does not exist
    assert "future_inputs" not in data[3]


def test_batches_collate_into_modality_dicts_with_masks() -> None:
    frames = synthetic_frames(frames=6)
    batch = next(iter(DataLoader(WindowDataset(frames, [0, 1], data_config({})), batch_size=4)))
    assert batch["inputs"]["camera"].shape == (4, 5, 3, 2, 2)
    assert batch["inputs"]["gps"].dtype == torch.float32 and batch["inputs"]["beams"].dtype == torch.int64
    assert batch["masks"]["camera"].shape == (4, 5) and batch["masks"]["camera"].dtype == torch.bool
    assert batch["target"].shape == (4, 1)


def test_served_noise_perturbs_history_beams_with_their_own_feedback() -> None:
    frames = synthetic_frames(frames=40, beams=64, drives=1)
    frames.drives[0].best[:] = 30
    data = WindowDataset(frames, [0], data_config({"history": 8, "served_noise": 0.5}), training=True)
    beams = np.concatenate([data[t]["inputs"]["beams"][data[t]["masks"]["beams"]].numpy() for t in range(40)])
    assert 0.3 < np.mean(beams != 30) < 0.6  # about half perturbed (offset 0 is possible)
    assert np.abs(beams - 30).max() <= 3
    sample = data[20]
    rows = np.arange(12, 20)
    np.testing.assert_allclose(
        sample["inputs"]["beam_rsrp"], frames.drives[0].rsrp[rows, sample["inputs"]["beams"]]
    )
    clean = WindowDataset(frames, [0], data_config({"history": 8, "served_noise": 0.5}), training=False)
    assert (clean[20]["inputs"]["beams"] == 30).all()  # validation windows are never perturbed


def test_split_keeps_runs_together_and_is_reproducible() -> None:
    frames = synthetic_frames(drives=10)
    for i, drive in enumerate(frames.drives):
        drive.group = f"run{i // 2}"  # two drives per run
    train, val = split_drives(frames.drives, 0.2, seed=3, by="run")
    assert sorted(train + val) == list(range(10)) and len(val) == 2
    runs = lambda idx: {frames.drives[i].group for i in idx}  # noqa: E731
    assert not runs(train) & runs(val)
    assert split_drives(frames.drives, 0.2, seed=3, by="run") == (train, val)
    assert split_drives(frames.drives, 0.2, seed=4, by="run") != (train, val)
    by_drive = split_drives(frames.drives, 0.3, seed=0, by="drive")
    assert len(by_drive[1]) == 3
    assert split_drives(frames.drives[:1], 0.5, seed=0) == ([0], [])  # never the only group


def test_store_frames_have_model_shapes_and_labels(tiny_store: Path) -> None:
    frames = load_frames(tiny_store, ("camera", "lidar", "radar", "gps", "beams"), PreprocessConfig())
    assert frames.shapes == {"camera": (3, 36, 64), "lidar": (1, 32, 64), "radar": (2, 32, 32), "gps": (4,)}
    assert len(frames.drives) == 8 and len({d.group for d in frames.drives}) == 8
    first = frames.drives[0]
    with TwinStore(tiny_store) as store:
        episode = store.episode(first.id, fields=["rsrp_noiseless_dbm", "gps"])
    np.testing.assert_array_equal(first.best, np.argmax(episode["rsrp_noiseless_dbm"], axis=1))
    np.testing.assert_array_equal(first.masks["gps"], ~np.isnan(episode["gps"]).any(axis=1))
    for name, array in first.inputs.items():
        assert array.shape == (20, *frames.shapes[name]) and np.isfinite(array).all(), name
    measured = load_frames(tiny_store, ("gps",), PreprocessConfig(), label="measured").drives[0]
    with TwinStore(tiny_store) as store:
        np.testing.assert_array_equal(
            measured.best, store.episode(first.id, fields=["best_beam"])["best_beam"]
        )


def test_drives_of_a_run_share_its_sensor_arrays_and_split_together(shared_store: Path) -> None:
    frames = load_frames(shared_store, ("camera", "gps"), PreprocessConfig())
    first, second = frames.drives[:2]
    assert first.group == second.group == "run0"
    assert first.inputs["camera"] is second.inputs["camera"]  # one run's frames, read once
    assert first.inputs["gps"] is not second.inputs["gps"]  # GPS is the served car's own
    _, val = frames.split(data_config({"val_fraction": 0.5}), seed=0)
    assert len(val) == 2 and frames.drives[val[0]].group == frames.drives[val[1]].group


def test_unknown_inputs_and_bad_settings_fail_in_one_line(tiny_store: Path) -> None:
    with pytest.raises(ConfigError, match=r"model inputs \['sonar'\]: unknown"):
        load_frames(tiny_store, ("sonar",), PreprocessConfig())
    with pytest.raises(ConfigError, match=r"^data\.history = 0: expected a value in \[1, 1000\]$"):
        data_config({"history": 0})
    with pytest.raises(ConfigError, match=r"^data\.split_by = 'frame': expected one of 'run', 'drive'$"):
        data_config({"split_by": "frame"})

"""Blockage windows: real series CSVs read as the files say (beams 1-based in the files), paths kept
inside the dataset root, one-line errors, twin windows labelled by `blocked` N frames later, and a
normalisation blind to the receiver's calibration."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from learners.blockage.windows import (
    SWEEPS,
    drive_windows,
    fraction,
    horizon_of,
    normalise,
    read_series,
    split_groups,
    store_windows,
)
from learners.blockage_shipped import default_data
from twin.errors import StoreError
from twin.replay.formats import ReplayError

REAL = default_data()
needs_real = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"DeepSense scenario 17 not found at {REAL} (../shared/data beside the repo)"
)


def power(frame: int, beam: int) -> float:
    """The synthetic recording's linear power of a 1-based beam at a frame: distinct everywhere."""
    return 10.0 ** ((frame + beam / 100) / 10)


def write_dataset(root: Path, frames: int = 24, horizon: int = 3, labelled: bool = True) -> Path:
    """A scenario folder: power files mmWave_power_<i>.txt (64 lines, beam 1 first) and a
    future-<horizon> test CSV with one row per window of 8 consecutive frames."""
    data = root / "unit1" / "mmWave_data"
    data.mkdir(parents=True)
    for i in range(1, frames + 1):
        (data / f"mmWave_power_{i}.txt").write_text("\n".join(f"{power(i, b):.10e}" for b in range(1, 65)))
    folder = root / f"future-{horizon}"
    folder.mkdir()
    columns = [f"unit1_pwr_60ghz_{s}" for s in range(1, SWEEPS + 1)]
    header = ["index", *columns] + ([f"blockage_{k}" for k in range(1, horizon + 1)] if labelled else [])
    lines = [",".join(header)]
    for row, first in enumerate(range(1, frames - SWEEPS - horizon + 2)):
        paths = [f"./unit1/mmWave_data/mmWave_power_{first + s}.txt" for s in range(SWEEPS)]
        labels = [str((first + k) % 2) for k in range(1, horizon + 1)] if labelled else []
        lines.append(",".join([str(row + 1), *paths, *labels]))
    for split in ("train", "val", "test"):
        (folder / f"synthetic_series_{split}.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_series_windows_hold_the_files_powers_in_db_and_the_last_label(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, horizon=3)
    windows = read_series(folder / "synthetic_series_test.csv")
    assert windows.sweeps.shape == (24 - SWEEPS - 3 + 1, SWEEPS, 64)
    assert windows.index.tolist() == list(range(1, len(windows) + 1))
    first = np.arange(1, len(windows) + 1)
    expected = first[:, None, None] + np.arange(SWEEPS)[None, :, None] + np.arange(1, 65)[None, None, :] / 100
    np.testing.assert_allclose(windows.sweeps, expected, atol=1e-4)  # line b of a file: 0-based beam b-1
    assert windows.labels.tolist() == ((first + 3) % 2).tolist()  # blockage_3: 3 frames after the last
    assert horizon_of(folder) == 3 and horizon_of(folder / "synthetic_series_test.csv") == 3


def test_an_unlabelled_csv_gives_windows_without_labels(tmp_path: Path) -> None:
    windows = read_series(write_dataset(tmp_path, labelled=False) / "synthetic_series_test.csv")
    assert windows.labels is None and len(windows) == 14


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("unit1_pwr_60ghz_4,", "other,", 1),
         r"missing column unit1_pwr_60ghz_4 \(expected"),
        (lambda t: t.replace(",1\n", ",yes\n", 1), r"row \d+ column blockage_3 = 'yes': expected 0 or 1"),
        (lambda t: t.replace("power_12.txt", "power_999.txt", 1),
         r"row 5 column unit1_pwr_60ghz_8: .*file not found"),
        (lambda t: t.replace("./unit1/mmWave_data/mmWave_power_3", "../../outside", 1),
         r"row 1 column unit1_pwr_60ghz_3 = '../../outside.txt': path leaves the dataset root"),
        (lambda t: t.replace("./unit1/mmWave_data/mmWave_power_3.txt", "/etc/passwd", 1), r"absolute path"),
    ],
)  # fmt: skip
def test_a_bad_series_csv_is_refused_in_one_line(tmp_path: Path, edit, message: str) -> None:
    csv = write_dataset(tmp_path) / "synthetic_series_test.csv"
    csv.write_text(edit(csv.read_text()))
    with pytest.raises(ReplayError, match=message) as info:
        read_series(csv)
    assert "\n" not in str(info.value) and csv.name in str(info.value)


def test_drive_windows_are_frames_t_minus_7_to_t_labelled_n_frames_after_t() -> None:
    frames, beams, horizon = 20, 4, 5
    rsrp = np.arange(frames, dtype=float)[:, None] + np.arange(beams)[None, :] / 10
    blocked = np.arange(frames) % 3 == 0
    sweeps, labels = drive_windows(rsrp, blocked, horizon)
    last = np.arange(SWEEPS - 1, frames - horizon)
    assert len(labels) == len(last) == frames - SWEEPS - horizon + 1
    np.testing.assert_allclose(sweeps[:, :, 0], last[:, None] + np.arange(-7, 1)[None, :])
    assert labels.tolist() == blocked[last + horizon].astype(int).tolist()
    assert drive_windows(rsrp[:12], blocked[:12], horizon)[1].size == 0  # too short for one window


def test_twin_windows_are_labelled_by_the_stores_blocked_flag_n_frames_later(tiny_store: Path) -> None:
    horizon = 2
    windows = store_windows(tiny_store, horizon)
    expected, sweeps = [], []
    with h5py.File(tiny_store, "r") as f:
        for episode in sorted(f["episodes"]):
            blocked, rsrp = f["episodes"][episode]["blocked"][()], f["episodes"][episode]["rsrp_dbm"][()]
            for t in range(SWEEPS - 1, len(blocked) - horizon):
                expected.append(int(blocked[t + horizon]))
                sweeps.append(rsrp[t - SWEEPS + 1 : t + 1])
    assert windows.labels.tolist() == expected
    np.testing.assert_array_equal(windows.sweeps, np.array(sweeps, np.float32))
    train, val = split_groups(windows, 0.25, seed=0)
    assert not set(windows.groups[train]) & set(windows.groups[val]) and len(val)  # whole runs per side
    with pytest.raises(StoreError, match=r"64 beams per sweep, the predictor reads 32$"):
        store_windows(tiny_store, horizon, beams=32)


def test_normalisation_is_blind_to_a_calibration_offset_and_standardises_each_window() -> None:
    rng = np.random.default_rng(0)
    sweeps = rng.normal(-70, 6, (5, SWEEPS, 64))
    sweeps[0, 3, 10] = np.nan  # no power: the window's weakest level
    out = normalise(sweeps)
    np.testing.assert_allclose(out, normalise(sweeps + 47.0), atol=1e-5)  # uncalibrated dB vs dBm
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1, atol=1e-4)
    assert out[0, 3, 10] == pytest.approx(out[0].min())
    assert np.all(normalise(np.full((1, SWEEPS, 64), -50.0)) == 0)  # flat: nothing to amplify


def test_a_fraction_is_seeded_and_keeps_the_order(tmp_path: Path) -> None:
    windows = read_series(write_dataset(tmp_path) / "synthetic_series_test.csv")
    a, b = fraction(windows, 0.3, seed=1), fraction(windows, 0.3, seed=1)
    assert len(a) == 5 and a.index.tolist() == b.index.tolist() == sorted(a.index.tolist())
    assert fraction(windows, 0.3, seed=2).index.tolist() != a.index.tolist()


@needs_real
@pytest.mark.parametrize("horizon", [1, 5, 10])
def test_real_windows_match_the_power_files_and_the_csv(horizon: int) -> None:
    csv = REAL / f"future-{horizon}" / "scenario17_dev_series_test.csv"
    windows = read_series(csv)
    header, *rows = csv.read_text().splitlines()
    assert len(windows) == len(rows)
    columns = header.split(",")
    label = "blockage_final" if "blockage_final" in columns else f"blockage_{horizon}"
    for r in (0, len(rows) // 2, len(rows) - 1):
        cells = dict(zip(columns, rows[r].split(","), strict=True))
        assert windows.index[r] == int(cells["index"]) and windows.labels[r] == int(cells[label])
        for s in range(SWEEPS):
            lines = (REAL / cells[f"unit1_pwr_60ghz_{s + 1}"]).read_text().split()
            np.testing.assert_allclose(windows.sweeps[r, s], 10 * np.log10(np.array(lines, float)), rtol=1e-5)

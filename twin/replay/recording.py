"""What every loader shares: drive segmentation, times, RSRP calibration, skipped-file bookkeeping,
the base-station yaw fit and streaming a recording into a store (one drive at a time)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from twin.radio.codebook import MAX_RSRP_DBM
from twin.replay.formats import BadFile, ReplayError
from twin.store import Episode, StoreWriter

T = TypeVar("T")
MAX_LISTED_SKIPS = 20


@dataclass
class Skips:
    """Frames dropped because a file was bad (only with `skip_bad_files`)."""

    allowed: bool
    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def attempt(self, read: Callable[[], T], where: str = "") -> T | None:
        """`read()`, or None when it raised BadFile and skipping is allowed (then counted); `where`
        (e.g. 'scenario31_dev.csv row 12') is added to the message."""
        try:
            return read()
        except BadFile as exc:
            message = f"{exc} ({where})" if where else str(exc)
            if not self.allowed:
                raise BadFile(message) from None
            self.count += 1
            if len(self.reasons) < MAX_LISTED_SKIPS:
                self.reasons.append(message)
            return None

    def attrs(self) -> dict[str, Any]:
        return {"skipped_frames": self.count, "skipped_files": json.dumps(self.reasons)}


@dataclass
class Recording:
    """A converted recording: root attributes, dataset-wide arrays and a lazy stream of drives.
    `attrs` may still change while `episodes()` runs (skip counts); it is written last."""

    name: str
    attrs: dict[str, Any]
    constants: dict[str, np.ndarray]
    episodes: Callable[[], Iterator[Episode]]


def write_recording(recording: Recording, path: Path) -> Path:
    """Stream the drives into `path` (each drive its own part file, merged and renamed at the end)."""
    parts = path.with_name(path.name + ".parts")
    if parts.exists():  # a killed conversion: start over (conversion is cheap next to tracing)
        shutil.rmtree(parts)
    writer = StoreWriter(path, {}, recording.constants)
    count = 0
    for episode in recording.episodes():
        writer.write_run(count, [episode])
        count += 1
    if count == 0:
        shutil.rmtree(parts, ignore_errors=True)
        raise ReplayError(f"{recording.name}: no frames left to convert (all skipped or none selected)")
    writer.root_attrs = dict(recording.attrs)
    return writer.finalize(count)


def select(rows: list[T], offset: int, limit: int, where: str) -> list[T]:
    """The contiguous slice [offset, offset + limit) of the frames (limit 0: to the end)."""
    if offset >= len(rows):
        raise ReplayError(f"{where}: offset {offset} is past the last of its {len(rows)} frames")
    return rows[offset : offset + limit if limit else None]


def segments(
    index: np.ndarray, keys: np.ndarray | None, contiguous: bool, max_frames: int
) -> list[np.ndarray]:
    """Row positions of each drive: a drive ends where `keys` (seq_index, scenario) changes and, with
    `contiguous`, where the sample numbering jumps; drives longer than `max_frames` are split."""
    if len(index) == 0:
        return []
    cut = np.zeros(len(index) - 1, bool)
    if keys is not None:
        cut |= keys[1:] != keys[:-1]
    if contiguous:
        cut |= np.diff(index) != 1
    drives = np.split(np.arange(len(index)), np.flatnonzero(cut) + 1)
    if max_frames:
        drives = [d[i : i + max_frames] for d in drives for i in range(0, len(d), max_frames)]
    return drives


def frame_buffer(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """Zeros for a drive's sensor frames; above 256 MiB (radar cubes: 2 MiB a frame) a memory map in
    the temporary folder, so a long drive never has to fit in RAM."""
    dtype = np.dtype(dtype)
    if int(np.prod(shape)) * dtype.itemsize <= 256 << 20:
        return np.zeros(shape, dtype)
    with tempfile.NamedTemporaryFile(suffix=".spill", delete=False) as handle:
        pass
    array = np.lib.format.open_memmap(handle.name, mode="w+", dtype=dtype, shape=shape)
    Path(handle.name).unlink()  # the mapping stays valid on POSIX; nothing is left behind
    return array


def drive_times(clock_s: np.ndarray, index: np.ndarray, frame_rate_hz: float) -> tuple[np.ndarray, str]:
    """Seconds from the drive's first frame: from the time stamps when all parse and never run
    backwards (a midnight wrap is unwrapped), else from the sample index at the nominal rate."""
    if len(clock_s) and np.isfinite(clock_s).all():
        steps = np.diff(clock_s)
        steps = np.where(steps < -43_200, steps + 86_400, steps)
        if (steps >= 0).all():
            return np.concatenate([[0.0], np.cumsum(steps)]), "time_stamp"
    return (index - index[0]).astype(np.float64) / frame_rate_hz, "index"


def to_dbm(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """10 log10 of linear power; non-positive, infinite or NaN entries become NaN. Returns (dB,
    invalid mask)."""
    invalid = ~((power > 0) & np.isfinite(power))  # `> 0` is False for NaN too
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10 * np.log10(np.where(invalid, np.nan, power))
    return db, invalid


def flag_implausible(rsrp_dbm: np.ndarray, invalid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated powers no receiver reports (above MAX_RSRP_DBM) become NaN and are flagged like
    NaN, so they are never scored. Returns (RSRP, invalid mask)."""
    implausible = rsrp_dbm > MAX_RSRP_DBM
    return np.where(implausible, np.nan, rsrp_dbm).astype(np.float32), invalid | implausible


def noise_floor_db(power_db: np.ndarray) -> float:
    """The recording's noise floor: mean linear power of its weakest decile of beam samples (dB).
    Blocked frames and off-beam samples put noise in that decile; see README (replay)."""
    values = power_db[np.isfinite(power_db)]
    if values.size == 0:
        raise ReplayError("no finite power values to estimate the noise floor from")
    low = values[values <= np.percentile(values, 10)]
    return float(10 * np.log10(np.mean(10 ** (low / 10))))


def nan_argmax(rsrp: np.ndarray) -> np.ndarray:
    """Best beam per frame ignoring NaN beams (rows are never all-NaN here)."""
    return np.argmax(np.where(np.isnan(rsrp), -np.inf, rsrp), axis=-1).astype(np.int16)


def fit_yaw(
    local_xy: np.ndarray, beams: np.ndarray, angles_deg: np.ndarray, max_residual_deg: float = 6.0
) -> tuple[float, float] | None:
    """The array's boresight azimuth (degrees, counter-clockwise from local +x) that best explains
    the best beams from the UE's bearing, and its median residual; None when nothing fits within
    `max_residual_deg` (then the store gets no base-station pose and GPS policies are skipped)."""
    ok = np.isfinite(local_xy).all(axis=1) & (np.linalg.norm(local_xy, axis=1) > 1.0)
    if ok.sum() < 5:
        return None
    bearing = np.arctan2(local_xy[ok, 1], local_xy[ok, 0])
    target = np.deg2rad(angles_deg[beams[ok]])
    yaws = np.deg2rad(np.arange(0.0, 360.0, 0.5))
    # array angle of the UE: sin(theta) = u . axis = sin(bearing - yaw) (twin.radio.codebook convention)
    theta = np.arcsin(np.sin(bearing[None, :] - yaws[:, None]))
    residual = np.median(np.abs(theta - target[None, :]), axis=1)
    best = int(np.argmin(residual))
    if np.rad2deg(residual[best]) > max_residual_deg:
        return None
    return float(np.rad2deg(yaws[best])), float(np.rad2deg(residual[best]))

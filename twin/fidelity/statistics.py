"""Statistics of beam sweeps, the same for the twin's and for recorded ones.

Both sides are reduced to the same per-frame statistics of their measured sweeps (`rsrp_dbm`, what a
power detector reports), whose distributions are compared with the two-sample Kolmogorov–Smirnov
distance D (and the 1-Wasserstein distance in the statistic's unit):

- spread_db            best-to-worst beam spread of a sweep
- snr_db               best beam's RSRP above the store's noise power (replayed DeepSense: above its
                       noise floor, by the replay calibration)
- dwell_s              how long one beam stays the best (runs of equal best beam; drive ends censor)
- beam_step            |change of the best beam| between consecutive frames, in beams
- rsrp_step_db         change of the best beam's RSRP between consecutive frames
- blockage_depth_db    depth of drop events: the best RSRP falling `drop_db` below the median of the
                       previous second and recovering later (same detector on both sides, so traced,
                       injected and real blockers are treated alike; a drop that lasts to the drive's
                       end, like a car leaving the sector, is not counted); blockage_duration_s their
                       length

Their distances live in twin.fidelity.distances, the calibration of the twin's measurement model in
twin.fidelity.calibration, the figure in twin.fidelity.figures; `python -m twin.compare` runs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.errors import ConfigError
from twin.store import TwinStore

STATISTICS = {
    "spread_db": "best-to-worst spread [dB]",
    "snr_db": "best-beam SNR [dB]",
    "dwell_s": "best-beam dwell [s]",
    "beam_step": "best-beam step [beams]",
    "rsrp_step_db": "best-RSRP change per frame [dB]",
    "blockage_depth_db": "drop-event depth [dB]",
    "blockage_duration_s": "drop-event duration [s]",
}
# Statistics the measurement model (noise, detector error, transmit power) moves.
CALIBRATED = ("spread_db", "snr_db", "beam_step", "rsrp_step_db", "dwell_s")
EVENT_WINDOW_S = (-1.0, 3.0)  # event-aligned traces: from 1 s before a drop to 3 s after


@dataclass
class Drive:
    t: np.ndarray  # (T,) seconds
    rsrp_dbm: np.ndarray  # (T, K) measured; NaN beams allowed


@dataclass
class SweepStats:
    label: str
    samples: dict[str, np.ndarray]
    events: np.ndarray  # (E, W) best RSRP around drop onsets, relative to the pre-event level [dB]
    event_t: np.ndarray  # (W,) seconds from onset
    drives: int = 0
    frames: int = 0


def runs(values: np.ndarray) -> np.ndarray:
    """Lengths of runs of equal consecutive values."""
    if values.size == 0:
        return np.zeros(0, int)
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1], [True]]))
    return np.diff(starts)


def drop_events(
    best_dbm: np.ndarray, frame_rate_hz: float, drop_db: float = 10.0
) -> list[tuple[int, int, float, float]]:
    """(onset, end, reference, depth) of each drop: the best RSRP falling `drop_db` below the median
    of the previous second; it lasts until the RSRP is back within drop_db / 2 of that reference.
    A drop that never recovers before the drive ends is not counted."""
    window = max(1, round(frame_rate_hz))
    events = []
    t = window
    while t < len(best_dbm):
        reference = float(np.median(best_dbm[t - window : t]))
        if best_dbm[t] <= reference - drop_db:
            end = t
            while end < len(best_dbm) and best_dbm[end] < reference - drop_db / 2:
                end += 1
            if end == len(best_dbm):  # never recovered (e.g. the car leaves the sector): not a blockage
                break
            depth = reference - float(np.min(best_dbm[t:end]))
            events.append((t, end, reference, depth))
            t = end + window  # the next reference must not include this event
        else:
            t += 1
    return events


def sweep_statistics(
    drives: Iterable[Drive], noise_power_dbm: float, frame_rate_hz: float, label: str, drop_db: float = 10.0
) -> SweepStats:
    acc: dict[str, list[np.ndarray]] = {name: [] for name in STATISTICS}
    traces = []
    before, after = (round(s * frame_rate_hz) for s in EVENT_WINDOW_S)
    count = frames = 0
    for drive in drives:
        rsrp = np.asarray(drive.rsrp_dbm, np.float64)
        rsrp = np.where(np.isfinite(rsrp), rsrp, np.nan)  # -inf (no path) and NaN beams alike
        valid = ~np.isnan(rsrp).all(axis=1)
        rsrp, t = rsrp[valid], np.asarray(drive.t, np.float64)[valid]
        if len(t) == 0:
            continue
        count, frames = count + 1, frames + len(t)
        best = np.nanmax(rsrp, axis=1)
        beam = np.nanargmax(rsrp, axis=1)
        acc["spread_db"].append(best - np.nanmin(rsrp, axis=1))
        acc["snr_db"].append(best - noise_power_dbm)
        acc["dwell_s"].append(runs(beam) / frame_rate_hz)
        acc["beam_step"].append(np.abs(np.diff(beam)).astype(float))
        acc["rsrp_step_db"].append(np.diff(best))
        for onset, end, reference, depth in drop_events(best, frame_rate_hz, drop_db):
            acc["blockage_depth_db"].append(np.array([depth]))
            acc["blockage_duration_s"].append(np.array([(end - onset) / frame_rate_hz]))
            if onset + before >= 0 and onset + after <= len(best):
                traces.append(best[onset + before : onset + after] - reference)
    samples = {k: np.concatenate(v) if v else np.zeros(0) for k, v in acc.items()}
    width = after - before
    return SweepStats(
        label=label,
        samples=samples,
        events=np.array(traces).reshape(-1, width),
        event_t=np.arange(before, after) / frame_rate_hz,
        drives=count,
        frames=frames,
    )


@dataclass
class NoiselessDrive:
    t: np.ndarray
    rsrp_noiseless_dbm: np.ndarray  # (T, K) at the store's transmit power


def store_drives(path: str | Path, noiseless: bool = False) -> tuple[list, dict]:
    """The drives of a store (measured sweeps, or noiseless ones for calibration) and its attributes."""
    with TwinStore(path) as store:
        attrs = {k: store.attrs[k] for k in store.attrs}
        if noiseless and "rsrp_noiseless_dbm" not in store.modalities:
            raise ConfigError(f"twin store {path}: has no rsrp_noiseless_dbm to calibrate against")
        drives = []
        for episode_id in store.episode_ids:
            if noiseless:
                ep = store.episode(episode_id, fields=["t", "rsrp_noiseless_dbm"])
                drives.append(NoiselessDrive(ep["t"], ep["rsrp_noiseless_dbm"].astype(np.float64)))
            else:
                ep = store.episode(episode_id, fields=["t", "rsrp_dbm"])
                drives.append(Drive(ep["t"], ep["rsrp_dbm"]))
    return drives, attrs


def store_statistics(path: str | Path, label: str = "", drop_db: float = 10.0) -> SweepStats:
    drives, attrs = store_drives(path)
    name = label or f"{attrs.get('source', '?')} {attrs.get('scenario_name', Path(path).stem)}"
    return sweep_statistics(
        drives, float(attrs["noise_power_dbm"]), float(attrs["frame_rate_hz"]), name, drop_db
    )

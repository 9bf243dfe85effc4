"""Sensor dropout: a burst process per modality, and the faulted observation of one frame.

Modes: missing (zeros, mask 0), frozen (the last frame before the burst repeated), noisy (additive
noise), partial (camera: an occluded rectangle; LiDAR: points lost; radar: chirps lost; GPS and
position: an outage, the last fix held with mask 0). Only `missing` and outages clear the mask:
frozen, noisy and occluded data look valid to a policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.scenario.faults import DropoutConfig


def burst_mask(probability: float, mean_burst: float, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T,) bool from a stationary two-state burst process: bursts last `mean_burst` frames on average
    (geometric) and cover `probability` of the frames in the long run."""
    if probability <= 0 or frames == 0:
        return np.zeros(frames, bool)
    if probability >= 1:
        return np.ones(frames, bool)
    # Good runs must last >= 1 frame on average: lengthen bursts when the probability needs it.
    mean_burst = max(mean_burst, 1.0, probability / (1 - probability))
    mean_good = mean_burst * (1 - probability) / probability
    runs = frames + 1
    bad = rng.geometric(1 / mean_burst, runs)
    good = rng.geometric(min(1.0, 1 / mean_good), runs)
    first_bad = rng.random() < probability
    lengths = np.empty(2 * runs, np.int64)
    lengths[0::2], lengths[1::2] = (bad, good) if first_bad else (good, bad)
    needed = int(np.searchsorted(np.cumsum(lengths), frames)) + 1
    states = (np.arange(needed) % 2 == 0) == first_bad
    return np.repeat(states, lengths[:needed])[:frames]


@dataclass(frozen=True)
class DropoutSchedule:
    modality: str
    mode: str
    active: np.ndarray  # (T,) bool
    source: np.ndarray  # (T,) int: the frame whose data is delivered (frozen/outage: before the burst)
    burst_start: np.ndarray  # (T,) int: first frame of the burst covering t, -1 outside bursts
    seed: int  # per-frame corruption draws derive from (seed, frame): independent of call order

    @property
    def masked(self) -> np.ndarray:
        """(T,) frames whose mask the policy sees as 0."""
        if self.mode == "missing" or (self.mode == "partial" and self.modality in ("gps", "position")):
            return self.active
        return np.zeros_like(self.active)


def dropout_schedule(
    modality: str, config: DropoutConfig, frames: int, frame_rate_hz: float, rng: np.random.Generator
) -> DropoutSchedule:
    active = burst_mask(config.probability, config.burst_s * frame_rate_hz, frames, rng)
    index = np.arange(frames)
    starts = np.flatnonzero(active & ~np.concatenate([[False], active[:-1]]))
    burst_start = np.full(frames, -1)
    if starts.size:
        covering = starts[np.maximum(np.searchsorted(starts, index, side="right") - 1, 0)]
        burst_start = np.where(active, covering, -1)
    source = index.copy()
    holds = config.mode == "frozen" or (config.mode == "partial" and modality in ("gps", "position"))
    if holds:
        source = np.where(active, np.maximum(burst_start - 1, 0), index)
    return DropoutSchedule(modality, config.mode, active, source, burst_start, int(rng.integers(2**62)))


def corrupt(
    modality: str,
    data: np.ndarray,
    frame: int,
    schedule: DropoutSchedule,
    config: DropoutConfig,
    rows: int | None = None,
) -> np.ndarray:
    """The faulted observation of one frame (a new array; `data` is never modified). `rows`: LiDAR
    points in use (the rest is zero padding); counted from the data when not given."""
    if schedule.mode == "missing":
        return np.zeros_like(data)
    if schedule.mode == "frozen":
        return data
    rng = np.random.default_rng([schedule.seed, 0, frame])
    if modality == "lidar" and rows is None:
        rows = int(np.count_nonzero(np.any(data != 0, axis=1)))
    if schedule.mode == "noisy":
        return _noisy(modality, data, config.noise_std, rng, rows)
    return _partial(modality, data, config.fraction, schedule, frame, rng, rows)


_BANK_SIZE = 1 << 20
_bank: np.ndarray | None = None


def _gaussian(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise of `shape`: a slice at a random offset of a fixed bank, ten times
    faster than fresh draws for camera-sized frames and still reproducible by seed."""
    global _bank
    size = math.prod(shape)
    if size > _BANK_SIZE // 2:
        return rng.standard_normal(shape, np.float32)
    if _bank is None:
        _bank = np.random.default_rng(20240611).standard_normal(_BANK_SIZE, np.float32)
    start = int(rng.integers(0, _BANK_SIZE - size + 1))
    return _bank[start : start + size].reshape(shape)


def _noisy(
    modality: str, data: np.ndarray, std: float, rng: np.random.Generator, rows: int | None
) -> np.ndarray:
    if modality == "camera":
        noise = _gaussian(rng, data.shape) * np.float32(255 * std)
        return np.clip(data + noise, 0, 255).astype(np.uint8)
    if modality == "lidar":  # (P, 4): jitter x, y, z of the points in use, keep the padding at zero
        out = data.copy()
        out[:rows, :3] += _gaussian(rng, (rows, 3)) * np.float32(std)
        return out
    if modality == "radar":  # (..., 2) real/imaginary parts
        rms = float(np.sqrt(np.mean(np.square(data, dtype=np.float32)))) or 1.0
        return data + _gaussian(rng, data.shape) * np.float32(std * rms)
    if modality == "gps":  # metres of error → degrees
        north, east = rng.normal(0.0, std, 2)
        lat = data[0] + math.degrees(north / 6_371_000.0)
        lon = data[1] + math.degrees(east / (6_371_000.0 * max(math.cos(math.radians(data[0])), 1e-6)))
        return np.array([lat, lon], data.dtype)
    if modality == "position":
        out = data.copy()
        out[:2] += rng.normal(0.0, std, 2).astype(data.dtype)
        return out
    raise ValueError(f"unknown modality {modality!r}")  # pragma: no cover - names are validated


def _partial(
    modality: str,
    data: np.ndarray,
    fraction: float,
    schedule: DropoutSchedule,
    frame: int,
    rng: np.random.Generator,
    rows: int | None,
) -> np.ndarray:
    if modality in ("gps", "position"):  # an outage: the last fix is held (`source`), mask 0
        return data
    if modality == "camera":  # one occluding rectangle per burst (dirt, a hand, a sticker)
        burst = np.random.default_rng([schedule.seed, 1, int(schedule.burst_start[frame])])
        height, width = data.shape[:2]
        side = math.sqrt(fraction)
        h, w = round(height * side), round(width * side)
        top = int(burst.integers(0, height - h + 1))
        left = int(burst.integers(0, width - w + 1))
        out = data.copy()
        out[top : top + h, left : left + w] = 0
        return out
    if modality == "lidar":  # points lost at random; survivors compacted, padding stays zero
        keep = np.frombuffer(rng.bytes(rows), np.uint8).astype(np.uint16) >= round(256 * fraction)
        out = np.zeros_like(data)
        kept = data[:rows][keep]
        out[: len(kept)] = kept
        return out
    if modality == "radar":  # (Rx, Samples, Chirps, 2): chirps lost
        lost = rng.random(data.shape[2]) < fraction
        out = data.copy()
        out[:, :, lost] = 0
        return out
    raise ValueError(f"unknown modality {modality!r}")  # pragma: no cover

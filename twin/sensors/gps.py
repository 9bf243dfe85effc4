"""The served vehicle's GPS receiver: noise, update rate and outages, reported in latitude/longitude
(twin.scenario.geodetic)."""

from __future__ import annotations

import numpy as np

from twin.scenario.config import GeodeticOrigin, GpsConfig
from twin.scenario.geodetic import local_to_geodetic


def fix_schedule(
    config: GpsConfig, frames: int, frame_rate_hz: float, rng: np.random.Generator
) -> np.ndarray:
    """(T,) whether a fix arrives at each frame: at the update rate, except during outages."""
    t = np.arange(frames) / frame_rate_hz
    period = 1.0 / config.update_rate_hz
    # A fix arrives at the first frame at or after each update instant.
    slots = np.floor(t / period + 1e-9)
    fresh = np.concatenate([[True], slots[1:] != slots[:-1]])
    outage = np.zeros(frames, bool)
    if config.outage_rate_per_s > 0:
        starts = np.flatnonzero(rng.random(frames) < config.outage_rate_per_s / frame_rate_hz)
        for start in starts:
            length = rng.uniform(*config.outage_duration_s)
            outage[(t >= t[start]) & (t < t[start] + length)] = True
    return fresh & ~outage


def drifting_bias(
    frames: int, frame_rate_hz: float, std_m: float, correlation_s: float, rng: np.random.Generator
) -> np.ndarray:
    """(T, 2) a stationary first-order Gauss-Markov bias per axis: std `std_m`, correlation
    exp(-lag / correlation_s) (an RTK receiver's slowly wandering error)."""
    phi = float(np.exp(-1.0 / (frame_rate_hz * correlation_s)))
    steps = rng.normal(0.0, std_m * np.sqrt(1 - phi**2), (frames, 2))
    bias = np.empty((frames, 2))
    bias[0] = rng.normal(0.0, std_m, 2)
    for t in range(1, frames):
        bias[t] = phi * bias[t - 1] + steps[t]
    return bias


def gps_track(
    config: GpsConfig,
    origin: GeodeticOrigin,
    positions: np.ndarray,
    frame_rate_hz: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """What the UE's receiver reports per frame: (T, 2) lat/lon of the latest fix (NaN before the
    first one) and (T,) whether a fresh fix arrived at that frame."""
    frames = len(positions)
    valid = fix_schedule(config, frames, frame_rate_hz, rng)
    noisy = positions[:, :2] + rng.normal(0.0, config.noise_m, (frames, 2))
    if config.bias_std_m > 0:  # own stream: a scenario without a bias keeps its draws
        bias_rng = np.random.default_rng(rng.integers(2**63))
        noisy = noisy + drifting_bias(
            frames, frame_rate_hz, config.bias_std_m, config.bias_correlation_s, bias_rng
        )
    fixes = local_to_geodetic(origin, noisy)
    latest = np.maximum.accumulate(np.where(valid, np.arange(frames), -1))
    track = np.where((latest >= 0)[:, None], fixes[np.maximum(latest, 0)], np.nan)
    return track, valid

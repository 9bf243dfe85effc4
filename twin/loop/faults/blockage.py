"""Injected blockage: Poisson events, and what a tall virtual blocker in front of the UE does to the sweeps.

While an event is active the blocker attenuates the line-of-sight path and every path leaving the base
station within `half_width_deg` of the UE's azimuth by `attenuation_db`, and h is recomputed from the
path table, so the oracle beam may move to a reflection. Without a path table (replayed measurements)
the measured RSRP of the beams pointing within `half_width_deg` of the UE (or of the strongest beam)
is attenuated instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.loop.drives import Drive, TwinContext
from twin.radio.codebook import measure_rsrp_dbm
from twin.scenario.faults import BlockageFaultConfig


@dataclass(frozen=True)
class BlockageSchedule:
    events_s: np.ndarray  # (E, 2) start, end in seconds from episode start
    active: np.ndarray  # (T,) bool: an injected blocker stands in the line of sight

    def as_list(self) -> list[tuple[float, float]]:
        return [(float(a), float(b)) for a, b in self.events_s]


def blockage_schedule(
    config: BlockageFaultConfig, t: np.ndarray, rng: np.random.Generator
) -> BlockageSchedule:
    """Poisson event starts over the drive; a frame is blocked while any event covers its time."""
    frames = len(t)
    if not config.enabled or frames == 0:
        return BlockageSchedule(np.zeros((0, 2)), np.zeros(frames, bool))
    period = float(np.median(np.diff(t))) if frames > 1 else 0.1
    span = float(t[-1] - t[0]) + period
    count = rng.poisson(config.rate_per_s * span)
    starts = t[0] + rng.uniform(0.0, span, count)
    low, high = config.duration_s
    if config.duration_distribution == "log_uniform":
        durations = np.exp(rng.uniform(np.log(low), np.log(high), count))
    else:
        durations = rng.uniform(low, high, count)
    events = np.stack([starts, starts + durations], -1) if count else np.zeros((0, 2))
    events = events[np.argsort(events[:, 0])]
    active = ((t[:, None] >= events[:, 0]) & (t[:, None] < events[:, 1])).any(axis=1)
    return BlockageSchedule(events - t[0], active)


def cut_mask(
    departure: np.ndarray, is_los: np.ndarray, ue_azimuth: np.ndarray, half_width_deg: float
) -> np.ndarray:
    """(F, L) paths a blocker in front of the UE cuts: the LoS path and paths leaving the base station
    within ±half_width of the UE's azimuth (a tall blocker cuts every elevation, so the ground
    reflection goes too)."""
    azimuth = np.arctan2(departure[..., 1], departure[..., 0])
    offset = np.angle(np.exp(1j * (azimuth - ue_azimuth[:, None])))
    return is_los | (np.abs(offset) <= np.deg2rad(half_width_deg))


def _ue_direction(drive: Drive, context: TwinContext, frames: np.ndarray) -> np.ndarray | None:
    """(F, 3) unit vectors from the base station to the UE: from its position, else from the LoS
    path's departure, else from the strongest path's; None when the store has neither."""
    if drive.ue_pos is not None and context.array is not None:
        d = drive.ue_pos[frames].astype(np.float64) - context.array.position
        return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
    if drive.paths is None:
        return None
    p = drive.paths
    power = np.abs(p.gain[frames]) ** 2 + 1e30 * p.is_los[frames]  # the LoS path wins when present
    best = np.argmax(power, axis=-1)
    return p.departure[frames][np.arange(len(frames)), best].astype(np.float64)


def uses_path_table(drive: Drive, context: TwinContext) -> bool:
    """Whether injected blockage cuts this drive's path table (else it attenuates beams' RSRP): it
    needs the table, the base station's array and codebook weights for that array."""
    array, weights = context.array, context.weights
    return (
        drive.paths is not None
        and array is not None
        and weights is not None
        and weights.shape[1] == array.num_elements
    )


def blocked_sweeps(
    drive: Drive,
    context: TwinContext,
    config: BlockageFaultConfig,
    active: np.ndarray,
    noise_rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """True and measured RSRP sweeps (T, K) of a drive with injected blockage on `active` frames.

    With a path table, the cut paths are attenuated and h is recomputed (the oracle beam may move to
    a reflection); otherwise the RSRP of the beams pointing at the UE is attenuated. When the store has
    a noiseless truth, the measurement (thermal noise + detector error) is redrawn from `noise_rng`
    for every frame, so seeds differ in measurement noise as a receiver would. Returns (true,
    measured, whether paths were used).
    """
    noise = context.noise_power_dbm
    true = drive.true_dbm.astype(np.float64)
    frames = np.flatnonzero(active)
    used_paths = False
    if frames.size and config.attenuation_db > 0:
        if uses_path_table(drive, context):
            used_paths = True
            true[frames] = _recomputed_rsrp(drive, context, frames, config)
        else:
            true = _attenuated_beams(drive, context, frames, config, true)
    if context.truth == "measured":
        return true, true.astype(np.float32), used_paths
    measured = measure_rsrp_dbm(true, noise, context.measurement_noise_db, noise_rng)
    return true, measured.astype(np.float32), used_paths


def _recomputed_rsrp(
    drive: Drive, context: TwinContext, frames: np.ndarray, config: BlockageFaultConfig
) -> np.ndarray:
    array, p = context.array, drive.paths
    departure = p.departure[frames].astype(np.float64)  # (F, L, 3)
    toward_ue = _ue_direction(drive, context, frames)
    ue_azimuth = np.arctan2(toward_ue[:, 1], toward_ue[:, 0])
    cut = cut_mask(departure, p.is_los[frames], ue_azimuth, config.half_width_deg) & p.valid[frames]
    steering = array.response(array.sin_angle(departure))  # (F, L, N): the real elements
    gain = p.gain[frames].astype(np.complex128)
    # Add the change only: h keeps the weak paths the store's table dropped (max_paths_stored).
    base = drive.h[frames] if drive.h is not None else np.einsum("fl,fln->fn", gain, steering)
    delta = np.einsum(
        "fl,fln->fn", np.where(cut, gain * (10 ** (-config.attenuation_db / 20) - 1), 0), steering
    )
    h = base + delta
    # einsum, not BLAS: OpenBLAS threads spin and starve parallel evaluation workers
    power = np.abs(np.einsum("fn,kn->fk", np.conj(h), context.weights)) ** 2
    return context.tx_power_dbm + 10 * np.log10(np.maximum(power, 1e-30))


def _attenuated_beams(
    drive: Drive, context: TwinContext, frames: np.ndarray, config: BlockageFaultConfig, true: np.ndarray
) -> np.ndarray:
    """Fallback without a path table: attenuate the signal part of the beams aimed within
    ±half_width of the UE (or, without a position, of the frame's strongest beam)."""
    angles = context.angles_deg
    toward_ue = _ue_direction(drive, context, frames) if context.array is not None else None
    if toward_ue is not None:
        centre = np.rad2deg(np.arcsin(np.clip(context.array.sin_angle(toward_ue), -1, 1)))
    else:
        centre = angles[np.argmax(true[frames], axis=-1)]
    hit = np.abs(angles[None, :] - centre[:, None]) <= config.half_width_deg  # (F, K)
    sub = true[frames]
    noise_mw = 10 ** (context.noise_power_dbm / 10) if context.truth == "measured" else 0.0
    signal = np.maximum(10 ** (sub / 10) - noise_mw, 1e-30)
    attenuated = 10 * np.log10(signal * 10 ** (-config.attenuation_db / 10) + noise_mw)
    out = true.copy()
    out[frames] = np.where(hit, attenuated, sub)
    return out

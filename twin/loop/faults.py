"""Faults injected at replay time: blockage events on the channel and sensor dropout per modality.

Faults are drawn when an episode starts, from a seed, so one cached dataset serves every robustness
study and the same (seed, drive) always gives the same schedule. Every fault component draws from
its own random stream (blockage, measurement noise, each modality), so switching one fault on or off
never changes the draws of another: a policy that does not read the camera scores identically with
and without camera dropout.

Blockage: events start as a Poisson process (`rate_per_s`) with durations uniform or log-uniform in
`duration_s`; while one is active a tall virtual blocker stands between the base station and the UE.
It attenuates the line-of-sight path and every path leaving the base station within `half_width_deg`
of the UE's azimuth by `attenuation_db`, and h is recomputed from the path table, so the oracle beam
may move to a reflection. Without a path table (replayed measurements) the measured RSRP of the
beams pointing within `half_width_deg` of the UE (or of the strongest beam) is attenuated instead.

Dropout: per modality a two-state burst process whose long-run share of affected frames is
`probability` and whose mean burst lasts `burst_s`. Modes: missing (zeros, mask 0), frozen (the last
frame before the burst repeated), noisy (additive noise), partial (camera: an occluded rectangle;
LiDAR: points lost; radar: chirps lost; GPS and position: an outage, the last fix held with mask 0).
Only `missing` and outages clear the mask: frozen, noisy and occluded data look valid to a policy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.errors import ConfigError
from twin.validation import at_least, between, build, one_of, ordered_pair, spec

if TYPE_CHECKING:
    from twin.loop.drives import Drive, TwinContext

# Observation modalities a fault can hit; `position` is the store's ue_pos (an ideal position feed).
SENSOR_MODALITIES = ("camera", "lidar", "radar", "gps", "position")
DROPOUT_MODES = ("missing", "frozen", "noisy", "partial")

# Random-stream ids: fixed per component so draws never depend on which other faults are on.
STREAM_BLOCKAGE = 0
STREAM_MEASUREMENT = 1
STREAM_MODALITY = {name: 10 + i for i, name in enumerate(SENSOR_MODALITIES)}


@dataclass(frozen=True)
class BlockageFaultConfig:
    rate_per_s: float = spec(0.0, check=between(0, 100))  # events starting per second of driving
    duration_s: tuple[float, float] = spec((0.5, 2.0), check=ordered_pair(0.0))  # [min, max]
    duration_distribution: str = spec("uniform", check=one_of("uniform", "log_uniform"))
    attenuation_db: float = spec(20.0, check=between(0, 300))  # on every path the blocker cuts
    half_width_deg: float = spec(10.0, check=between(0, 180))  # azimuth half-width of the cut

    def validate(self, prefix: str) -> None:
        if self.duration_distribution == "log_uniform" and self.duration_s[0] <= 0:
            raise ConfigError(
                f"{prefix}.duration_s = {list(self.duration_s)}: expected min > 0 with a log_uniform "
                "duration_distribution"
            )

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0 and self.attenuation_db > 0


@dataclass(frozen=True)
class DropoutConfig:
    probability: float = spec(0.0, check=between(0, 1))  # long-run share of frames affected
    burst_s: float = spec(0.5, check=at_least(0))  # mean burst length (at least one frame)
    mode: str = spec("missing", check=one_of(*DROPOUT_MODES))
    # noisy: camera in fractions of full scale, LiDAR/GPS/position in metres, radar relative to RMS.
    noise_std: float = spec(0.1, check=at_least(0))
    # partial: share of the image occluded, of LiDAR points lost, of radar chirps lost.
    fraction: float = spec(0.5, check=between(0, 1))

    @property
    def enabled(self) -> bool:
        return self.probability > 0


@dataclass(frozen=True)
class DropoutsConfig:
    camera: DropoutConfig = spec(factory=DropoutConfig)
    lidar: DropoutConfig = spec(factory=DropoutConfig)
    radar: DropoutConfig = spec(factory=DropoutConfig)
    gps: DropoutConfig = spec(factory=DropoutConfig)
    position: DropoutConfig = spec(factory=DropoutConfig)


@dataclass(frozen=True)
class FaultsConfig:
    blockage: BlockageFaultConfig = spec(factory=BlockageFaultConfig)
    dropout: DropoutsConfig = spec(factory=DropoutsConfig)

    def only(self, modalities: frozenset[str] | set[str]) -> FaultsConfig:
        """The same faults with dropout kept only on `modalities` (what a policy can notice)."""
        kept = {
            m: getattr(self.dropout, m) if m in modalities else DropoutConfig() for m in SENSOR_MODALITIES
        }
        return FaultsConfig(blockage=self.blockage, dropout=DropoutsConfig(**kept))

    def with_dropout(self, modality: str, **changes: Any) -> FaultsConfig:
        current = getattr(self.dropout, modality)
        dropout = dataclasses.replace(self.dropout, **{modality: dataclasses.replace(current, **changes)})
        return dataclasses.replace(self, dropout=dropout)


NO_FAULTS = FaultsConfig()


def faults_from(value: FaultsConfig | Mapping[str, Any] | None, prefix: str = "faults") -> FaultsConfig:
    """Accept a FaultsConfig, a plain mapping (validated, one-line errors) or None (no faults)."""
    if value is None:
        return NO_FAULTS
    if isinstance(value, FaultsConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{prefix} = {value!r}: expected a mapping with keys blockage, dropout")
    return build(FaultsConfig, value, prefix)


def stream(seed: int, episode: int, component: int) -> np.random.Generator:
    return np.random.default_rng([seed, episode, component])


# --- blockage -------------------------------------------------------------------------------------


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
    from twin.radio.codebook import measure_rsrp_dbm  # not at import: twin.config imports this module

    noise = context.noise_power_dbm
    true = drive.true_dbm.astype(np.float64)
    frames = np.flatnonzero(active)
    used_paths = False
    if frames.size and config.attenuation_db > 0:
        array, weights, p = context.array, context.weights, drive.paths
        if (
            p is not None
            and array is not None
            and weights is not None
            and weights.shape[1] == array.num_elements
        ):
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
    steering = array.steering(array.sin_angle(departure))  # (F, L, N)
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


# --- dropout --------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Schedules:
    blockage: BlockageSchedule
    dropouts: dict[str, DropoutSchedule]  # only modalities with dropout configured


def schedules(
    faults: FaultsConfig,
    t: np.ndarray,
    modalities: tuple[str, ...],
    frame_rate_hz: float,
    seed: int,
    episode: int,
) -> Schedules:
    """Every fault of one drive, each from its own stream seeded by (seed, episode, component)."""
    blockage = blockage_schedule(faults.blockage, t, stream(seed, episode, STREAM_BLOCKAGE))
    dropouts = {}
    for m in modalities:
        config = getattr(faults.dropout, m)
        if config.enabled:
            rng = stream(seed, episode, STREAM_MODALITY[m])
            dropouts[m] = dropout_schedule(m, config, len(t), frame_rate_hz, rng)
    return Schedules(blockage, dropouts)


def describe(faults: FaultsConfig) -> str:
    """A short human-readable label, e.g. 'blockage 0.2/s, camera missing 0.3'."""
    parts = []
    if faults.blockage.enabled:
        parts.append(f"blockage {faults.blockage.rate_per_s:g}/s")
    for name in SENSOR_MODALITIES:
        d = getattr(faults.dropout, name)
        if d.enabled:
            parts.append(f"{name} {d.mode} {d.probability:g}")
    return ", ".join(parts) or "none"

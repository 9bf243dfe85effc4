"""Ray tracing → per-path tables → narrowband ULA channels h (N) and optional OFDM CSI (N x S).

Sionna RT traces the base station as a single isotropic-position source (its element pattern
included); the array response is applied here from each path's departure direction, exactly what
Sionna's synthetic arrays do, so the stored path table reproduces h and lets later stages (blockage
injection, other arrays) recompute it. Sionna's coefficient `a` excludes the carrier phase, so each
path's baseband gain is a * exp(-j 2 pi f_c tau).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from twin.radio.codebook import UniformLinearArray
from twin.rt_backend import sionna_rt
from twin.scenario.config import RayTracingConfig
from twin.trace.scene import TwinScene

SPEED_OF_LIGHT = 299_792_458.0


@dataclass(frozen=True)
class PathTable:
    """Paths of R receivers, padded to L paths (strongest first) and D interactions."""

    gain: np.ndarray  # (R, L) complex64 baseband gain at the carrier, incl. path loss and patterns
    delay_s: np.ndarray  # (R, L) float32
    departure: np.ndarray  # (R, L, 3) float32 unit vector leaving the base station
    doppler_hz: np.ndarray  # (R, L) float32
    is_los: np.ndarray  # (R, L) bool
    bounces: np.ndarray  # (R, L) int8 number of interactions
    vertices: np.ndarray  # (R, L, D, 3) float32 interaction points, NaN where none
    valid: np.ndarray  # (R, L) bool

    @property
    def los(self) -> np.ndarray:
        """(R,) whether the line-of-sight path exists."""
        return (self.is_los & self.valid).any(axis=-1)

    def truncated(self, max_paths: int) -> tuple[PathTable, np.ndarray]:
        """Keep the `max_paths` strongest paths; also return the number dropped per receiver."""
        power = np.where(self.valid, np.abs(self.gain) ** 2, -1.0)
        order = np.argsort(-power, axis=-1, kind="stable")[:, :max_paths]
        dropped = np.maximum(self.valid.sum(axis=-1) - max_paths, 0)

        def take(x: np.ndarray) -> np.ndarray:
            idx = order.reshape(order.shape + (1,) * (x.ndim - 2))
            return np.take_along_axis(x, idx, axis=1)

        table = PathTable(
            gain=take(self.gain),
            delay_s=take(self.delay_s),
            departure=take(self.departure),
            doppler_hz=take(self.doppler_hz),
            is_los=take(self.is_los),
            bounces=take(self.bounces),
            vertices=take(self.vertices),
            valid=take(self.valid),
        )
        return table.padded(max_paths), dropped

    def padded(self, num_paths: int) -> PathTable:
        extra = num_paths - self.gain.shape[1]
        if extra <= 0:
            return self

        def pad(x: np.ndarray, value: object) -> np.ndarray:
            widths = [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2)
            return np.pad(x, widths, constant_values=value)

        return PathTable(
            gain=pad(self.gain, 0),
            delay_s=pad(self.delay_s, 0),
            departure=pad(self.departure, 0),
            doppler_hz=pad(self.doppler_hz, 0),
            is_los=pad(self.is_los, False),
            bounces=pad(self.bounces, 0),
            vertices=pad(self.vertices, np.nan),
            valid=pad(self.valid, False),
        )

    @staticmethod
    def concatenate(tables: list[PathTable]) -> PathTable:
        width = max(t.gain.shape[1] for t in tables)
        tables = [t.padded(width) for t in tables]
        return PathTable(
            *(np.concatenate([getattr(t, f) for t in tables]) for f in PathTable.__dataclass_fields__)
        )


def narrowband_channel(paths: PathTable, array: UniformLinearArray) -> np.ndarray:
    """h (..., N): the sum over paths of gain x array response in the departure direction."""
    steering = array.response(array.sin_angle(paths.departure.astype(np.float64)))
    gain = np.where(paths.valid, paths.gain, 0).astype(np.complex128)
    return np.einsum("...l,...ln->...n", gain, steering).astype(np.complex64)


def through_blockers(
    paths: PathTable, h: np.ndarray, array: UniformLinearArray, loss_db: float
) -> np.ndarray:
    """h (T, N) of a static UE's drive with its line-of-sight path, `loss_db` weaker, added to the
    frames where a blocker cut it: the path of the first clear frame (a static link's LoS does not
    move). A drive without a clear frame is returned as it is."""
    clear = np.flatnonzero(paths.los)
    if clear.size == 0:
        return h
    one = PathTable(*(getattr(paths, f)[clear[0] : clear[0] + 1] for f in PathTable.__dataclass_fields__))
    los = narrowband_channel(dataclasses.replace(one, valid=one.valid & one.is_los), array)[0]
    out = h.copy()
    out[~paths.los] += los * np.float32(10 ** (-loss_db / 20))
    return out


def ofdm_channel(
    paths: PathTable, array: UniformLinearArray, carrier_hz: float, offsets_hz: np.ndarray
) -> np.ndarray:
    """CSI (..., N, S) at subcarrier offsets from the carrier (delay phase and frequency-scaled array)."""
    scale = (carrier_hz + offsets_hz) / carrier_hz  # (S,)
    sin_theta = array.sin_angle(paths.departure.astype(np.float64))  # (..., L)
    steering = array.response(sin_theta[..., None], scale)  # (..., L, S, N)
    delay_phase = np.exp(
        -2j * np.pi * paths.delay_s[..., None].astype(np.float64) * offsets_hz
    )  # (..., L, S)
    gain = np.where(paths.valid, paths.gain, 0).astype(np.complex128)
    return np.einsum("...l,...ls,...lsn->...ns", gain, delay_phase, steering).astype(np.complex64)


def subcarrier_offsets(bandwidth_hz: float, num_subcarriers: int) -> np.ndarray:
    """Subcarrier centre offsets, symmetric around the carrier."""
    spacing = bandwidth_hz / num_subcarriers
    return (np.arange(num_subcarriers) - (num_subcarriers - 1) / 2) * spacing


@dataclass
class TraceTimer:
    """Seconds spent inside Sionna's PathSolver (including reading its tensors back)."""

    solver_s: float = 0.0
    calls: int = 0
    receivers: int = 0
    history: list[float] = field(default_factory=list)


class ChannelTracer:
    """Callable: receiver positions and velocities in the currently posed scene → PathTable.

    Receivers are traced in batches of at most `max_receivers_per_call` (larger Sionna RT 2.2 calls
    silently lose paths); the scene's receivers are moved in place between batches.
    """

    def __init__(self, twin: TwinScene, rt_config: RayTracingConfig):
        rt = sionna_rt()
        self.twin = twin
        self.config = rt_config
        self.solver = rt.PathSolver(deterministic=True)
        self.timer = TraceTimer()
        self._carrier_hz = twin.config.radio.carrier_hz

    def __call__(
        self, positions: np.ndarray, velocities: np.ndarray, yaws: np.ndarray | None = None
    ) -> PathTable:
        """Paths to receivers at `positions` moving at `velocities`, their antennas facing `yaws`."""
        positions = np.asarray(positions, np.float64).reshape(-1, 3)
        velocities = np.asarray(velocities, np.float64).reshape(-1, 3)
        yaws = np.zeros(len(positions)) if yaws is None else np.asarray(yaws, np.float64).reshape(-1)
        batch = self.config.max_receivers_per_call
        tables = [
            self._trace_batch(positions[i : i + batch], velocities[i : i + batch], yaws[i : i + batch])
            for i in range(0, len(positions), batch)
        ]
        return PathTable.concatenate(tables)

    def _trace_batch(self, positions: np.ndarray, velocities: np.ndarray, yaws: np.ndarray) -> PathTable:
        self.twin.place_receivers(positions, velocities, yaws)
        cfg = self.config
        start = time.perf_counter()
        paths = self.solver(
            self.twin.scene,
            max_depth=cfg.max_depth,
            samples_per_src=cfg.samples_per_src,
            synthetic_array=True,
            los=cfg.los,
            specular_reflection=cfg.specular_reflection,
            diffuse_reflection=cfg.diffuse_reflection,
            refraction=cfg.refraction,
            diffraction=cfg.diffraction,
            seed=cfg.seed,
        )
        raw = _read_paths(paths, len(positions))
        elapsed = time.perf_counter() - start
        self.timer.solver_s += elapsed
        self.timer.calls += 1
        self.timer.receivers += len(positions)
        self.timer.history.append(elapsed)
        return _to_table(raw, self._carrier_hz, cfg.max_depth)


def _read_paths(paths: object, num_rx: int) -> dict[str, np.ndarray]:
    """Pull Sionna's tensors into numpy with the single-tx, single-antenna axes dropped."""
    a_re, a_im = paths.a
    # Shapes: a [rx, rx_ant, tx, tx_ant, P]; tau/angles/doppler [rx, tx, P] (synthetic arrays);
    # interactions [D, rx, tx, P]; vertices [D, rx, tx, P, 3].
    a = (a_re.numpy() + 1j * a_im.numpy())[:, 0, 0, 0, :]
    out = {
        "a": a,
        "tau": paths.tau.numpy()[:, 0, :],
        "theta_t": paths.theta_t.numpy()[:, 0, :],
        "phi_t": paths.phi_t.numpy()[:, 0, :],
        "doppler": paths.doppler.numpy()[:, 0, :],
        "valid": paths.valid.numpy()[:, 0, :],
    }
    num_paths = a.shape[-1]
    interactions = paths.interactions.numpy()
    vertices = paths.vertices.numpy()
    if num_paths == 0 or interactions.size == 0:
        depth = max(interactions.shape[0] if interactions.ndim == 4 else 0, 0)
        out["interactions"] = np.zeros((num_rx, num_paths, depth), np.uint32)
        out["vertices"] = np.zeros((num_rx, num_paths, depth, 3), np.float32)
    else:
        out["interactions"] = np.moveaxis(interactions[:, :, 0, :], 0, -1)
        out["vertices"] = np.moveaxis(vertices[:, :, 0, :, :], 0, -2)
    return out


def _duplicates(
    valid: np.ndarray,
    tau: np.ndarray,
    a: np.ndarray,
    theta_t: np.ndarray,
    departure: np.ndarray,
    bounces: np.ndarray,
) -> np.ndarray:
    """(R, P) mask of paths that repeat an earlier path of the same receiver.

    Sionna RT 2.2's deterministic mode can report one path several times at large sample counts
    (seen with 1e6 samples: the LoS path five times, the copies with zero departure angles), which
    would add its field coherently again. A copy has the same interactions, delay and gain, and either
    the same departure or the degenerate zero one; mirror-symmetric twins differ in departure and stay.
    """
    same = (
        (np.abs(tau[:, :, None] - tau[:, None, :]) < 1e-13)
        & (np.abs(a[:, :, None] - a[:, None, :]) <= 1e-6 * np.abs(a[:, None, :]))
        & (bounces[:, :, None] == bounces[:, None, :])
        & valid[:, :, None]
        & valid[:, None, :]
    )
    same_direction = np.abs(departure[:, :, None, :] - departure[:, None, :, :]).max(axis=-1) < 1e-6
    degenerate = (theta_t == 0)[:, :, None]
    earlier = np.tril(np.ones(same.shape[1:], bool), k=-1)  # [p, q] with q < p
    return (same & (same_direction | degenerate) & earlier).any(axis=-1)


def _to_table(raw: dict[str, np.ndarray], carrier_hz: float, max_depth: int) -> PathTable:
    valid = raw["valid"].astype(bool)
    tau = raw["tau"].astype(np.float64)
    gain = raw["a"] * np.exp(-2j * np.pi * carrier_hz * np.where(valid, tau, 0.0))
    theta, phi = raw["theta_t"].astype(np.float64), raw["phi_t"].astype(np.float64)
    departure = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    interactions = raw["interactions"]
    bounces = (interactions != 0).sum(axis=-1)
    valid = valid & ~_duplicates(valid, tau, raw["a"], theta, departure, bounces)
    vertices = np.where((interactions != 0)[..., None], raw["vertices"], np.nan)
    depth = vertices.shape[-2]
    if depth < max_depth:  # keep D fixed so tables of different calls stack
        pad = [(0, 0), (0, 0), (0, max_depth - depth), (0, 0)]
        vertices = np.pad(vertices, pad, constant_values=np.nan)
    return PathTable(
        gain=np.where(valid, gain, 0).astype(np.complex64),
        delay_s=np.where(valid, tau, 0).astype(np.float32),
        departure=np.where(valid[..., None], departure, 0).astype(np.float32),
        doppler_hz=np.where(valid, raw["doppler"], 0).astype(np.float32),
        is_los=valid & (bounces == 0),
        bounces=bounces.astype(np.int8),
        vertices=vertices[..., :max_depth, :].astype(np.float32),
        valid=valid,
    )

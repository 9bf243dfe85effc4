"""The Gymnasium beam-selection environment: one drive per episode, one beam per frame.

Contract (DESIGN.md): action = beam index, Discrete(K). Observation = Dict of
  beam      (1,) int64    the beam served in the previous frame (0 after reset)
  rsrp      (1,) float32  the RSRP measured on it, dBm (the only RF feedback a deployed link has)
  mask      MultiBinary   1 + one per modality, in `mask_names` order: feedback valid, then each
                          sensor usable this frame (0 when missing, in a GPS outage or before a fix)
  camera, lidar, radar, gps, position, channel   the enabled sensor modalities of the store (see
                          README); `channel` (N, S, 2) float32 is the uplink channel estimate of
                          the frame over the store's S subcarriers (its csi plus SRS noise at
                          `srs_snr_db`, twin.loop.srs), (N, 2) from h where the store has no csi,
                          real/imaginary parts: its SRS costs one measurement slot a frame
and, in the probing variant, `probe` (K,) float32: the beams probed in the previous frame (-300 dBm
where not probed). Reward = achievable rate log2(1 + SNR) of the served beam under the noiseless
(faulted) truth; with `penalize_overhead` it is scaled by (1 - beam-sweep overhead). `info` carries
the oracle beam, SNR loss, RSRP difference, rate, oracle rate, blocked and the faults active.

Classical policies sweep beams inside a frame through `measure(beams)` (which charges airtime);
the genie reads `oracle_beam()`. All per-episode arrays (faulted sweeps, oracle, fault schedules) are
computed at reset from the preloaded drive, so a step is a handful of array lookups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from twin.errors import ConfigError, UsageError
from twin.loop.drives import RSRP_FLOOR_DBM, Drive, ReplaySet, TwinContext, load_drives
from twin.loop.faults import (
    STREAM_MEASUREMENT,
    STREAM_SRS,
    DropoutSchedule,
    blocked_sweeps,
    corrupt,
    schedules,
    stream,
)
from twin.loop.metrics import rate
from twin.loop.srs import check_srs_snr, srs_estimate
from twin.observations import OBSERVED_MODALITIES as SENSOR_MODALITIES
from twin.radio.codebook import MAX_RSRP_DBM
from twin.scenario.faults import FaultsConfig, faults_from

RSRP_CEIL_DBM = MAX_RSRP_DBM  # observation bound (the floor, RSRP_FLOOR_DBM, also means "not probed")
RESET_OPTIONS = ("episode", "fault_seed")
FLOAT32_MAX = float(np.finfo(np.float32).max)


class BeamSelectionEnv(gym.Env):
    """Replays a store's drives with blockage and sensor dropout injected on a seeded schedule."""

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(
        self,
        store: str | Path | None = None,
        faults: FaultsConfig | Mapping[str, Any] | None = None,
        modalities: Sequence[str] | None = None,
        beam_measurement_s: float = 1e-4,
        penalize_overhead: bool = False,
        episodes: Sequence[str | int] | None = None,
        srs_snr_db: float | None = None,
    ):
        if store is None:
            raise ConfigError("store: required; pass the path of a twin store, e.g. gym.make(id, store=path)")
        self.faults = faults_from(faults)
        if not 0 <= beam_measurement_s <= 1:
            raise ConfigError(f"beam_measurement_s = {beam_measurement_s!r}: expected a value in [0, 1] s")
        self.beam_measurement_s = float(beam_measurement_s)
        self.penalize_overhead = bool(penalize_overhead)
        self.srs_snr_db = check_srs_snr(srs_snr_db)  # None: the link budget's SNR (twin.loop.srs)
        replay = load_drives(store)
        context = replay.context
        if modalities is None:  # the channel estimate is opt-in: its SRS costs airtime in every frame
            modalities = tuple(m for m in context.sensors if m != "channel")
        for i, m in enumerate(modalities):
            if m not in SENSOR_MODALITIES:
                raise ConfigError(
                    f"modalities[{i}] = {m!r}: unknown modality; allowed: {', '.join(SENSOR_MODALITIES)}"
                )
        replay.ensure(modalities)
        self.replay: ReplaySet = replay
        self.context: TwinContext = context
        self.modalities: tuple[str, ...] = tuple(m for m in SENSOR_MODALITIES if m in modalities)
        self.mask_names: tuple[str, ...] = ("rsrp", *self.modalities)
        self._drives = _select(replay.drives, episodes)
        self._slot_fraction = self.beam_measurement_s * context.frame_rate_hz
        # Observing the uplink channel estimate needs the UE's SRS in every frame: one slot of airtime,
        # however many subcarriers (one SRS symbol spans the band: all S are measured at once).
        self._srs_slots = 1 if "channel" in self.modalities else 0
        k = context.num_beams
        self.action_space = spaces.Discrete(k)
        self.observation_space = spaces.Dict(self._spaces(k))
        self._drive: Drive | None = None
        self._mask_template = np.ones(len(self.mask_names), np.int8)

    # --- spaces -------------------------------------------------------------------------------------

    def _spaces(self, k: int) -> dict[str, spaces.Space]:
        out: dict[str, spaces.Space] = {
            "beam": spaces.Box(0, k - 1, (1,), np.int64),
            "rsrp": spaces.Box(RSRP_FLOOR_DBM, RSRP_CEIL_DBM, (1,), np.float32),
            "mask": spaces.MultiBinary(len(self.mask_names)),
        }
        sample = self.replay.drives[0].sensors
        for m in self.modalities:
            shape = sample[m].shape[1:]
            if m == "camera":
                out[m] = spaces.Box(0, 255, shape, np.uint8)
            elif m == "gps":
                out[m] = spaces.Box(np.array([-90.0, -180.0]), np.array([90.0, 180.0]), dtype=np.float64)
            else:  # finite bounds: unbounded Boxes trouble some RL libraries
                out[m] = spaces.Box(-FLOAT32_MAX, FLOAT32_MAX, shape, np.float32)
        return out

    # --- episode ------------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """options: `episode` (index into the drives or an episode id) and `fault_seed` (int);
        both default to draws from the environment's generator, so reset(seed=s) is reproducible."""
        super().reset(seed=seed)
        options = options or {}
        for key in options:
            if key not in RESET_OPTIONS:
                raise ConfigError(f"options.{key}: unknown reset option; allowed: {', '.join(RESET_OPTIONS)}")
        drive = self._pick(options.get("episode"))
        fault_seed = options.get("fault_seed")
        if fault_seed is None:
            fault_seed = int(self.np_random.integers(2**62))
        elif not _is_integer(fault_seed) or fault_seed < 0:
            raise ConfigError(f"options.fault_seed = {fault_seed!r}: expected an integer >= 0")
        self._prepare(drive, int(fault_seed))
        info = {
            "episode": drive.id,
            "fault_seed": self.fault_seed,
            "frames": drive.num_frames,
            "blockage_events_s": self.blockage.as_list(),
            "dropout_frames": {m: int(s.active.sum()) for m, s in self.dropouts.items()},
            "truth": self.context.truth,
            # how injected blockage acted: on the path table, or on measured RSRP (no paths stored)
            "blockage_model": "paths"
            if self._used_paths
            else "rsrp"
            if self.blockage.active.any()
            else "none",
        }
        return self._observe(0), info

    def _pick(self, choice: int | str | None) -> Drive:
        if choice is None:
            return self._drives[int(self.np_random.integers(len(self._drives)))]
        if not isinstance(choice, str) and not _is_integer(choice):
            raise ConfigError(f"options.episode = {choice!r}: expected an episode id or an index")
        if isinstance(choice, str):
            for drive in self._drives:
                if drive.id == choice:
                    return drive
            raise ConfigError(f"options.episode = {choice!r}: no such episode in {self.context.path}")
        if not 0 <= int(choice) < len(self._drives):
            raise ConfigError(
                f"options.episode = {choice!r}: expected an index in [0, {len(self._drives) - 1}]"
            )
        return self._drives[int(choice)]

    def _prepare(self, drive: Drive, fault_seed: int) -> None:
        """Everything the steps of this episode replay: faulted sweeps, oracle, fault schedules."""
        context, faults, episode = self.context, self.faults, drive.index
        self._drive, self.fault_seed = drive, fault_seed
        frames = drive.num_frames
        injected = schedules(faults, drive.t, self.modalities, context.frame_rate_hz, fault_seed, episode)
        self.blockage, self.dropouts = injected.blockage, injected.dropouts
        true, measured, self._used_paths = blocked_sweeps(
            drive,
            context,
            faults.blockage,
            self.blockage.active,
            stream(fault_seed, episode, STREAM_MEASUREMENT),
        )
        self.true_dbm, self.measured_dbm = true, measured
        self._observed = dict(drive.sensors)
        if "channel" in self.modalities:  # this episode's SRS estimates, drawn once per drive and seed
            h = drive.sensors["channel"].view(np.complex64)[..., 0]
            rng = stream(fault_seed, episode, STREAM_SRS)
            estimate = srs_estimate(h, self.srs_snr_db, context.tx_power_dbm, context.noise_power_dbm, rng)
            self._observed["channel"] = estimate.view(np.float32).reshape(*h.shape, 2)
        self.snr_db = true - context.noise_power_dbm
        self.oracle = np.argmax(true, axis=1)
        self.oracle_snr_db = self.snr_db[np.arange(frames), self.oracle]
        self.oracle_rate = rate(self.oracle_snr_db)
        self.measured_best = np.argmax(measured, axis=1)
        self.blocked = drive.blocked | self.blockage.active
        self.served = np.full(frames, -1, np.int64)
        self._ranking: np.ndarray | None = None
        self._probes = [0] * frames
        self._overhead = [0.0] * frames
        # Python lists: a step reads scalars, and list indexing is several times faster than numpy's.
        self._rows = (
            self.snr_db.tolist(),
            measured.tolist(),
            self.oracle.tolist(),
            self.oracle_snr_db.tolist(),
            self.oracle_rate.tolist(),
            self.measured_best.tolist(),
            self.blocked.tolist(),
            _fault_labels(frames, self.blockage.active, self.dropouts),
        )
        self._frames = frames
        self._t = 0
        self._beam, self._rsrp, self._feedback = 0, RSRP_FLOOR_DBM, False

    # --- inside a frame: what policies may use ------------------------------------------------------

    @property
    def frame(self) -> int:
        return self._t

    @property
    def overhead(self) -> np.ndarray:
        """(T,) share of each frame's airtime spent measuring beams so far."""
        return np.asarray(self._overhead)

    @property
    def probes(self) -> np.ndarray:
        """(T,) beams measured in each frame so far."""
        return np.asarray(self._probes)

    def measure(self, beams: Sequence[int] | np.ndarray | int) -> np.ndarray:
        """Measured RSRP (dBm) of `beams` in the current frame; each beam costs one measurement slot."""
        t = min(self._t, self._frames - 1)
        beams = self._beam_indices(beams, "beams")
        values = self.measured_dbm[t, beams]
        self._probes[t] += values.size
        return values

    def oracle_beam(self) -> int:
        """The true best beam of the current frame (for the genie; costs nothing)."""
        return self._rows[2][min(self._t, self._frames - 1)]

    def oracle_ranking(self) -> np.ndarray:
        """All beams of the current frame from best to worst under the truth (ties: lower index)."""
        if self._ranking is None:
            self._ranking = np.argsort(-self.true_dbm, axis=1, kind="stable")
        return self._ranking[min(self._t, self._frames - 1)]

    # --- step -------------------------------------------------------------------------------------

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._drive is None:
            raise RuntimeError("call reset() before step()")
        t, frames = self._t, self._frames
        if t >= frames:
            raise RuntimeError("episode is over; call reset()")
        k = int(self._beam_indices(action, "action", scalar=True))
        snr_rows, measured_rows, oracle, oracle_snr, oracle_rate, best, blocked, labels = self._rows
        overhead = min(1.0, (self._probes[t] + self._srs_slots) * self._slot_fraction)
        snr = snr_rows[t][k]
        rate = math.log2(1 + 10 ** (snr / 10))
        effective = rate * (1 - overhead)
        measured = measured_rows[t]
        self.served[t] = k
        self._overhead[t] = overhead
        info = {
            "frame": t,
            "beam": k,
            "oracle_beam": oracle[t],
            "snr_db": snr,
            "snr_loss_db": oracle_snr[t] - snr,
            "rsrp_diff_db": measured[best[t]] - measured[k],
            "rate": rate,
            "oracle_rate": oracle_rate[t],
            "effective_rate": effective,
            "overhead": overhead,
            "blocked": blocked[t],
            "faults": labels[t],
        }
        self._beam, self._rsrp, self._feedback = k, measured[k], True
        self._t = t + 1
        terminated = self._t >= frames
        reward = effective if self.penalize_overhead else rate
        return self._observe(min(self._t, frames - 1)), reward, terminated, False, info

    def _beam_indices(self, value: Any, name: str, scalar: bool = False) -> np.ndarray:
        """`value` as beam indices, refused unless integers inside the codebook: a negative index
        would wrap around to another beam, a float or bool would be cast silently."""
        array = np.asarray(value)
        if array.size == 0 and not scalar:  # measure([]) measures nothing
            array = array.astype(np.int64)
        k = self.context.num_beams
        shape_ok = array.size == 1 if scalar else array.ndim <= 1
        if (
            array.dtype.kind not in "iu"
            or not shape_ok
            or (array.size and (array.min() < 0 or array.max() >= k))
        ):
            what = "a beam index" if scalar else "beam indices"
            raise UsageError(f"{name} = {value!r}: expected {what} (integers) in [0, {k - 1}]")
        return array.reshape(()) if scalar else array

    # --- observation ------------------------------------------------------------------------------

    def _observe(self, t: int) -> dict[str, np.ndarray]:
        drive = self._drive
        mask = self._mask_template.copy()
        mask[0] = self._feedback
        obs = {
            "beam": np.array([self._beam], np.int64),
            "rsrp": np.array([min(max(self._rsrp, RSRP_FLOOR_DBM), RSRP_CEIL_DBM)], np.float32),
            "mask": mask,
        }
        for i, m in enumerate(self.modalities, start=1):
            schedule = self.dropouts.get(m)
            if schedule is None or not schedule.active[t]:
                obs[m] = self._observed[m][t].copy()  # users keep observations: never hand out views
                mask[i] = drive.sensor_ok[m][t]
                continue
            source = int(schedule.source[t])
            data = self._observed[m][source]
            rows = int(drive.lidar_count[source]) if m == "lidar" and drive.lidar_count is not None else None
            faulted = corrupt(m, data, t, schedule, getattr(self.faults.dropout, m), rows)
            obs[m] = faulted.copy() if faulted is data else faulted
            mask[i] = drive.sensor_ok[m][source] and not schedule.masked[t]
        return obs

    # --- for evaluators -----------------------------------------------------------------------------

    @property
    def drive(self) -> Drive:
        if self._drive is None:
            raise RuntimeError("call reset() first")
        return self._drive

    @property
    def num_episodes(self) -> int:
        return len(self._drives)

    @property
    def drives(self) -> list[Drive]:
        """The drives this environment replays (all of the store's, or the chosen `episodes`)."""
        return list(self._drives)


class BeamProbingEnv(BeamSelectionEnv):
    """Variant whose action also buys a sweep: MultiDiscrete([K, len(probe_widths)]). Action (k, i)
    serves beam k and measures the beams within ±probe_widths[i] of it; their RSRP arrives in the
    next observation's `probe` entry and their airtime is charged against this frame's rate (the
    reward always pays the overhead here)."""

    def __init__(self, *args: Any, probe_widths: Sequence[int] = (0, 1, 2, 4), **kwargs: Any):
        kwargs.setdefault("penalize_overhead", True)
        super().__init__(*args, **kwargs)
        widths = tuple(int(w) for w in probe_widths)
        if not widths or any(w < 0 for w in widths):
            raise ConfigError(f"probe_widths = {list(probe_widths)!r}: expected non-negative integers")
        self.probe_widths = widths
        k = self.context.num_beams
        self.action_space = spaces.MultiDiscrete([k, len(widths)])
        self.observation_space = spaces.Dict(
            {
                **self.observation_space.spaces,
                "probe": spaces.Box(RSRP_FLOOR_DBM, RSRP_CEIL_DBM, (k,), np.float32),
            }
        )

    def _prepare(self, drive: Drive, fault_seed: int) -> None:
        super()._prepare(drive, fault_seed)
        self._probed = np.full(self.context.num_beams, RSRP_FLOOR_DBM, np.float32)  # this frame
        self._reported = self._probed.copy()  # the previous frame's, shown in the observation

    def measure(self, beams: Sequence[int] | np.ndarray | int) -> np.ndarray:
        values = super().measure(beams)
        self._probed[beams] = np.clip(values, RSRP_FLOOR_DBM, RSRP_CEIL_DBM)
        return values

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        pair = np.asarray(action)
        widths = len(self.probe_widths)
        if pair.shape != (2,) or pair.dtype.kind not in "iu" or not 0 <= pair[1] < widths:
            raise UsageError(
                f"action = {action!r}: expected integers (beam index, probe-width index in [0, {widths - 1}])"
            )
        beam, choice = int(pair[0]), int(pair[1])
        self._beam_indices(beam, "action[0]", scalar=True)
        width = self.probe_widths[choice]
        if width > 0:
            low, high = max(0, beam - width), min(self.context.num_beams - 1, beam + width)
            self.measure(np.arange(low, high + 1))
        self._reported = self._probed
        self._probed = np.full(self.context.num_beams, RSRP_FLOOR_DBM, np.float32)
        return super().step(beam)

    def _observe(self, t: int) -> dict[str, np.ndarray]:
        obs = super()._observe(t)
        obs["probe"] = self._reported.copy()
        return obs


def _is_integer(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _select(drives: list[Drive], episodes: Sequence[str | int] | None) -> list[Drive]:
    if episodes is None:
        return drives
    by_id = {d.id: d for d in drives}
    chosen = []
    for i, e in enumerate(episodes):
        if isinstance(e, str) and e in by_id:
            chosen.append(by_id[e])
        elif isinstance(e, int) and 0 <= e < len(drives):
            chosen.append(drives[e])
        else:
            raise ConfigError(
                f"episodes[{i}] = {e!r}: expected an episode id or an index in [0, {len(drives) - 1}]"
            )
    if not chosen:
        raise ConfigError("episodes = []: expected at least one episode")
    return chosen


def _fault_labels(
    frames: int, blockage: np.ndarray, dropouts: Mapping[str, DropoutSchedule]
) -> list[tuple[str, ...]]:
    """Per frame, what is injected: ('blockage', 'camera:missing', ...)."""
    labels: list[tuple[str, ...]] = [()] * frames
    for t in np.flatnonzero(
        blockage | np.any([s.active for s in dropouts.values()] or [[False] * frames], axis=0)
    ):
        active = ["blockage"] if blockage[t] else []
        active += [f"{m}:{s.mode}" for m, s in dropouts.items() if s.active[t]]
        labels[t] = tuple(active)
    return labels


def register() -> None:
    """Register the environment ids under the `twin` namespace (idempotent)."""
    for env_id, entry in (
        ("twin/BeamSelection-v0", "twin.loop.env:BeamSelectionEnv"),
        ("twin/BeamProbing-v0", "twin.loop.env:BeamProbingEnv"),
    ):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry, disable_env_checker=False)


ENV_IDS = ("twin/BeamSelection-v0", "twin/BeamProbing-v0")
register()

"""The classical beam-management policies: genie, exhaustive and hierarchical sweeps, beam tracking,
the GPS geometric beam, a periodic (stale) sweep and a random beam. Each registers itself by name.

Batch forms (twin.loop.policies.base): the memoryless ones decide lane by lane on one instance; the
ones that keep state between frames hold it per lane, and `act` is their batch form for one lane."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from twin.errors import ConfigError
from twin.loop.drives import TwinContext
from twin.loop.policies.base import Decision, Link, Memoryless, Observation, Policy, mask_of, ranked
from twin.loop.policies.registry import register_policy
from twin.scenario.geodetic import geodetic_to_local
from twin.validation import at_least, between, spec


class Genie(Memoryless):
    """The oracle: the true best beam of every frame, for free (an upper bound, SNR loss 0)."""

    name = "genie"

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        return link.oracle_ranking()[:3]


class Exhaustive(Memoryless):
    """Measures every beam each frame and serves the strongest (pays K slots of overhead)."""

    name = "exhaustive"

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        super().reset(context, rng)
        self._all = np.arange(self.num_beams)

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        return ranked(link.measure(self._all), self._all)

    def act_batch(self, observations: Sequence[Observation], links: Sequence[Link]) -> list[Decision]:
        return list(ranked(np.stack([link.measure(self._all) for link in links]), self._all))


@dataclass(frozen=True)
class HierarchicalOptions:
    coarse_step: int = spec(0, check=between(0, 4096))  # 0: round(sqrt(K))


class Hierarchical(Memoryless):
    """Two-stage sweep: every `coarse_step`-th beam first, then the beams around the best of them
    (about 2 sqrt(K) measurements instead of K)."""

    name = "hierarchical"

    def __init__(self, options: HierarchicalOptions | None = None):
        self.options = options or HierarchicalOptions()

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        super().reset(context, rng)
        k = self.num_beams
        self.step = self.options.coarse_step or max(1, round(math.sqrt(k)))
        self.coarse = np.arange(self.step // 2, k, self.step)
        half = self.step // 2 + 1  # reach halfway to the neighbouring coarse beams
        self._fine = {}  # coarse beam → the narrow beams around it not measured in stage one
        for centre in self.coarse.tolist():
            fine = np.arange(max(0, centre - half), min(k, centre + half + 1))
            self._fine[centre] = fine[~np.isin(fine, self.coarse)]

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        coarse_rsrp = link.measure(self.coarse)
        fine = self._fine[int(self.coarse[np.argmax(coarse_rsrp)])]
        beams = np.concatenate([self.coarse, fine])
        return ranked(np.concatenate([coarse_rsrp, link.measure(fine)]), beams)


@dataclass(frozen=True)
class TrackingOptions:
    width: int = spec(2, check=between(1, 1024))  # beams probed on each side of the last one
    max_steps: int = spec(4, check=between(0, 1024))  # window extensions while the best is at its edge
    resweep_drop_db: float = spec(6.0, check=at_least(0))  # full sweep when the local best falls this far


class Tracking(Memoryless):
    """Local search around the last beam: probes ±width neighbours and, while the strongest probed beam
    sits at the window's edge, extends the window that way (hill climbing, at most `max_steps` times),
    then serves the best. When even that falls `resweep_drop_db` below the previous frame's
    served-beam feedback (the track is lost, e.g. blocked), or at the start of a drive, it sweeps every
    beam."""

    name = "tracking"

    def __init__(self, options: TrackingOptions | None = None):
        self.options = options or TrackingOptions()

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        super().reset(context, rng)
        self._all = np.arange(self.num_beams)

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        if not mask_of(obs, "rsrp"):  # no feedback yet: acquire the beam with a full sweep
            return ranked(link.measure(self._all), self._all)
        last, w, k = int(obs["beam"][0]), self.options.width, self.num_beams
        low, high = max(0, last - w), min(k - 1, last + w)
        beams = np.arange(low, high + 1)
        rsrp = link.measure(beams)
        for _ in range(self.options.max_steps):
            best = int(beams[np.argmax(rsrp)])
            if best == low and low > 0:
                more = np.arange(max(0, low - w), low)
                low = int(more[0])
            elif best == high and high < k - 1:
                more = np.arange(high + 1, min(k, high + w + 1))
                high = int(more[-1])
            else:
                break
            beams = np.concatenate([beams, more])
            rsrp = np.concatenate([rsrp, link.measure(more)])
        if rsrp.max() < float(obs["rsrp"][0]) - self.options.resweep_drop_db:
            return ranked(link.measure(self._all), self._all)
        return ranked(rsrp, beams)


@dataclass(frozen=True)
class GpsOptions:
    ue_height_m: float = spec(1.6, check=between(-100, 1000))  # assumed antenna height with GPS fixes


class GpsGeometric(Policy):
    """The beam pointing at the vehicle: its angle seen from the base station, from the GPS fix (or,
    when the store has no GPS, from the stored UE position). Holds the last beam while the position
    is masked (outage, dropout). No overhead; blind to blockage."""

    name = "gps"
    modalities = frozenset({"gps", "position"})

    def __init__(self, options: GpsOptions | None = None):
        self.options = options or GpsOptions()

    def reads(self, available: Collection[str]) -> frozenset[str]:
        # GPS when the store has it (the deployable source); the stored position only as a stand-in.
        if "gps" in available:
            return frozenset({"gps"})
        return frozenset({"position"}) & frozenset(available)

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        self.reset_batch(context, [rng])

    def reset_batch(self, context: TwinContext, rngs: Sequence[np.random.Generator]) -> None:
        super().reset(context, rngs[0] if rngs else np.random.default_rng(0))
        if context.array is None:
            raise ConfigError(
                f"policy gps needs the base-station pose (root attributes bs_position_m, bs_yaw_deg), "
                f"which store {context.path} lacks"
            )
        self._angles = context.angles_deg
        self._last: list[np.ndarray] = [np.array([self.num_beams // 2])] * len(rngs)  # per lane
        self._origin = None
        if context.geodetic_origin is not None:
            # The local-tangent-plane map is affine in (lat, lon): keep its offset and Jacobian.
            o = context.geodetic_origin
            base = np.array([o.latitude_deg, o.longitude_deg])
            local = geodetic_to_local(o, np.vstack([base, base + np.eye(2)]))
            self._origin = (base, local[0], (local[1:] - local[0]).T)

    def _local_position(self, obs: Mapping[str, np.ndarray]) -> tuple[float, float, float] | None:
        if "gps" in obs:
            if not mask_of(obs, "gps") or self._origin is None:
                return None
            base, offset, jacobian = self._origin
            x, y = offset + jacobian @ (obs["gps"] - base)
            return float(x), float(y), self.options.ue_height_m
        if "position" in obs and mask_of(obs, "position"):
            x, y, z = obs["position"].tolist()
            return x, y, z
        return None

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        return self.act_batch([obs], [link])[0]

    def act_batch(self, observations: Sequence[Observation], links: Sequence[Link]) -> list[Decision]:
        for lane, obs in enumerate(observations):
            position = self._local_position(obs)
            if position is not None:
                self._last[lane] = self._beams_towards(position)
        return self._last[: len(observations)]

    def _beams_towards(self, position: tuple[float, float, float]) -> np.ndarray:
        array = self.context.array
        dx, dy, dz = (p - q for p, q in zip(position, array.position.tolist()))
        ax, ay, _ = array.axis.tolist()
        sin_theta = (dx * ax + dy * ay) / max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-9)
        theta = math.degrees(math.asin(max(-1.0, min(1.0, sin_theta))))
        return np.argsort(np.abs(self._angles - theta), kind="stable")[:3]


@dataclass(frozen=True)
class StaleOptions:
    period_frames: int = spec(10, check=between(1, 1_000_000))  # frames between sweeps


class Stale(Policy):
    """Last-best: a full sweep every `period_frames` frames (a periodic SSB burst) and the best beam
    of the last sweep served in between, however stale it becomes."""

    name = "stale"

    def __init__(self, options: StaleOptions | None = None):
        self.options = options or StaleOptions()

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        self.reset_batch(context, [rng])

    def reset_batch(self, context: TwinContext, rngs: Sequence[np.random.Generator]) -> None:
        super().reset(context, rngs[0] if rngs else np.random.default_rng(0))
        self._all = np.arange(self.num_beams)
        self._frame = 0  # lanes run in lockstep: one frame counter for all
        self._last = [self._all[:1]] * len(rngs)

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        return self.act_batch([obs], [link])[0]

    def act_batch(self, observations: Sequence[Observation], links: Sequence[Link]) -> list[Decision]:
        if self._frame % self.options.period_frames == 0:
            sweeps = np.stack([link.measure(self._all) for link in links])
            self._last[: len(links)] = ranked(sweeps, self._all)
        self._frame += 1
        return self._last[: len(observations)]


class RandomBeam(Policy):
    """A uniformly random beam every frame (the floor)."""

    name = "random"

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        self.reset_batch(context, [rng])

    def reset_batch(self, context: TwinContext, rngs: Sequence[np.random.Generator]) -> None:
        super().reset(context, rngs[0] if rngs else np.random.default_rng(0))
        self._rngs = list(rngs)  # each lane keeps its drive's stream

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        return self.act_batch([obs], [link])[0]

    def act_batch(self, observations: Sequence[Observation], links: Sequence[Link]) -> list[Decision]:
        return [int(rng.integers(self.num_beams)) for rng in self._rngs[: len(observations)]]


for _policy, _options in (
    (Genie, None),
    (Exhaustive, None),
    (Hierarchical, HierarchicalOptions),
    (Tracking, TrackingOptions),
    (GpsGeometric, GpsOptions),
    (Stale, StaleOptions),
    (RandomBeam, None),
):
    register_policy(_policy.name, _policy, _options)

"""The policy interface: what a policy sees (observation, masks), what it may do inside a frame (`Link`)
and what it returns (a `Decision`).

A policy sees the environment's observation and, within the frame, a `Link`: `measure(beams)` sweeps
beams (each costs one measurement slot of airtime, charged by the environment) and
`oracle_ranking()` is the truth, for the genie only. `act` returns the beam to serve, or beams
ranked best first (the first is served; the rest score top-k and DBA). A learned predictor:

    class MyPredictor(Policy):
        name = "mine"
        modalities = frozenset({"camera", "gps"})      # observation entries it reads

        def act(self, obs, link):
            return np.argsort(-self.model(obs))[:3]      # ranked beams, best first

and `register_policy("mine", MyPredictor)` (twin.loop.policies.registry) or an entry point in the
`twin.policies` group (twin.plugins) makes it selectable as `policies=[...,mine]`.

Evaluators step many drives in lockstep (twin.loop.lockstep) and ask for all of them at once:
`reset_batch(context, rngs)` starts one lane per drive, `act_batch(observations, links)` decides for
the lanes still driving. Lanes start longest drive first, so a batch of n always holds lanes 0..n-1.
The base class runs an independent copy of the policy per lane (correct for any policy, fast for
none); a policy that decides for many drives at once (one forward pass of a model) overrides both,
and keeps `reset`/`act` for one drive as a batch of one (`self.reset_batch(context, [rng])`):

        def reset_batch(self, context, rngs):
            super().reset(context, rngs[0])
            self.history = np.zeros((len(rngs), 8))      # one row of state per lane

        def act_batch(self, observations, links):
            scores = self.model(np.stack([o["gps"] for o in observations]))
            return list(np.argsort(-scores, axis=1)[:, :3])
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from twin.loop.drives import TwinContext
from twin.observations import OBSERVED_MODALITIES as SENSOR_MODALITIES

Decision = int | np.integer | np.ndarray | list[int] | tuple[int, ...]


class Link(Protocol):
    """What a policy can do with the radio inside a frame (the environment implements it)."""

    def measure(self, beams: Any) -> np.ndarray: ...

    def oracle_ranking(self) -> np.ndarray: ...


def mask_of(obs: Mapping[str, np.ndarray], name: str) -> bool:
    """Whether observation entry `name` is usable this frame (mask order: rsrp, then modalities)."""
    if name == "rsrp":
        return bool(obs["mask"][0])
    if name not in obs:
        return False
    index = 1 + sum(1 for m in SENSOR_MODALITIES[: SENSOR_MODALITIES.index(name)] if m in obs)
    return bool(obs["mask"][index])


Observation = Mapping[str, np.ndarray]


class Policy:
    """Base class: override `act`; `reset` is called at the start of every drive. Override
    `reset_batch` and `act_batch` too to decide for many drives at once."""

    name: ClassVar[str] = ""
    modalities: ClassVar[frozenset[str]] = frozenset()  # observation entries the policy reads

    def reads(self, available: Collection[str]) -> frozenset[str]:
        """The sensor modalities this policy would read from a store offering `available`."""
        return self.modalities & frozenset(available)

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        self.context = context
        self.rng = rng
        self.num_beams = context.num_beams

    def act(self, obs: Observation, link: Link) -> Decision:
        raise NotImplementedError

    def reset_batch(self, context: TwinContext, rngs: Sequence[np.random.Generator]) -> None:
        """Start one lane per generator (lane i draws from rngs[i]). By default every lane is a deep
        copy of this policy reset for one drive, so whatever state `act` keeps stays per drive."""
        template = copy.copy(self)
        template.__dict__.pop("_lanes", None)  # the copies must not carry the previous batch
        self._lanes = [copy.deepcopy(template) for _ in rngs]
        for lane, rng in zip(self._lanes, rngs):
            lane.reset(context, rng)

    def act_batch(self, observations: Sequence[Observation], links: Sequence[Link]) -> list[Decision]:
        """One decision per lane still driving: observations[i] and links[i] are lane i's."""
        return [lane.act(obs, link) for lane, obs, link in zip(self._lanes, observations, links)]


class Memoryless(Policy):
    """A policy whose decision depends on the frame's observation and link alone (no state between
    frames, no random draws): its lanes share the policy itself, no copies needed."""

    def reset_batch(self, context: TwinContext, rngs: Sequence[np.random.Generator]) -> None:
        self.reset(context, rngs[0] if rngs else np.random.default_rng(0))

    def act_batch(self, observations: Sequence[Observation], links: Sequence[Link]) -> list[Decision]:
        return [self.act(obs, link) for obs, link in zip(observations, links)]


def ranked(values: np.ndarray, beams: np.ndarray, top: int = 3) -> np.ndarray:
    """The `top` beams of `beams` by `values`, best first (along the last axis: rows rank apart)."""
    order = np.argsort(-values, axis=-1, kind="stable")[..., :top]
    return beams[order]

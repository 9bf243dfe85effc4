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
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Protocol

import numpy as np

from twin.loop.drives import TwinContext
from twin.modalities import SENSOR_MODALITIES

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


class Policy:
    """Base class: override `act`; `reset` is called at the start of every drive."""

    name: ClassVar[str] = ""
    modalities: ClassVar[frozenset[str]] = frozenset()  # observation entries the policy reads

    def reads(self, available: Collection[str]) -> frozenset[str]:
        """The sensor modalities this policy would read from a store offering `available`."""
        return self.modalities & frozenset(available)

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        self.context = context
        self.rng = rng
        self.num_beams = context.num_beams

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        raise NotImplementedError


def ranked(values: np.ndarray, beams: np.ndarray, top: int = 3) -> np.ndarray:
    """The `top` beams of `beams` by `values`, best first."""
    order = np.argsort(-values, kind="stable")[:top]
    return beams[order]

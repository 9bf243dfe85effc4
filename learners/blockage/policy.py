"""`blockage_aware`: beam tracking that sweeps every beam when a blockage predictor expects one.

What the loop gives a policy each frame is the feedback on the beam it served last frame
(`obs["rsrp"]`), not a full sweep, so the predictor here reads what tracking actually observes: the
last 8 frames of served-beam power (a GRU over (8, 1) "sweeps", learners.blockage.model, normalised
per window like the full-sweep predictors). It is trained on DeepSense scenario 17's real train split
with each window's per-sweep best-beam power standing in for the served power (tracking serves the
best beam it finds; `served_windows`).

Timing: at frame t the history ends at t−1, so a horizon-N predictor firing at t expects the blockage
at frame t−1+N, and the policy schedules a full sweep there (N = 1: this frame). Every other frame is
tracking's local search (twin.loop.policies.classical.Tracking), optionally narrower (`clear_width`),
which is how the proactive sweeps can be paid for in airtime.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from learners.blockage.checkpoint import load_blockage
from learners.blockage.windows import SWEEPS, Windows, normalise
from learners.checkpoint import CheckpointError
from learners.shipped import SHIPPED_DIR
from learners.threads import one_thread
from twin.loop.drives import TwinContext
from twin.loop.policies import Decision, Link, Observation, Policy, mask_of, register_policy
from twin.loop.policies.base import ranked
from twin.loop.policies.classical import Tracking, TrackingOptions
from twin.validation import between, spec

SERVED_INPUT = "served-beam power (per-sweep best beam in training)"
SHIPPED_SERVED = SHIPPED_DIR / "scenario17" / "blockage-served-future-1"

Predictor = Callable[[np.ndarray], np.ndarray]  # (B, 8, 1) dB → (B,) P(blocked)


def served_windows(windows: Windows) -> Windows:
    """The windows with each sweep reduced to its best beam's power: (N, 8, K) → (N, 8, 1)."""
    finite = np.isfinite(windows.sweeps).any(axis=2, keepdims=True)
    best = np.where(
        finite,
        np.max(np.where(np.isfinite(windows.sweeps), windows.sweeps, -np.inf), 2, keepdims=True),
        np.nan,
    )
    return Windows(best.astype(np.float32), windows.labels, windows.index, windows.groups, windows.source)


def load_served_predictor(path: str | Path) -> tuple[Predictor, int, float]:
    """The predictor, horizon and threshold of a served-power blockage checkpoint (one-line errors)."""
    checkpoint = load_blockage(path)
    if checkpoint.model.num_beams != 1 or checkpoint.config.get("input") != SERVED_INPUT:
        raise CheckpointError(
            f"{checkpoint.path}: a {checkpoint.model.num_beams}-beam predictor of input "
            f"{checkpoint.config.get('input', 'full sweeps')!r}; blockage_aware needs one trained on "
            f"{SERVED_INPUT!r} (python -m learners.blockage_policy)"
        )
    model = checkpoint.model.eval()

    @torch.inference_mode()
    def predict(history_db: np.ndarray) -> np.ndarray:
        with one_thread():  # the same decisions on any core count, and safe in forked workers
            return torch.sigmoid(model(torch.from_numpy(normalise(history_db)))).numpy()

    return predict, checkpoint.horizon, checkpoint.threshold


@dataclass(frozen=True)
class BlockageAwareOptions:
    checkpoint: str = spec("")  # "": the shipped assets/checkpoints/scenario17/blockage-served-future-1
    width: int = spec(2, check=between(1, 1024))  # tracking's window (±beams) on other frames
    clear_width: int = spec(0, check=between(0, 1024))  # window while no blockage is expected; 0: width
    max_steps: int = spec(4, check=between(0, 1024))
    resweep_drop_db: float = spec(6.0, check=between(0, 1000))
    threshold: float = spec(0.0, check=between(0, 1))  # P(blocked) that counts as blocked; 0: checkpoint's
    every_frame: bool = spec(False)  # sweep at every frame expected blocked, not only at onset and end
    budget: float = spec(
        0.0, check=between(0, 1_000_000)
    )  # mean beams per frame a proactive sweep may not exceed; 0: none


class BlockageAware(Policy):
    """Tracking plus a full sweep where a served-power blockage predictor expects a blockage to start
    or end (or, with `every_frame`, at every frame it expects blocked)."""

    name = "blockage_aware"

    def __init__(self, options: BlockageAwareOptions | None = None):
        self.options = options or BlockageAwareOptions()
        source = self.options.checkpoint or SHIPPED_SERVED
        self.predictor, self.horizon, threshold = load_served_predictor(source)
        self.threshold = self.options.threshold or threshold
        o = self.options
        self._tracking = Tracking(TrackingOptions(o.width, o.max_steps, o.resweep_drop_db))
        self._clear = Tracking(TrackingOptions(o.clear_width or o.width, o.max_steps, o.resweep_drop_db))

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        self.reset_batch(context, [rng])

    def reset_batch(self, context: TwinContext, rngs: Sequence[np.random.Generator]) -> None:
        super().reset(context, rngs[0] if rngs else np.random.default_rng(0))
        for tracking in (self._tracking, self._clear):
            tracking.reset(context, self.rng)
        self._all = np.arange(self.num_beams)
        self._history = [deque([np.nan] * SWEEPS, maxlen=SWEEPS) for _ in rngs]  # served power, dB
        self._due: list[set[int]] = [set() for _ in rngs]  # frames a full sweep is scheduled for
        self._expected = [False] * len(rngs)  # the last prediction made, per lane
        self._frame = 0  # lanes run in lockstep
        self._spent = [0] * len(rngs)  # beams measured so far, per lane (for the airtime budget)
        self.sweeps = 0  # proactive sweeps made

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        return self.act_batch([obs], [link])[0]

    def act_batch(self, observations: Sequence[Observation], links: Sequence[Link]) -> list[Decision]:
        t = self._frame
        self._frame += 1
        for history, obs in zip(self._history, observations):
            history.append(float(obs["rsrp"][0]) if mask_of(obs, "rsrp") else np.nan)
        lanes = range(len(observations))
        ready = [i for i in lanes if not np.isnan(self._history[i]).all()]
        if ready:
            windows = np.array([list(self._history[i]) for i in ready], np.float32)[:, :, None]
            for i, p in zip(ready, self.predictor(windows)):
                blocked = bool(p >= self.threshold)
                # A sweep where the link is expected to change (onset or end of a blockage): in
                # between, tracking follows the reflected beam that sweep found.
                if blocked != self._expected[i] or (blocked and self.options.every_frame):
                    self._due[i].add(t - 1 + self.horizon)
                self._expected[i] = blocked
        decisions: list[Decision] = []
        for i, obs, link in zip(lanes, observations, links):
            counted = _Counted(link)
            if t in self._due[i] and self._affordable(i, t):
                self._due[i].discard(t)
                self.sweeps += 1
                decisions.append(ranked(counted.measure(self._all), self._all))
            else:
                self._due[i].discard(t)
                expected = any(frame > t for frame in self._due[i])
                decisions.append((self._tracking if expected else self._clear).act(obs, counted))
            self._spent[i] += counted.beams
        return decisions

    def _affordable(self, lane: int, t: int) -> bool:
        """Whether a full sweep now keeps the lane's mean beams per frame within the budget."""
        budget = self.options.budget
        return not budget or self._spent[lane] + self.num_beams <= budget * (t + 1)


class _Counted:
    """A link that counts the beams measured through it (the policy's own airtime)."""

    def __init__(self, link: Link):
        self.link, self.beams = link, 0

    def measure(self, beams: np.ndarray) -> np.ndarray:
        self.beams += int(np.size(beams))
        return self.link.measure(beams)

    def oracle_ranking(self) -> np.ndarray:
        raise RuntimeError("blockage_aware never asks the oracle")


def register_blockage_policy() -> None:
    register_policy(BlockageAware.name, BlockageAware, BlockageAwareOptions)

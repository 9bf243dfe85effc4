"""Closed-loop scoring of one policy on chosen drives of a store (e.g. the validation drives a model
never trained on), with the environment's metrics (twin.loop.metrics) and per-decision latency. The
drives run in lockstep (twin.loop.lockstep), as in the main job's evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.loop.drives import load_drives
from twin.loop.env import BeamSelectionEnv
from twin.loop.lockstep import EnvLanes, rollout_batch
from twin.loop.metrics import METRIC_NAMES, frame_metrics
from twin.loop.policies import Policy
from twin.scenario.faults import FaultsConfig, faults_from


@dataclass
class ClosedLoopResult:
    policy: str
    metrics: dict[str, float]  # frame-pooled means of twin.loop.metrics.METRICS
    frames: int
    latencies_s: np.ndarray  # (decisions,) wall time of each decision (a batch's shared by its lanes)

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1e3) if len(self.latencies_s) else float("nan")


def run_closed_loop(
    store: str | Path,
    policy: Policy,
    episodes: Sequence[str] | None = None,
    faults: FaultsConfig | dict[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    beam_measurement_s: float = 1e-4,
    outage_snr_db: float = 0.0,
) -> ClosedLoopResult:
    """Replay `episodes` (all when None) once per seed; the policy observes only what it reads."""
    reads = sorted(policy.reads(load_drives(store).context.sensors))
    env = BeamSelectionEnv(store, modalities=reads, beam_measurement_s=beam_measurement_s, episodes=episodes)
    faults = faults_from(faults)
    sums = dict.fromkeys(METRIC_NAMES, 0.0)
    frames = 0
    latencies: list[float] = []
    lanes = EnvLanes(env)
    for seed in seeds:
        records = rollout_batch(lanes, policy, env.drives, faults, seed, latencies)
        for drive, record in zip(env.drives, records):
            per_frame = frame_metrics(record, outage_snr_db)
            for name in METRIC_NAMES:
                sums[name] += float(np.sum(per_frame[name]))
            frames += drive.num_frames
    metrics = {name: value / max(frames, 1) for name, value in sums.items()}
    return ClosedLoopResult(policy.name, metrics, frames, np.asarray(latencies))

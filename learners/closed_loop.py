"""Closed-loop scoring of one policy on chosen drives of a store (e.g. the validation drives a model
never trained on), with the environment's metrics (twin.metrics) and per-decision latency."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.loop.drives import load_drives
from twin.loop.env import BeamSelectionEnv
from twin.loop.metrics import METRIC_NAMES, FrameRecord, frame_metrics
from twin.loop.policies import Policy
from twin.scenario.faults import FaultsConfig


@dataclass
class ClosedLoopResult:
    policy: str
    metrics: dict[str, float]  # frame-pooled means of twin.metrics.METRICS
    frames: int
    latencies_s: np.ndarray  # (decisions,) wall time of each act()

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
    env = BeamSelectionEnv(
        store, faults=faults, modalities=reads, beam_measurement_s=beam_measurement_s, episodes=episodes
    )
    sums = dict.fromkeys(METRIC_NAMES, 0.0)
    frames = 0
    latencies: list[float] = []
    clock = time.perf_counter
    for seed in seeds:
        for episode in range(env.num_episodes):
            obs, _ = env.reset(options={"episode": episode, "fault_seed": seed})
            policy.reset(env.context, np.random.default_rng([seed, episode, 7]))
            count = env.drive.num_frames
            ranked = np.empty((count, 3), np.int64)
            for t in range(count):
                start = clock()
                beams = np.atleast_1d(policy.act(obs, env))
                latencies.append(clock() - start)
                ranked[t] = beams[:3] if beams.size >= 3 else np.resize(beams, 3)
                ranked[t, beams.size :] = beams[-1]
                obs, _, _, _, _ = env.step(int(beams[0]))
            index = np.arange(count)
            record = FrameRecord(
                ranked=ranked,
                oracle=env.oracle.copy(),
                snr_db=env.snr_db[index, env.served],
                oracle_snr_db=env.oracle_snr_db.copy(),
                rsrp_diff_db=env.measured_dbm[index, env.measured_best] - env.measured_dbm[index, env.served],
                overhead=env.overhead,
            )
            per_frame = frame_metrics(record, outage_snr_db)
            for name in METRIC_NAMES:
                sums[name] += float(np.sum(per_frame[name]))
            frames += count
    metrics = {name: value / max(frames, 1) for name, value in sums.items()}
    return ClosedLoopResult(policy.name, metrics, frames, np.asarray(latencies))

"""One policy closed-loop over one drive: the Gymnasium loop every evaluation runs (twin.loop.evaluate,
learners.closed_loop), returning what the metrics need."""

from __future__ import annotations

import time

import numpy as np

from twin.loop.drives import Drive
from twin.loop.env import BeamSelectionEnv
from twin.loop.metrics import FrameRecord
from twin.loop.policies import Policy
from twin.scenario.faults import FaultsConfig


def policy_rng(seed: int, drive: Drive) -> np.random.Generator:
    """The policy's random stream for a drive: the same in every evaluation of that (seed, drive)."""
    return np.random.default_rng([seed, drive.index, 7])


def rollout(
    env: BeamSelectionEnv,
    policy: Policy,
    drive: Drive,
    faults: FaultsConfig,
    seed: int,
    latencies: list[float] | None = None,
) -> FrameRecord:
    """Run `policy` over `drive` under `faults` drawn from `seed`; the wall time of every decision is
    appended to `latencies` when given. The first beam a policy names is served, the first three are
    its ranked guesses (fewer than three: the last one repeated)."""
    env.faults = faults
    obs, _ = env.reset(options={"episode": drive.id, "fault_seed": seed})
    policy.reset(env.context, policy_rng(seed, drive))
    frames = drive.num_frames
    ranked = np.empty((frames, 3), np.int64)
    clock = time.perf_counter
    for t in range(frames):
        start = clock()
        beams = np.atleast_1d(policy.act(obs, env))
        if latencies is not None:
            latencies.append(clock() - start)
        ranked[t] = beams[-1]
        ranked[t, : min(beams.size, 3)] = beams[:3]
        obs, _, _, _, _ = env.step(beams[0])
    index = np.arange(frames)
    measured = env.measured_dbm
    return FrameRecord(
        ranked=ranked,
        oracle=env.oracle.copy(),
        snr_db=env.snr_db[index, env.served],
        oracle_snr_db=env.oracle_snr_db.copy(),
        rsrp_diff_db=measured[index, env.measured_best] - measured[index, env.served],
        overhead=env.overhead,
    )

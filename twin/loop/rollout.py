"""One policy closed-loop over one drive: the Gymnasium loop step by step, the reference the lockstep
loop (twin.loop.lockstep, which evaluations run) must match exactly; and what both return for the
metrics."""

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


def rank_into(ranked: np.ndarray, t: int, decision: object) -> int:
    """Write a decision's first three beams into row t (fewer than three: the last one repeated);
    returns the beam to serve, the first one."""
    beams = np.atleast_1d(decision)
    ranked[t] = beams[-1]
    ranked[t, : min(beams.size, 3)] = beams[:3]
    return beams[0]


def frame_record(env: BeamSelectionEnv, ranked: np.ndarray) -> FrameRecord:
    """What the metrics need from an environment whose episode has been played to its end."""
    index = np.arange(len(ranked))
    measured = env.measured_dbm
    return FrameRecord(
        ranked=ranked,
        oracle=env.oracle.copy(),
        snr_db=env.snr_db[index, env.served],
        oracle_snr_db=env.oracle_snr_db.copy(),
        rsrp_diff_db=measured[index, env.measured_best] - measured[index, env.served],
        overhead=env.overhead,
    )


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
    ranked = np.empty((drive.num_frames, 3), np.int64)
    clock = time.perf_counter
    for t in range(drive.num_frames):
        start = clock()
        decision = policy.act(obs, env)
        if latencies is not None:
            latencies.append(clock() - start)
        obs, _, _, _, _ = env.step(rank_into(ranked, t, decision))
    return frame_record(env, ranked)

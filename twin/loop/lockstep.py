"""Many drives of one policy in lockstep: the closed loop every evaluation runs (twin.loop.evaluate,
learners.closed_loop).

Each drive gets its own environment (a lane); at every frame the policy decides for all lanes still
driving in one `act_batch` call (one forward pass for a learned policy), then each lane steps its
environment exactly as the single-drive loop (twin.loop.rollout) does, so faults, masks and the
airtime of measurements are the environment's own. Lanes start longest drive first: a finished lane
is always the last one, and the lanes still driving are 0..n-1. Gives the same records as replaying
the drives one by one (tests/twin/loop/test_lockstep.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from twin.loop.drives import Drive
from twin.loop.env import BeamSelectionEnv
from twin.loop.metrics import FrameRecord
from twin.loop.policies import Policy
from twin.loop.rollout import frame_record, policy_rng, rank_into
from twin.scenario.faults import FaultsConfig


class EnvLanes:
    """Environments like a first one (same store, observed modalities and airtime), made as needed."""

    def __init__(self, env: BeamSelectionEnv):
        self.envs = [env]

    def take(self, count: int) -> list[BeamSelectionEnv]:
        first = self.envs[0]
        while len(self.envs) < count:
            self.envs.append(
                BeamSelectionEnv(
                    first.context.path,
                    faults=first.faults,
                    modalities=first.modalities,
                    beam_measurement_s=first.beam_measurement_s,
                    penalize_overhead=first.penalize_overhead,
                    srs_snr_db=first.srs_snr_db,
                )
            )
        return self.envs[:count]


def rollout_batch(
    lanes: EnvLanes,
    policy: Policy,
    drives: Sequence[Drive],
    faults: FaultsConfig,
    seed: int,
    latencies: list[float] | None = None,
) -> list[FrameRecord]:
    """Run `policy` over every drive under `faults` drawn from `seed`, all in lockstep; one record per
    drive, in the order given. Each decision's wall time (a batch's time shared equally among its
    lanes) is appended to `latencies` when given."""
    if not drives:
        return []
    order = sorted(range(len(drives)), key=lambda i: -drives[i].num_frames)  # stable: ties keep order
    lane_drives = [drives[i] for i in order]
    envs = lanes.take(len(lane_drives))
    observations = []
    for env, drive in zip(envs, lane_drives):
        env.faults = faults
        observations.append(env.reset(options={"episode": drive.id, "fault_seed": seed})[0])
    policy.reset_batch(envs[0].context, [policy_rng(seed, drive) for drive in lane_drives])
    ranked = [np.empty((drive.num_frames, 3), np.int64) for drive in lane_drives]
    lengths = [drive.num_frames for drive in lane_drives]
    active = len(lane_drives)
    clock = time.perf_counter
    for t in range(lengths[0]):
        while lengths[active - 1] <= t:
            active -= 1
        start = clock()
        decisions = policy.act_batch(observations[:active], envs[:active])
        if latencies is not None:
            latencies.extend([(clock() - start) / active] * active)
        if len(decisions) != active:
            raise RuntimeError(
                f"policy {policy.name}: act_batch returned {len(decisions)} decisions for {active} lanes"
            )
        for lane in range(active):
            beam = rank_into(ranked[lane], t, decisions[lane])
            observations[lane] = envs[lane].step(beam)[0]
    records: list[FrameRecord | None] = [None] * len(drives)
    for lane, i in enumerate(order):
        records[i] = frame_record(envs[lane], ranked[lane])
    return records  # type: ignore[return-value]  # every slot filled above

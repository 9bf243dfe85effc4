"""The lockstep loop against the single-drive reference: identical records for every policy, drives
of different lengths, faults, dropout and measurements included."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from twin.benchmarks.synthetic import synthetic_store
from twin.loop.env import BeamSelectionEnv
from twin.loop.lockstep import EnvLanes, rollout_batch
from twin.loop.metrics import FrameRecord
from twin.loop.policies import POLICIES, Link, Policy, classical, make_policy, register_policy
from twin.loop.rollout import rollout
from twin.modalities import SENSOR_MODALITIES
from twin.scenario.faults import faults_from

LENGTHS = (17, 30, 9, 30, 24)  # drives end at different frames; two tie
FAULTS = faults_from(
    {
        "blockage": {"rate_per_s": 1.0, "duration_s": [0.2, 0.8], "attenuation_db": 25.0},
        "dropout": {"gps": {"probability": 0.4}, "position": {"probability": 0.3, "mode": "frozen"}},
    }
)
BUILT_IN = [n for n, entry in POLICIES.items() if entry.factory.__module__ == classical.__name__]
RECORD_FIELDS = ("ranked", "oracle", "snr_db", "oracle_snr_db", "rsrp_diff_db", "overhead")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_store(tmp_path_factory.mktemp("lockstep") / "s.h5", drives=len(LENGTHS), frames=LENGTHS)


class Hysteresis(Policy):
    """A third-party policy with memory and no batch form: sweeps every `period` frames and switches
    beams only when the new best is 3 dB stronger; counts its frames in an object made in __init__."""

    name = "hysteresis"

    def __init__(self) -> None:
        self.counter = {"frames": 0}

    def reset(self, context, rng):  # type: ignore[no-untyped-def]
        super().reset(context, rng)
        self.counter["frames"] = 0
        self.beam, self.level = 0, -np.inf
        self.period = int(rng.integers(2, 5))

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> int:
        if self.counter["frames"] % self.period == 0:
            sweep = link.measure(np.arange(self.num_beams))
            best = int(np.argmax(sweep))
            current = float(sweep[self.beam])
            if sweep[best] > max(self.level, current) + 3.0 or not np.isfinite(self.level):
                self.beam = best
            self.level = float(sweep[self.beam])
        self.counter["frames"] += 1
        return self.beam


def assert_same(single: list[FrameRecord], batched: list[FrameRecord], name: str) -> None:
    assert len(single) == len(batched)
    for drive, (a, b) in enumerate(zip(single, batched)):
        for field in RECORD_FIELDS:
            np.testing.assert_array_equal(
                getattr(a, field), getattr(b, field), err_msg=f"{name} {drive} {field}"
            )


@pytest.mark.parametrize("name", [*BUILT_IN, "hysteresis"])
def test_lockstep_gives_the_single_drive_records(store: Path, name: str) -> None:
    """Learned policies: tests/learners/test_closed_loop.py."""
    register_policy("hysteresis", Hysteresis)
    policy = make_policy(name)
    env = BeamSelectionEnv(store, modalities=sorted(policy.reads(SENSOR_MODALITIES)))
    drives = env.drives
    for seed in (0, 5):
        single = [rollout(env, policy, drive, FAULTS, seed) for drive in drives]
        batched = rollout_batch(EnvLanes(env), policy, drives, FAULTS, seed)
        assert [len(r.ranked) for r in batched] == list(LENGTHS)
        assert_same(single, batched, name)


def test_each_lane_keeps_its_own_state_and_finished_lanes_leave(store: Path) -> None:
    policy = Hysteresis()
    env = BeamSelectionEnv(store, modalities=[])
    seen: list[int] = []
    act_batch = policy.act_batch

    def counting(observations, links):  # type: ignore[no-untyped-def]
        seen.append(len(observations))
        return act_batch(observations, links)

    policy.act_batch = counting  # type: ignore[method-assign]
    lanes = EnvLanes(env)
    rollout_batch(lanes, policy, env.drives, FAULTS, 0)
    assert sum(e.blockage.active.any() for e in lanes.envs) >= 2  # injected blockage was in play
    # Lanes per frame: 5 until the shortest drive (9 frames) ends, then 4, 3 after 24 and 2 to 30.
    assert seen == [5] * 9 + [4] * 8 + [3] * 7 + [2] * 6
    assert [lane.counter["frames"] for lane in policy._lanes] == [30, 30, 24, 17, 9]
    assert policy.counter["frames"] == 0  # the lanes are copies: the policy itself was not touched


def test_a_policy_must_decide_for_every_lane(store: Path) -> None:
    class Lazy(Hysteresis):
        def act_batch(self, observations, links):  # type: ignore[no-untyped-def]
            return [0]

    env = BeamSelectionEnv(store, modalities=[])
    with pytest.raises(RuntimeError, match="act_batch returned 1 decisions for 5 lanes"):
        rollout_batch(EnvLanes(env), Lazy(), env.drives, FAULTS, 0)

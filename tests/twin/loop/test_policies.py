"""Classical policies closed-loop: the genie's zero loss, sweep costs, tracking, geometry, the interface."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from twin.benchmarks.synthetic import synthetic_store
from twin.errors import ConfigError
from twin.loop.env import BeamSelectionEnv
from twin.loop.evaluate import _Runner, replay_drive
from twin.loop.policies import POLICIES, Link, Policy, make_policy, register_policy

BLOCKAGE = {"blockage": {"rate_per_s": 1.0, "duration_s": [0.3, 1.0], "attenuation_db": 30.0}}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_store(tmp_path_factory.mktemp("policies") / "s.h5", drives=4, frames=30)


def _run(store: Path, name: str, faults: object = None, options: dict | None = None, seed: int = 0):  # type: ignore[no-untyped-def]
    policy = make_policy(name, options)
    env = BeamSelectionEnv(store, modalities=sorted(policy.reads(("gps", "position"))), faults=faults)
    runner = _Runner(policy, env, policy.reads(("gps", "position")))
    records = [replay_drive(runner, drive, env.faults, seed) for drive in env.replay.drives]
    return records, env


def test_genie_snr_loss_is_exactly_zero(store: Path) -> None:
    records, env = _run(store, "genie", BLOCKAGE)
    assert env.blockage.active.any()  # (the last drive's schedule; fixed by the seed)
    for r in records:
        np.testing.assert_array_equal(r.snr_db, r.oracle_snr_db)  # exactly, not approximately
        np.testing.assert_array_equal(r.ranked[:, 0], r.oracle)
        assert not r.overhead.any()


def test_exhaustive_serves_the_measured_best_and_pays_k_slots(store: Path) -> None:
    records, env = _run(store, "exhaustive")
    for r in records:
        np.testing.assert_allclose(r.overhead, 64 * 1e-4 * 10.0)
    last = records[-1]
    np.testing.assert_array_equal(last.ranked[:, 0], np.argmax(env.measured_dbm, axis=1))
    assert np.mean(last.oracle_snr_db - last.snr_db) < 1.0  # only measurement noise separates it


def test_hierarchical_measures_far_fewer_beams_and_finds_the_peak(store: Path) -> None:
    records, _ = _run(store, "hierarchical")
    overhead = np.concatenate([r.overhead for r in records])
    assert overhead.max() <= 20 * 1e-3 and overhead.min() >= 8 * 1e-3  # ~2 sqrt(64) of 64 beams
    loss = np.concatenate([r.oracle_snr_db - r.snr_db for r in records])
    assert np.median(loss) < 1.0


def test_tracking_follows_the_beam_and_resweeps_when_lost(store: Path) -> None:
    records, _ = _run(store, "tracking")
    for r in records:
        assert r.overhead[0] == pytest.approx(64 * 1e-3)  # acquisition sweep
        assert np.median(r.overhead[1:]) < 64 * 1e-3  # then local probes
        assert np.median(r.oracle_snr_db - r.snr_db) < 1.5

    class Fake:
        """A link whose beam 50 is best; the local window around beam 10 sees only weak beams."""

        def __init__(self) -> None:
            self.measured: list[int] = []

        def measure(self, beams: object) -> np.ndarray:
            beams = np.atleast_1d(np.asarray(beams))
            self.measured += beams.tolist()
            return np.where(beams == 50, -60.0, -90.0 - 0.01 * beams)

        def oracle_ranking(self) -> np.ndarray:
            return np.arange(64)

    policy = make_policy("tracking", {"width": 1, "max_steps": 2, "resweep_drop_db": 10.0})
    env = BeamSelectionEnv(store, modalities=[])
    policy.reset(env.context, np.random.default_rng(0))
    link = Fake()
    obs = {"beam": np.array([10]), "rsrp": np.array([-65.0], np.float32), "mask": np.array([1], np.int8)}
    decision = np.atleast_1d(policy.act(obs, link))
    assert decision[0] == 50 and len(link.measured) == 3 + 2 + 64  # window, two extensions, re-sweep


def test_gps_policy_points_at_the_vehicle_from_gps_or_position(store: Path) -> None:
    with_gps, _ = _run(store, "gps")
    policy = make_policy("gps")
    env = BeamSelectionEnv(store, modalities=["position"])
    from_position = [
        replay_drive(_Runner(policy, env, frozenset({"position"})), d, env.faults, 0)
        for d in env.replay.drives
    ]
    for a, b in zip(with_gps, from_position):
        # Synthetic GPS is exact and the UE height matches ue_height_m: the same beams either way.
        np.testing.assert_array_equal(a.ranked[:, 0], b.ranked[:, 0])
        assert np.mean(np.abs(a.ranked[:, 0] - a.oracle) <= 2) >= 0.7  # LoS wins where it is in the sector
        assert not a.overhead.any()
    assert policy.reads({"gps", "position"}) == {"gps"} and policy.reads({"position"}) == {"position"}


def test_gps_policy_holds_its_beam_during_an_outage(store: Path) -> None:
    outage = {"dropout": {"gps": {"probability": 1.0, "mode": "missing"}}}
    records, _ = _run(store, "gps", outage)
    for r in records:
        assert np.all(r.ranked[:, 0] == 32)  # never had a fix: the middle beam throughout


def test_stale_sweeps_periodically(store: Path) -> None:
    records, _ = _run(store, "stale", options={"period_frames": 10})
    for r in records:
        swept = np.flatnonzero(r.overhead > 0)
        np.testing.assert_array_equal(swept, [0, 10, 20])
        assert np.all(r.ranked[1:10, 0] == r.ranked[0, 0])


def test_random_is_reproducible_by_seed(store: Path) -> None:
    a, _ = _run(store, "random", seed=1)
    b, _ = _run(store, "random", seed=1)
    c, _ = _run(store, "random", seed=2)
    np.testing.assert_array_equal(a[0].ranked, b[0].ranked)
    assert not np.array_equal(a[0].ranked, c[0].ranked)
    assert np.mean(a[0].ranked[:, 0] == a[0].oracle) < 0.2


def test_unknown_policies_and_bad_options_are_one_line_errors() -> None:
    with pytest.raises(ConfigError) as info:
        make_policy("resnet", key="policies[2]")
    assert str(info.value).startswith("policies[2] = 'resnet': unknown policy; available: genie, ")
    with pytest.raises(
        ConfigError, match=r"evaluation.policy_options.tracking.width = 0: expected a value in \[1, "
    ):
        make_policy("tracking", {"width": 0})
    with pytest.raises(
        ConfigError, match=r"evaluation.policy_options.stale.every: unknown key; allowed keys: period"
    ):
        make_policy("stale", {"every": 3})


def test_a_learned_predictor_plugs_in_with_a_few_lines(store: Path) -> None:
    class Nearest(Policy):
        """Stands in for a trained model: ranks beams by a score computed from the observation."""

        name = "nearest"
        modalities = frozenset({"position"})

        def act(self, obs: Mapping[str, np.ndarray], link: Link) -> np.ndarray:
            scores = -np.abs(np.arange(self.num_beams) - (32 - obs["position"][0]))
            return np.argsort(-scores)[:3]

    register_policy("nearest", Nearest)
    try:
        records, _ = _run(store, "nearest")
        assert records[0].ranked.shape == (30, 3) and not records[0].overhead.any()
    finally:
        del POLICIES["nearest"]

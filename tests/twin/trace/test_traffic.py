"""Seeded traffic: reproducible, collision-free platoons whose served cars pass the base station."""

from __future__ import annotations

import numpy as np

from tests.conftest import REPO
from twin.scenario.config import ScenarioConfig, load_scenario
from twin.trace.scene import load_vehicle_models
from twin.trace.traffic import make_run, pool_sizes


def _sizes(cfg: ScenarioConfig) -> dict:
    return {k: m.size_m for k, m in load_vehicle_models(cfg).items()}


def test_runs_are_reproducible_and_seed_dependent(tiny: ScenarioConfig) -> None:
    sizes = _sizes(tiny)
    a, b = make_run(tiny, 3, sizes), make_run(tiny, 3, sizes)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.vehicles == b.vehicles
    other = make_run(tiny, 4, sizes)
    assert not np.allclose(a.positions, other.positions)


def test_platoons_keep_their_gaps_and_served_cars_pass_the_base_station() -> None:
    cfg = load_scenario(REPO / "scenarios" / "urban_street.yaml")
    sizes = _sizes(cfg)
    runs = [make_run(cfg, r, sizes) for r in range(5)]
    for run in runs:
        assert len(run.served) == cfg.traffic.served_per_run
        served_kinds = set(cfg.traffic.served_mix) or {cfg.traffic.served_kind}  # vans carry UEs too
        assert all(run.vehicles[i].kind in served_kinds for i in run.served)
        for lane in range(len(cfg.street.lanes)):
            members = [v for v in run.vehicles if v.lane == lane]
            if len(members) < 2:  # a lane left empty on this pass
                continue
            x = run.positions[0, [v.index for v in members], 0]
            order = np.argsort(x)
            lengths = np.array([members[i].size_m[0] for i in order])
            bumper_gaps = np.diff(x[order]) - (lengths[1:] + lengths[:-1]) / 2
            assert bumper_gaps.min() >= cfg.traffic.gap_m[0] - 1e-9
        served_x = run.positions[:, run.served, 0]
        assert np.all(served_x.min(axis=0) < 0) and np.all(served_x.max(axis=0) > 0)
        speeds = np.linalg.norm(np.diff(run.positions, axis=0), axis=-1) * cfg.dataset.frame_rate_hz
        assert speeds.min() >= cfg.traffic.speed_kmh[0] / 3.6 - 1e-6
        assert speeds.max() <= cfg.traffic.speed_kmh[1] / 3.6 + 1e-6
    pools = pool_sizes(runs)
    assert sum(pools.values()) >= len(runs[0].vehicles)

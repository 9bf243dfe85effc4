"""The twin fitted to a recording: a coordinate search over the post-trace parameters (on the stored
paths, no re-tracing: twin.fidelity.resweep) and a small seeded grid over the traffic (each point a
short store traced once and cached). The objective is the mean KS distance D of the fidelity targets;
a statistic the twin cannot produce (no drop events) scores D = 1. Same inputs, same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.dataset.generation import generate
from twin.fidelity.distances import Distance, compare
from twin.fidelity.resweep import NO_BLOCKER_LOSS, PostTrace, StoredPaths, measured_drives, noiseless_sweeps
from twin.fidelity.statistics import Drive, SweepStats, sweep_statistics
from twin.replay.recording import noise_floor_db
from twin.scenario.config import ScenarioConfig

TARGETS = ("spread_db", "snr_db", "blockage_depth_db", "blockage_duration_s")


def score(distances: Sequence[Distance], targets: Sequence[str] = TARGETS) -> float:
    """Mean KS D over `targets`; a missing statistic (NaN: no samples on one side) counts as D = 1."""
    values = [d.ks if np.isfinite(d.ks) else 1.0 for d in distances if d.statistic in targets]
    return float(np.mean(values))


@dataclass(frozen=True)
class PostTraceGrid:
    tx_offsets_db: tuple[float, ...] = tuple(
        np.round(np.arange(-8.0, 8.05, 0.1), 1).tolist()
    )  # around the start
    gain_error_db: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    phase_error_deg: tuple[float, ...] = (0.0, 10.0, 20.0, 35.0, 50.0, 70.0)
    blocker_loss_db: tuple[float, ...] = (NO_BLOCKER_LOSS, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 25.0)
    rounds: int = 2


class SweepModel:
    """Statistics of a store's sweeps under post-trace parameters; the noiseless sweeps of each array
    and blocker setting are computed once (the transmit power only shifts them). With `anchor_floor`
    the sweeps are read as a replayed recording is: shifted so their noise floor estimate (the weakest
    decile, twin.replay.recording.noise_floor_db) sits at the thermal noise, the same estimator on
    both sides."""

    def __init__(self, paths: StoredPaths, seed: int = 0, drop_db: float = 10.0, anchor_floor: bool = False):
        self.paths, self.seed, self.drop_db, self.anchor_floor = paths, seed, drop_db, anchor_floor
        self._noiseless: dict[tuple[float, float, float], list[np.ndarray]] = {}

    def statistics(self, model: PostTrace, label: str = "twin") -> SweepStats:
        key = (model.gain_error_db, model.phase_error_deg, model.blocker_loss_db)
        if key not in self._noiseless:
            self._noiseless[key] = noiseless_sweeps(self.paths, dataclasses.replace(model, tx_power_dbm=0.0))
        shifted = [s + model.tx_power_dbm for s in self._noiseless[key]]
        drives = measured_drives(self.paths, model, self.seed, noiseless=shifted)
        if self.anchor_floor:
            floor = noise_floor_db(np.concatenate([d.rsrp_dbm for d in drives]))
            drives = [Drive(d.t, d.rsrp_dbm + (self.paths.noise_power_dbm - floor)) for d in drives]
        rate = self.paths.scenario.dataset.frame_rate_hz
        return sweep_statistics(drives, self.paths.noise_power_dbm, rate, label, self.drop_db)


@dataclass
class PostTraceFit:
    start: PostTrace
    model: PostTrace
    score_before: float
    score_after: float
    steps: list[tuple[str, float, float]] = field(default_factory=list)  # (parameter, value, score)


def fit_post_trace(
    real: SweepStats,
    sweeps: SweepModel,
    start: PostTrace,
    grid: PostTraceGrid = PostTraceGrid(),
    targets: Sequence[str] = TARGETS,
) -> PostTraceFit:
    """Coordinate search: each round sweeps one parameter at a time over its grid, the others held,
    and keeps the best value (the first of equal scores). The detector error is not searched: it is
    `start`'s (measured in the recording, twin.fidelity.calibration.detector_noise_db)."""

    def evaluate(model: PostTrace) -> float:
        return score(compare(real, sweeps.statistics(model)), targets)

    axes: list[tuple[str, Sequence[float]]] = [
        ("tx_power_dbm", [start.tx_power_dbm + o for o in grid.tx_offsets_db]),
        ("blocker_loss_db", grid.blocker_loss_db if sweeps.paths.static_ue else ()),
        ("gain_error_db", grid.gain_error_db),
        ("phase_error_deg", grid.phase_error_deg),
    ]
    model, best = start, evaluate(start)
    before, steps = best, []
    for _ in range(grid.rounds):
        for name, values in axes:
            for value in values:
                candidate = dataclasses.replace(model, **{name: float(value)})
                if candidate == model:
                    continue
                value_score = evaluate(candidate)
                if value_score < best - 1e-12:
                    model, best = candidate, value_score
            steps.append((name, getattr(model, name), best))
    return PostTraceFit(start, model, before, best, steps)


@dataclass(frozen=True)
class TrafficGrid:
    """Traffic candidates, searched one axis at a time from the scenario's own values."""

    speed_kmh: tuple[tuple[float, float], ...] = ((25.0, 45.0), (35.0, 60.0), (50.0, 80.0))
    mix: tuple[dict[str, float], ...] = (
        {"car": 0.85, "van": 0.1, "bus": 0.05},
        {"car": 0.7, "van": 0.2, "bus": 0.1},
        {"car": 0.5, "van": 0.25, "bus": 0.25},
    )
    drives: int = 8  # runs of each short store


def with_traffic(scenario: ScenarioConfig, drives: int, **traffic: Any) -> ScenarioConfig:
    dataset = dataclasses.replace(scenario.dataset, drives=drives)
    return dataclasses.replace(
        scenario, traffic=dataclasses.replace(scenario.traffic, **traffic), dataset=dataset
    )


def events_per_second(stats: SweepStats, frame_rate_hz: float) -> float:
    return len(stats.samples["blockage_depth_db"]) / max(stats.frames / frame_rate_hz, 1e-9)


def matched_empty_lanes(probability: float, twin_rate: float, real_rate: float) -> float:
    """The empty-lane probability that scales the twin's drop rate to the recording's: the expected
    number of blockers per run is proportional to 1 - probability."""
    if twin_rate <= 0:
        return probability
    return float(np.clip(1 - (1 - probability) * real_rate / twin_rate, 0.0, 0.95))


@dataclass
class TrafficFit:
    speed_kmh: tuple[float, float]
    mix: dict[str, float]
    empty_lane_probability: float
    points: list[tuple[dict[str, Any], float, Path]]  # (traffic values, score, store)
    real_rate: float
    twin_rate: float
    path: Path  # the chosen traffic's short store


def fit_traffic(
    real: SweepStats,
    scenario: ScenarioConfig,
    model: PostTrace,
    cache_dir: str | Path,
    load: Callable[[Path], StoredPaths],
    grid: TrafficGrid = TrafficGrid(),
    seed: int = 0,
    drop_db: float = 10.0,
    progress: bool = False,
) -> TrafficFit:
    """Speeds, then the vehicle mix (the blocker sizes), each candidate a short store of `grid.drives`
    runs traced once (cached by its digest), scored on drop depth and duration with the post-trace
    `model` applied; then the empty-lane probability set to match the recording's drop rate."""
    event_targets = ("blockage_depth_db", "blockage_duration_s")
    rate_hz = scenario.dataset.frame_rate_hz
    points: list[tuple[dict[str, Any], float, Path]] = []
    rates: dict[Path, float] = {}

    def evaluate(values: dict[str, Any]) -> float:
        path, _ = generate(with_traffic(scenario, grid.drives, **values), cache_dir, progress=progress)
        stats = SweepModel(load(path), seed, drop_db).statistics(model)
        rates[path] = events_per_second(stats, rate_hz)
        points.append((dict(values), score(compare(real, stats), event_targets), path))
        return points[-1][1]

    chosen: dict[str, Any] = {"speed_kmh": scenario.traffic.speed_kmh, "mix": dict(scenario.traffic.mix)}
    for name, values in (("speed_kmh", grid.speed_kmh), ("mix", grid.mix)):
        scored = [(evaluate({**chosen, name: value}), i) for i, value in enumerate(values)]
        chosen[name] = values[min(scored)[1]]
    best_path = next(p for v, _, p in points if v == chosen)
    real_rate = events_per_second(real, rate_hz)
    empty = matched_empty_lanes(scenario.traffic.empty_lane_probability, rates[best_path], real_rate)
    return TrafficFit(
        chosen["speed_kmh"], chosen["mix"], empty, points, real_rate, rates[best_path], best_path
    )

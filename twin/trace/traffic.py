"""Seeded traffic: platoons of cars, vans and buses driving the lanes at constant lane speeds.

One *run* is one traffic realisation of `frames_per_drive` frames. Some cars of each run carry a UE
(the served vehicles); each of them yields one drive (episode), and every other vehicle of the run is a
physical blocker (and reflector) for it. Runs are independent: run r draws from the generator seeded
with (scenario seed, r), so a resumed generation reproduces exactly the runs it still needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.scenario.config import ScenarioConfig


@dataclass(frozen=True)
class Vehicle:
    index: int
    kind: str
    lane: int
    direction: int  # +1 drives towards +x
    size_m: tuple[float, float, float]  # length, width, height
    served: bool


@dataclass(frozen=True)
class TrafficRun:
    run: int
    vehicles: tuple[Vehicle, ...]
    positions: np.ndarray  # (T, V, 3) centre of each vehicle's footprint on the ground, metres
    velocities: np.ndarray  # (V, 3) m/s, constant over the run
    yaws: np.ndarray  # (V,) heading, radians counter-clockwise from +x

    @property
    def served(self) -> np.ndarray:
        return np.array([v.index for v in self.vehicles if v.served], dtype=np.int64)

    @property
    def sizes(self) -> np.ndarray:
        return np.array([v.size_m for v in self.vehicles], dtype=np.float64)

    def antenna_positions(self, above_roof_m: float) -> np.ndarray:
        """(T, S, 3) UE antenna positions of the served vehicles: centred on the roof."""
        served = self.served
        pos = self.positions[:, served].copy()
        pos[..., 2] = self.sizes[served, 2] + above_roof_m
        return pos


def _split_served(total: int, lanes: int) -> list[int]:
    """Distribute the served vehicles over the lanes as evenly as possible."""
    return [total // lanes + (1 if lane < total % lanes else 0) for lane in range(lanes)]


def _fit_served_gaps(
    gaps: np.ndarray, lengths: np.ndarray, first: int, count: int, max_span: float, min_gap: float
) -> np.ndarray:
    """Shrink the gaps between served cars (not below `min_gap`) so their group fits `max_span`."""
    if count < 2:
        return gaps
    inner = slice(first + 1, first + count)  # gap j sits in front of vehicle j
    body = (lengths[first : first + count - 1] + lengths[first + 1 : first + count]).sum() / 2
    span = body + gaps[inner].sum()
    if span <= max_span:
        return gaps
    out = gaps.copy()
    slack = out[inner] - min_gap
    excess = min(span - max_span, slack.sum())
    out[inner] -= slack * (excess / slack.sum()) if slack.sum() > 0 else 0.0
    return out


def make_run(
    config: ScenarioConfig, run: int, kind_sizes: dict[str, tuple[float, float, float]]
) -> TrafficRun:
    """Deterministic traffic of run `run` for the scenario (vehicle sizes come from the meshes)."""
    traffic, street, dataset = config.traffic, config.street, config.dataset
    rng = np.random.default_rng([config.seed, run])
    frames = dataset.frames_per_drive
    times = np.arange(frames) / dataset.frame_rate_hz
    kinds = [k for k, w in traffic.mix.items() if w > 0]
    weights = np.array([traffic.mix[k] for k in kinds], np.float64)
    weights /= weights.sum()

    vehicles: list[Vehicle] = []
    positions, velocities, yaws = [], [], []
    duration = frames / dataset.frame_rate_hz
    for lane_index, (lane, n_served) in enumerate(
        zip(street.lanes, _split_served(traffic.served_per_run, len(street.lanes)))
    ):
        n = traffic.vehicles_per_lane
        speed = rng.uniform(*traffic.speed_kmh) / 3.6
        first = (n - n_served) // 2  # served cars drive together in the middle of the platoon
        served_slots = set(range(first, first + n_served))
        lane_kinds = [
            traffic.served_kind if j in served_slots else kinds[rng.choice(len(kinds), p=weights)]
            for j in range(n)
        ]
        lengths = np.array([kind_sizes[k][0] for k in lane_kinds])
        gaps = rng.uniform(*traffic.gap_m, size=n)
        gaps = _fit_served_gaps(gaps, lengths, first, n_served, max_span=0.8 * speed * duration,
                                min_gap=traffic.gap_m[0])  # fmt: skip
        # Along-lane centre coordinate (direction of travel), lead vehicle first.
        along = np.zeros(n)
        for j in range(1, n):
            along[j] = along[j - 1] - (lengths[j - 1] / 2 + gaps[j] + lengths[j] / 2)
        slots = sorted(served_slots) or list(range(n))
        half_span = (along[slots[0]] - along[slots[-1]]) / 2
        anchor = (along[slots[0]] + along[slots[-1]]) / 2
        # Every served car passes the base station (x = 0) inside the run, at a random moment.
        earliest, latest = 0.1 * duration + half_span / speed, 0.9 * duration - half_span / speed
        t_pass = rng.uniform(earliest, latest) if latest > earliest else duration / 2
        along = along - anchor - speed * t_pass
        for j in range(n):
            x = lane.direction * (along[j] + speed * times)
            track = np.stack([x, np.full(frames, lane.offset_m), np.zeros(frames)], axis=-1)
            positions.append(track)
            velocities.append((lane.direction * speed, 0.0, 0.0))
            yaws.append(0.0 if lane.direction > 0 else np.pi)
            vehicles.append(
                Vehicle(
                    index=len(vehicles),
                    kind=lane_kinds[j],
                    lane=lane_index,
                    direction=lane.direction,
                    size_m=kind_sizes[lane_kinds[j]],
                    served=j in served_slots,
                )
            )
    return TrafficRun(
        run=run,
        vehicles=tuple(vehicles),
        positions=np.stack(positions, axis=1),
        velocities=np.asarray(velocities, np.float64),
        yaws=np.asarray(yaws, np.float64),
    )


def pool_sizes(runs: list[TrafficRun]) -> dict[str, int]:
    """How many scene objects of each kind the scene needs so every run can be posed in place."""
    sizes: dict[str, int] = {}
    for run in runs:
        counts: dict[str, int] = {}
        for vehicle in run.vehicles:
            counts[vehicle.kind] = counts.get(vehicle.kind, 0) + 1
        for kind, count in counts.items():
            sizes[kind] = max(sizes.get(kind, 0), count)
    return sizes

"""Seeded traffic: platoons of cars, vans and buses driving the lanes, speeding up and braking.

One *run* is one traffic realisation of `frames_per_drive` frames. Some cars of each run carry a UE
(the served vehicles); each of them yields one drive (episode), and every other vehicle of the run is a
physical blocker (and reflector) for it. Runs are independent: run r draws from the generator seeded
with (scenario seed, r), so a resumed generation reproduces exactly the runs it still needs.

Each lane's platoon follows one speed profile (segments of constant acceleration within
`acceleration_mps2`, speeds kept inside `speed_kmh`), so its vehicles keep their gaps. The draws that
only the newer options use (speed changes, which lanes carry the served cars, empty lanes, served
kinds, lighting) come from streams of their own, so a scenario that leaves them at their defaults gets
exactly the traffic it always got.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twin.scenario.config import ScenarioConfig, TrafficConfig


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
    velocities: np.ndarray  # (T, V, 3) m/s per frame, or (V, 3) when constant over the run
    yaws: np.ndarray  # (V,) heading, radians counter-clockwise from +x
    night: bool = False  # recorded at night (the camera's lighting)
    layout: int = 0  # which of the scenario's building layouts the run drives through

    def velocity_at(self, frame: int) -> np.ndarray:
        """(V, 3) velocities at `frame`."""
        return self.velocities if self.velocities.ndim == 2 else self.velocities[frame]

    @property
    def num_frames(self) -> int:
        return len(self.positions)

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


@dataclass(frozen=True)
class UeAntennas:
    positions: np.ndarray  # (T, S, 3) antenna of each served vehicle, local metres
    yaws: np.ndarray  # (S,) azimuth the antenna faces: across the street, toward the base station's side


def ue_antennas(run: TrafficRun, traffic: TrafficConfig, bs_position_m: Sequence[float]) -> UeAntennas:
    """Where the served vehicles' UE antennas are and which way they face. `roof_center`: above the
    roof's centre (or the rig's top); `rig_side`: on the rig's side that faces the base station's
    side of the street, `ue_antenna_above_roof_m` above the roof, so that the specular point of a
    roof reflection falls beyond the roof's edge."""
    served = run.served
    positions = run.positions[:, served].copy()
    roof = run.sizes[served, 2]
    rig = traffic.ue_rig
    side = np.sign(float(bs_position_m[1]) - positions[0, :, 1])  # +1: the base station is at larger y
    side[side == 0] = 1.0
    if traffic.static_ue.enabled:  # the standing UE's antenna, in front of its parked vehicle
        positions[:] = np.asarray(traffic.static_ue.position_m, np.float64)
    elif traffic.ue_antenna_mount == "rig_side":
        lateral = rig.size_m[1] / 2 + 0.02 if rig.enabled else 0.0
        positions[..., 1] += side * lateral
        positions[..., 2] = roof + traffic.ue_antenna_above_roof_m
    else:
        positions[..., 2] = roof + (rig.size_m[2] if rig.enabled else 0.0) + traffic.ue_antenna_above_roof_m
    return UeAntennas(positions=positions, yaws=side * np.pi / 2)


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


def speed_profile(
    frames: int,
    frame_rate_hz: float,
    start_mps: float,
    limits_mps: tuple[float, float],
    acceleration_mps2: tuple[float, float],
    segment_s: tuple[float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """(T,) speeds: segments of constant acceleration drawn from `acceleration_mps2`, each lasting a
    duration drawn from `segment_s`, the speed held inside `limits_mps` (a platoon brakes, cruises,
    speeds up). With no acceleration range the speed stays `start_mps` and nothing is drawn."""
    if acceleration_mps2 == (0.0, 0.0):
        return np.full(frames, start_mps)
    dt = 1.0 / frame_rate_hz
    speeds = np.empty(frames)
    speed, left, accel = start_mps, 0.0, 0.0
    for frame in range(frames):
        if left <= 0:
            accel, left = rng.uniform(*acceleration_mps2), rng.uniform(*segment_s)
        speeds[frame] = speed
        speed = float(np.clip(speed + accel * dt, *limits_mps))
        left -= dt
    return speeds


def _served_lanes(traffic_served: int, lanes: int, choice: str, rng: np.random.Generator) -> list[int]:
    """How many served cars each lane carries: as evenly as possible from the first lane on, or, with
    `random` and fewer than one per lane, in lanes drawn at random."""
    if choice == "even" or traffic_served >= lanes:
        return _split_served(traffic_served, lanes)
    chosen = set(rng.choice(lanes, size=traffic_served, replace=False).tolist())
    return [1 if lane in chosen else 0 for lane in range(lanes)]


def parked_ue_vehicle(
    traffic: TrafficConfig, index: int, kind_sizes: dict[str, tuple[float, float, float]]
) -> tuple[Vehicle, np.ndarray]:
    """The static UE's vehicle and its footprint centre: parked right behind the antenna, on the side
    away from the street's centre line (so it never stands between the antenna and the street)."""
    x, y, _ = traffic.static_ue.position_m
    size = kind_sizes[traffic.served_kind]
    outward = 1.0 if y >= 0 else -1.0
    centre = np.array([x, y + outward * (size[1] / 2 + 0.3), 0.0])
    vehicle = Vehicle(index=index, kind=traffic.served_kind, lane=-1, direction=1, size_m=size, served=True)
    return vehicle, centre


def _weighted(mix: dict[str, float]) -> tuple[list[str], np.ndarray]:
    kinds = [k for k, w in mix.items() if w > 0]
    weights = np.array([mix[k] for k in kinds], np.float64)
    return kinds, weights / weights.sum()


def make_run(
    config: ScenarioConfig, run: int, kind_sizes: dict[str, tuple[float, float, float]]
) -> TrafficRun:
    """Deterministic traffic of run `run` for the scenario (vehicle sizes come from the meshes)."""
    traffic, street, dataset = config.traffic, config.street, config.dataset
    rng = np.random.default_rng([config.seed, run])
    variety = np.random.default_rng([config.seed, run, 3])  # draws of the newer options only
    frames = dataset.frames_per_drive
    rate = dataset.frame_rate_hz
    times = np.arange(frames) / rate
    kinds, weights = _weighted(traffic.mix)
    served_kinds, served_weights = _weighted(traffic.served_mix) if traffic.served_mix else ([], None)
    limits = (traffic.speed_kmh[0] / 3.6, traffic.speed_kmh[1] / 3.6)

    vehicles: list[Vehicle] = []
    positions, velocities, yaws = [], [], []
    duration = frames / rate
    for lane_index, (lane, n_served) in enumerate(
        zip(
            street.lanes,
            [0] * len(street.lanes)  # a static UE: every lane carries blockers only
            if traffic.static_ue.enabled
            else _served_lanes(traffic.served_per_run, len(street.lanes), traffic.served_lanes, variety),
        )
    ):
        n = traffic.vehicles_per_lane
        speed = rng.uniform(*traffic.speed_kmh) / 3.6
        first = (n - n_served) // 2  # served cars drive together in the middle of the platoon
        served_slots = set(range(first, first + n_served))
        lane_kinds = [
            traffic.served_kind if j in served_slots else kinds[rng.choice(len(kinds), p=weights)]
            for j in range(n)
        ]
        if served_weights is not None:
            for j in sorted(served_slots):
                lane_kinds[j] = served_kinds[variety.choice(len(served_kinds), p=served_weights)]
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
        # Every served car passes the base station (x = 0) inside the run, at a random moment (drives
        # that follow the view need the whole pass inside the window: near its middle).
        low, high = (0.4, 0.6) if dataset.view.enabled else (0.1, 0.9)
        earliest, latest = low * duration + half_span / speed, high * duration - half_span / speed
        t_pass = rng.uniform(earliest, latest) if latest > earliest else duration / 2
        speeds = speed_profile(frames, rate, speed, limits, traffic.acceleration_mps2, traffic.speed_change_s,
                               variety)  # fmt: skip
        travelled = np.concatenate([[0.0], np.cumsum(speeds[:-1]) / rate])  # metres since frame 0
        passed = float(np.interp(t_pass, times, travelled))
        along = along - anchor - passed
        empty = (
            n_served == 0
            and traffic.empty_lane_probability > 0
            and (variety.random() < traffic.empty_lane_probability)
        )
        if empty:  # a pass with nothing in this lane: no blocker on that side
            continue
        for j in range(n):
            x = lane.direction * (along[j] + travelled)
            track = np.stack([x, np.full(frames, lane.offset_m), np.zeros(frames)], axis=-1)
            positions.append(track)
            velocity = np.zeros((frames, 3))
            velocity[:, 0] = lane.direction * speeds
            velocities.append(velocity)
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
    if traffic.static_ue.enabled:
        vehicle, centre = parked_ue_vehicle(traffic, len(vehicles), kind_sizes)
        vehicles.append(vehicle)
        positions.append(np.broadcast_to(centre, (frames, 3)).copy())
        velocities.append(np.zeros((frames, 3)))
        yaws.append(0.0)
    camera = config.sensors.camera
    night = camera.lighting == "night" or (
        camera.lighting == "mixed"
        and bool(np.random.default_rng([config.seed, run, 4]).random() < camera.night_share)
    )
    return TrafficRun(
        run=run,
        vehicles=tuple(vehicles),
        positions=np.stack(positions, axis=1),
        velocities=np.stack(velocities, axis=1),
        yaws=np.asarray(yaws, np.float64),
        night=night,
        layout=run % config.buildings.layouts,
    )


RIG = "ue_rig"  # the pool of the served cars' roof rigs


def pool_sizes(runs: list[TrafficRun], rigs: bool = False) -> dict[str, int]:
    """How many scene objects of each kind the scene needs so every run can be posed in place
    (with `rigs`, one roof rig per served vehicle as well)."""
    sizes: dict[str, int] = {}
    for run in runs:
        counts: dict[str, int] = {}
        for vehicle in run.vehicles:
            counts[vehicle.kind] = counts.get(vehicle.kind, 0) + 1
        if rigs:
            counts[RIG] = len(run.served)
        for kind, count in counts.items():
            sizes[kind] = max(sizes.get(kind, 0), count)
    return sizes

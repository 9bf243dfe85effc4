"""One traffic run → its drives: poses the scene frame by frame, traces the channels, renders the
sensors and turns the result into the schema's per-frame arrays (twin.store)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from tqdm.auto import tqdm

from twin.dataset.view import plan_run
from twin.radio.codebook import (
    Codebook,
    UniformLinearArray,
    measure_rsrp_dbm,
    noise_power_dbm,
    rsrp_noiseless_dbm,
)
from twin.scenario.config import ScenarioConfig
from twin.sensors.base import FrameState
from twin.sensors.gps import gps_track
from twin.sensors.registry import build_sensors
from twin.store import Episode
from twin.trace.channel import (
    ChannelTracer,
    PathTable,
    narrowband_channel,
    ofdm_channel,
    subcarrier_offsets,
    through_blockers,
)
from twin.trace.geometry import segments_hit_boxes
from twin.trace.scene import TwinScene
from twin.trace.traffic import TrafficRun


def layout_config(config: ScenarioConfig, layout: int) -> ScenarioConfig:
    """The scenario with the buildings of `layout` (layout l draws its row of buildings from seed + l)."""
    if layout == 0:
        return config
    buildings = dataclasses.replace(config.buildings, seed=config.buildings.seed + layout)
    return dataclasses.replace(config, buildings=buildings)


def slots_in_run(config: ScenarioConfig, run: int) -> int:
    """Served vehicles of `run` that give drives (the last run may carry fewer)."""
    served = config.traffic.served_per_run
    return max(0, min(served, config.dataset.drives - (run - config.dataset.first_run) * served))


class DriveSimulator:
    """Poses the scene frame by frame and turns traced paths into the schema's per-frame arrays."""

    def __init__(self, config: ScenarioConfig, pool: dict[str, int]):
        """`config` with the buildings of the layout to trace; `pool`: vehicle objects per kind
        (twin.trace.traffic.pool_sizes of the runs it will pose)."""
        self.config = config
        self.array = UniformLinearArray.from_config(config.base_station)
        self.codebook = Codebook.from_config(config.base_station)
        self.noise_dbm = noise_power_dbm(config.radio.bandwidth_hz, config.radio.noise_figure_db)
        self.scene = TwinScene(config, pool)
        self.tracer = ChannelTracer(self.scene, config.ray_tracing)
        self.sensors = build_sensors(config, self.scene)
        self.sensor_seconds = {type(sensor).__name__: 0.0 for sensor in self.sensors}

    def simulate(
        self, run: TrafficRun, progress: tqdm | None = None
    ) -> tuple[list[Episode], dict[str, np.ndarray]]:
        """The run's episodes (its drives, twin.dataset.view) and the base-station sensor arrays they
        share (only the frames some drive needs)."""
        cfg = self.config
        plan = plan_run(cfg, run, slots_in_run(cfg, run.run))
        slots = [slot for slot, _ in plan.drives]
        served = run.served[slots]
        positions, yaws = plan.antennas.positions[:, slots], plan.antennas.yaws[slots]
        tables = []
        sensed: dict[str, list[np.ndarray]] = {}
        for frame in plan.frames:
            self.scene.pose(run, int(frame))  # one scene state feeds the channels and every sensor
            tables.append(self.tracer(positions[frame], run.velocity_at(int(frame))[served], yaws))
            state = FrameState(self.scene, run, int(frame))
            for sensor in self.sensors:
                start = time.perf_counter()
                for name, array in sensor(state).items():
                    sensed.setdefault(name, []).append(array)
                self.sensor_seconds[type(sensor).__name__] += time.perf_counter() - start
            if progress is not None:
                progress.update(sum(int(frame in frames) for _, frames in plan.drives))
        shared = {name: np.stack(arrays) for name, arrays in sensed.items()}
        if not tables:
            return [], shared
        # (F, S, ...) per field over the traced frames, then one episode per drive.
        width = max(t.gain.shape[1] for t in tables)
        stacked = PathTable(
            *(np.stack([getattr(t.padded(width), f) for t in tables]) for f in PathTable.__dataclass_fields__)
        )
        blocked = self._blocked(run, plan.frames, positions[plan.frames], served)
        rng = np.random.default_rng([cfg.seed, run.run, 1])
        episodes = []
        for column, (slot, frames) in enumerate(plan.drives):
            rows = np.searchsorted(plan.frames, frames)
            own = PathTable(*(getattr(stacked, f)[rows, column] for f in PathTable.__dataclass_fields__))
            vehicle, antenna = int(served[column]), positions[:, column]
            episodes.append(
                self._episode(run, slot, vehicle, frames, own, antenna, blocked[rows, column], rng)
            )
        return episodes, shared

    def _blocked(
        self, run: TrafficRun, frames: np.ndarray, antennas: np.ndarray, served: np.ndarray
    ) -> np.ndarray:
        """(F, S): whether another vehicle's box cuts the segment from the base station to each UE at
        the run's `frames` (antennas (F, S, 3) there)."""
        count = antennas.shape[1]
        half = run.sizes / 2
        bs = np.asarray(self.config.base_station.position_m, np.float64)
        out = np.zeros((len(frames), count), bool)
        for i, frame in enumerate(frames):
            centers = run.positions[frame].copy()
            centers[:, 2] = half[:, 2]
            hits = segments_hit_boxes(np.repeat(bs[None], count, 0), antennas[i], centers, half, run.yaws)
            hits[np.arange(count), served] = False  # a UE is never blocked by its own car
            out[i] = hits.any(axis=1)
        return out

    def _episode(
        self,
        run: TrafficRun,
        slot: int,
        vehicle: int,
        frames: np.ndarray,
        own: PathTable,
        antenna: np.ndarray,
        blocked: np.ndarray,
        rng: np.random.Generator,
    ) -> Episode:
        cfg = self.config
        kept, dropped = own.truncated(cfg.ray_tracing.max_paths_stored)
        h = narrowband_channel(own, self.array)
        static = cfg.traffic.static_ue
        if static.enabled and static.blocker_loss_db is not None:
            h = through_blockers(own, h, self.array, static.blocker_loss_db)
        rsrp_true = rsrp_noiseless_dbm(h, self.codebook, cfg.radio.tx_power_dbm)
        rsrp = measure_rsrp_dbm(rsrp_true, self.noise_dbm, cfg.radio.measurement_noise_db, rng)
        velocity = run.velocities[:, vehicle] if run.velocities.ndim == 3 else run.velocities[None, vehicle]
        velocity = np.broadcast_to(velocity, (run.num_frames, 3))[frames]
        data = {
            "t": (frames - frames[0]).astype(np.float64) / cfg.dataset.frame_rate_hz,
            "ue_pos": antenna[frames].astype(np.float32),
            "ue_vel": velocity.astype(np.float32),
            "h": h,
            "rsrp_dbm": rsrp.astype(np.float32),
            "rsrp_noiseless_dbm": rsrp_true.astype(np.float32),
            "best_beam": np.argmax(rsrp, axis=-1).astype(np.int16),
            "los": own.los,
            "blocked": blocked,
        }
        if cfg.radio.num_subcarriers > 0:
            offsets = subcarrier_offsets(cfg.radio.bandwidth_hz, cfg.radio.num_subcarriers)
            data["csi"] = ofdm_channel(own, self.array, cfg.radio.carrier_hz, offsets)
        if cfg.sensors.gps.enabled:
            gps_rng = np.random.default_rng([cfg.seed, run.run, slot, 2])
            data["gps"], data["gps_valid"] = gps_track(
                cfg.sensors.gps, cfg.geodetic_origin, antenna[frames], cfg.dataset.frame_rate_hz, gps_rng
            )
        vehicle_info = run.vehicles[vehicle]
        return Episode(
            id=f"run{run.run:05d}-ue{slot:02d}",
            data=data,
            groups={
                "paths": {f: getattr(kept, f) for f in PathTable.__dataclass_fields__},
                "traffic": {
                    "positions": run.positions[frames].astype(np.float32),
                    "yaws": run.yaws.astype(np.float32),
                    "sizes": run.sizes.astype(np.float32),
                    "kinds": np.array([v.kind for v in run.vehicles], dtype="S"),
                },
            },
            attrs={
                "run": run.run,
                "vehicle_index": vehicle,
                "lane": vehicle_info.lane,
                "direction": vehicle_info.direction,
                "kind": vehicle_info.kind,
                "height_m": float(vehicle_info.size_m[2]),
                "speed_mps": float(np.linalg.norm(velocity, axis=-1).mean()),
                "first_frame": int(frames[0]),  # in the run's window: traffic/ and sensors start here
                "night": bool(run.night),
                "layout": int(run.layout),
                "paths_dropped": int(dropped.sum()),
            },
        )

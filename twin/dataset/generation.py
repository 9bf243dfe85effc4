"""Scenario → cached HDF5 dataset of drives (channels, path tables, RSRP sweeps, labels).

Trace once, replay many: every served vehicle of a run is a receiver of the same Sionna call, so
one call per frame yields one sample of each of that run's drives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import twin
from twin.progress import progress_bar
from twin.radio.codebook import (
    Codebook,
    UniformLinearArray,
    measure_rsrp_dbm,
    noise_power_dbm,
    rsrp_noiseless_dbm,
)
from twin.scenario.config import ScenarioConfig, config_digest, scenario_yaml
from twin.sensors.base import FrameState
from twin.sensors.camera import intrinsics, rotation
from twin.sensors.gps import gps_track
from twin.sensors.registry import build_sensors
from twin.store import Episode, StoreWriter
from twin.store.digest import source_digest
from twin.trace.channel import ChannelTracer, PathTable, narrowband_channel, ofdm_channel, subcarrier_offsets
from twin.trace.geometry import segments_hit_boxes
from twin.trace.scene import ASSETS_DIR, TwinScene, load_vehicle_models
from twin.trace.traffic import TrafficRun, make_run, pool_sizes
from twin.validation import to_dict

log = logging.getLogger(__name__)

# Source files whose behaviour shapes the stored numbers: editing one invalidates cached datasets.
_GENERATION_SOURCES = (
    "validation.py", "modalities.py", "radio/", "scenario/config.py", "scenario/geodetic.py",
    "scenario/materials.py", "trace/", "sensors/", "store/schema.py", "store/hdf5.py",
    "dataset/generation.py",
)  # fmt: skip


def code_digest() -> str:
    return source_digest(_GENERATION_SOURCES, sorted((ASSETS_DIR / "vehicles").glob("*.ply")))


def store_path(config: ScenarioConfig, cache_dir: str | Path) -> Path:
    """Where the dataset of this exact configuration and code version lives."""
    key = hashlib.sha256((config_digest(config) + code_digest()).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{config.name}-{key}.h5"


def package_versions() -> dict[str, str]:
    versions = {"beam-twin": twin.__version__}
    for name in ("sionna-rt", "mitsuba", "drjit", "numpy", "h5py"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


@dataclass
class GenerationStats:
    frames: int = 0  # drive samples (one per served UE per time step)
    seconds: float = 0.0
    solver_seconds: float = 0.0
    sensor_seconds: dict[str, float] = field(default_factory=dict)
    steps: int = 0  # scene states (time steps of runs); sensors render once per step

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else float("nan")

    def describe(self) -> str:
        """One line for the console: how much was traced and where the time went."""
        sensors = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.sensor_seconds.items())
        return (
            f"traced {self.frames} frames in {self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s; "
            f"PathSolver {self.solver_seconds:.1f} s" + (f", {sensors}" if sensors else "") + ")"
        )


class DriveSimulator:
    """Poses the scene frame by frame and turns traced paths into the schema's per-frame arrays."""

    def __init__(self, config: ScenarioConfig, runs: list[TrafficRun]):
        self.config = config
        self.array = UniformLinearArray.from_config(config.base_station)
        self.codebook = Codebook.from_config(config.base_station)
        self.noise_dbm = noise_power_dbm(config.radio.bandwidth_hz, config.radio.noise_figure_db)
        self.scene = TwinScene(config, pool_sizes(runs))
        self.tracer = ChannelTracer(self.scene, config.ray_tracing)
        self.sensors = build_sensors(config, self.scene)
        self.sensor_seconds = {type(sensor).__name__: 0.0 for sensor in self.sensors}

    def drives_in_run(self, run: int) -> int:
        served = self.config.traffic.served_per_run
        return max(0, min(served, self.config.dataset.drives - run * served))

    def simulate(
        self, run: TrafficRun, progress: tqdm | None = None
    ) -> tuple[list[Episode], dict[str, np.ndarray]]:
        """The run's episodes and the base-station sensor arrays they share."""
        cfg = self.config
        count = self.drives_in_run(run.run)
        served = run.served[:count]
        antennas = run.antenna_positions(cfg.traffic.ue_antenna_above_roof_m)[:, :count]
        velocities = run.velocities[served]
        tables = []
        sensed: dict[str, list[np.ndarray]] = {}
        for frame in range(cfg.dataset.frames_per_drive):
            self.scene.pose(run, frame)  # one scene state feeds the channels and every sensor
            tables.append(self.tracer(antennas[frame], velocities))
            state = FrameState(self.scene, run, frame)
            for sensor in self.sensors:
                start = time.perf_counter()
                for name, array in sensor(state).items():
                    sensed.setdefault(name, []).append(array)
                self.sensor_seconds[type(sensor).__name__] += time.perf_counter() - start
            if progress is not None:
                progress.update(count)
        shared = {name: np.stack(arrays) for name, arrays in sensed.items()}
        # (T, S, ...) per field, then one episode per served vehicle.
        width = max(t.gain.shape[1] for t in tables)
        stacked = PathTable(
            *(np.stack([getattr(t.padded(width), f) for t in tables]) for f in PathTable.__dataclass_fields__)
        )
        blocked = self._blocked(run, antennas, served)
        rng = np.random.default_rng([cfg.seed, run.run, 1])
        episodes = [
            self._episode(run, j, int(served[j]), stacked, antennas[:, j], blocked[:, j], rng)
            for j in range(count)
        ]
        return episodes, shared

    def _blocked(self, run: TrafficRun, antennas: np.ndarray, served: np.ndarray) -> np.ndarray:
        """(T, S): whether another vehicle's box cuts the segment from the base station to each UE."""
        frames, count = antennas.shape[:2]
        sizes = run.sizes
        half = sizes / 2
        bs = np.asarray(self.config.base_station.position_m, np.float64)
        out = np.zeros((frames, count), bool)
        for t in range(frames):
            centers = run.positions[t].copy()
            centers[:, 2] = half[:, 2]
            hits = segments_hit_boxes(np.repeat(bs[None], count, 0), antennas[t], centers, half, run.yaws)
            hits[np.arange(count), served] = False  # a UE is never blocked by its own car
            out[t] = hits.any(axis=1)
        return out

    def _episode(
        self,
        run: TrafficRun,
        slot: int,
        vehicle: int,
        paths: PathTable,
        antenna: np.ndarray,
        blocked: np.ndarray,
        rng: np.random.Generator,
    ) -> Episode:
        cfg = self.config
        own = PathTable(*(getattr(paths, f)[:, slot] for f in PathTable.__dataclass_fields__))
        kept, dropped = own.truncated(cfg.ray_tracing.max_paths_stored)
        h = narrowband_channel(own, self.array)
        rsrp_true = rsrp_noiseless_dbm(h, self.codebook, cfg.radio.tx_power_dbm)
        rsrp = measure_rsrp_dbm(rsrp_true, self.noise_dbm, cfg.radio.measurement_noise_db, rng)
        frames = len(h)
        data = {
            "t": np.arange(frames, dtype=np.float64) / cfg.dataset.frame_rate_hz,
            "ue_pos": antenna.astype(np.float32),
            "ue_vel": np.repeat(run.velocities[vehicle][None], frames, 0).astype(np.float32),
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
                cfg.sensors.gps, cfg.geodetic_origin, antenna, cfg.dataset.frame_rate_hz, gps_rng
            )
        vehicle_info = run.vehicles[vehicle]
        return Episode(
            id=f"run{run.run:05d}-ue{slot:02d}",
            data=data,
            groups={
                "paths": {f: getattr(kept, f) for f in PathTable.__dataclass_fields__},
                "traffic": {
                    "positions": run.positions.astype(np.float32),
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
                "speed_mps": float(np.linalg.norm(run.velocities[vehicle])),
                "paths_dropped": int(dropped.sum()),
            },
        )


def root_attributes(config: ScenarioConfig, codebook: Codebook) -> dict:
    radio, bs, origin = config.radio, config.base_station, config.geodetic_origin
    modalities = ["ue_pos", "ue_vel", "h", "rsrp_noiseless_dbm", "los", "blocked"]
    if radio.num_subcarriers > 0:
        modalities.append("csi")
    sensors = config.sensors
    if sensors.camera.enabled:
        modalities.append("camera")
    if sensors.lidar.enabled:
        modalities += ["lidar", "lidar_count", "lidar_object"]
    if sensors.radar.enabled:
        modalities.append("radar")
    if sensors.gps.enabled:
        modalities += ["gps", "gps_valid"]
    return {
        "source": "twin",
        "scenario_name": config.name,
        "scenario_yaml": scenario_yaml(config),
        "seed": config.seed,
        "carrier_hz": radio.carrier_hz,
        "bandwidth_hz": radio.bandwidth_hz,
        "noise_figure_db": radio.noise_figure_db,
        "noise_power_dbm": noise_power_dbm(radio.bandwidth_hz, radio.noise_figure_db),
        "tx_power_dbm": radio.tx_power_dbm,
        "measurement_noise_db": radio.measurement_noise_db,
        "frame_rate_hz": config.dataset.frame_rate_hz,
        "num_beams": codebook.num_beams,
        "num_antennas": bs.array.num_elements,
        "array_spacing_wavelengths": bs.array.spacing_wavelengths,
        "array_pattern": bs.array.pattern,
        "bs_position_m": np.asarray(bs.position_m),
        "bs_yaw_deg": bs.yaw_deg,
        "geodetic_origin": np.array([origin.latitude_deg, origin.longitude_deg, origin.altitude_m]),
        "modalities": json.dumps(modalities),
        "package_versions": json.dumps(package_versions()),
        "config_digest": config_digest(config),
        "code_digest": code_digest(),
        "h_convention": "uplink UE->BS element n (reciprocal); RSRP_k = P_tx + 10 log10 |h^H w_k|^2",
        "sensors": json.dumps(to_dict(sensors)),
        "camera_intrinsics": intrinsics(sensors.camera),
        "camera_rotation": rotation(sensors.camera),  # world -> camera (x right, y down, z forward)
        "camera_position_m": np.asarray(sensors.camera.position_m),
        "lidar_position_m": np.asarray(sensors.lidar.position_m),
        "lidar_frame": "points relative to lidar_position_m, axes of the local frame",
        "radar_position_m": np.asarray(sensors.radar.position_m),
        "geodetic_heading_deg": origin.heading_deg,
    }


def generate(
    config: ScenarioConfig, cache_dir: str | Path, progress: bool = True
) -> tuple[Path, GenerationStats]:
    """Build (or find) the dataset of `config`; resumes a killed generation where it stopped."""
    path = store_path(config, cache_dir)
    stats = GenerationStats()
    if path.exists():
        return path, stats
    models = load_vehicle_models(config)
    sizes = {kind: model.size_m for kind, model in models.items()}
    runs = [make_run(config, r, sizes) for r in range(config.num_runs)]
    codebook = Codebook.from_config(config.base_station)
    constants = {"codebook/angles_deg": np.rad2deg(codebook.angles_rad), "codebook/weights": codebook.weights}
    writer = StoreWriter(path, root_attributes(config, codebook), constants)
    done = writer.completed_runs()
    todo = [run for run in runs if run.run not in done]
    if todo:
        simulator = DriveSimulator(config, runs)
        total = sum(simulator.drives_in_run(r.run) for r in todo) * config.dataset.frames_per_drive
        start = time.perf_counter()
        with progress_bar(total=total, unit="frame", desc=f"tracing {config.name}", enabled=progress) as bar:
            for run in todo:
                episodes, shared = simulator.simulate(run, bar)
                writer.write_run(run.run, episodes, shared)
        stats = GenerationStats(
            frames=total,
            seconds=time.perf_counter() - start,
            solver_seconds=simulator.tracer.timer.solver_s,
            sensor_seconds=dict(simulator.sensor_seconds),
            steps=len(todo) * config.dataset.frames_per_drive,
        )
    writer.finalize(len(runs))
    return path, stats

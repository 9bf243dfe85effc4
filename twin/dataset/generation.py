"""Scenario → cached HDF5 dataset of drives (channels, path tables, RSRP sweeps, labels).

Trace once, replay many: every served vehicle of a run is a receiver of the same Sionna call, so
one call per frame yields one sample of each of that run's drives.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

import twin
from twin.dataset.digest import code_digest
from twin.dataset.estimate import check_disk, estimate_generation
from twin.dataset.parallel import RunTask, automatic_workers, release_scenes, trace_run
from twin.dataset.simulator import slots_in_run
from twin.dataset.view import plan_run
from twin.errors import StoreError
from twin.executor import Executor, LocalExecutor
from twin.progress import progress_bar
from twin.radio.codebook import (
    Codebook,
    UniformLinearArray,
    noise_power_dbm,
)
from twin.scenario.config import ScenarioConfig, config_digest, scenario_yaml
from twin.sensors.camera import intrinsics, rotation
from twin.store import StoreWriter, discard_damaged
from twin.trace.scene import load_vehicle_models
from twin.trace.traffic import TrafficRun, make_run, pool_sizes
from twin.validation import to_dict

log = logging.getLogger(__name__)


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


def run_indices(config: ScenarioConfig) -> list[int]:
    """The traffic runs of the dataset: `dataset.first_run` on, one per `served_per_run` drives."""
    return [config.dataset.first_run + i for i in range(config.num_runs)]


def generate(
    config: ScenarioConfig,
    cache_dir: str | Path,
    progress: bool = True,
    workers: int = 0,
    executor: Executor | None = None,
) -> tuple[Path, GenerationStats]:
    """Build (or find) the dataset of `config`; resumes a killed generation where it stopped.
    Each run is one unit of work of `executor` (default: local; `workers` processes trace runs side
    by side, 0: one per two cores when there are enough frames to pay for starting them,
    twin.dataset.parallel; a Ray executor runs them as tasks). The store does not depend on either."""
    executor = executor or LocalExecutor()
    path = store_path(config, cache_dir)
    stats = GenerationStats()
    if path.exists():
        damaged = discard_damaged(path)  # a truncated or incomplete cache is built again, not vouched for
        if damaged is None:
            return path, stats
        print(f"cached store {path} was damaged ({damaged}); generating it again", file=sys.stderr)
    estimate = estimate_generation(config)
    check_disk(estimate, path.parent, config.dataset.drives)  # before anything is written
    if progress or estimate.seconds > 60:
        print(estimate.describe(), file=sys.stderr)
    models = load_vehicle_models(config)
    sizes = {kind: model.size_m for kind, model in models.items()}
    runs = [make_run(config, r, sizes) for r in run_indices(config)]
    codebook = Codebook.from_config(config.base_station)
    constants = {"codebook/angles_deg": np.rad2deg(codebook.angles_rad), "codebook/weights": codebook.weights}
    errors = UniformLinearArray.from_config(config.base_station).element_gain
    if errors is not None:  # the real elements' gains; the codebook's weights stay the ideal ones
        constants["codebook/element_gain"] = errors.astype(np.complex64)
    writer = StoreWriter(path, root_attributes(config, codebook), constants)
    done = writer.completed_runs()
    todo = [run for run in runs if run.run not in done]
    if todo:
        stats = _trace(config, runs, todo, writer.parts, executor, workers, progress)
    missing = sorted(set(run_indices(config)) - writer.completed_runs())
    if missing and executor.kind != "local":
        raise StoreError(
            f"{writer.parts}: no part files of runs {missing[:5]} after every task finished; the "
            f"{executor.kind} workers must write into the same cache_dir path (storage every node shares)"
        )
    writer.finalize(run_indices(config))
    return path, stats


def _trace(
    config: ScenarioConfig,
    runs: list[TrafficRun],
    todo: list[TrafficRun],
    parts: Path,
    executor: Executor,
    workers: int,
    progress: bool,
) -> GenerationStats:
    """Trace the runs of `todo` (each writes its part file), as units of work of `executor`."""
    rigs = config.traffic.ue_rig.enabled
    pools = {  # one scene per layout, with enough vehicles for any of its runs
        layout: pool_sizes([r for r in runs if r.layout == layout], rigs=rigs)
        for layout in {r.layout for r in runs}
    }
    plans = {run.run: plan_run(config, run, slots_in_run(config, run.run)) for run in todo}
    frames = {index: plan.drive_frames for index, plan in plans.items()}
    total = sum(frames.values())
    ordered = sorted(todo, key=lambda r: r.layout)
    code = code_digest()
    tasks = [RunTask(config, run.layout, pools[run.layout], run.run, parts, code) for run in ordered]
    workers = workers or automatic_workers(total)
    here = executor.runs_here(workers)
    desc = f"tracing {config.name}" + ("" if executor.kind == "local" else f" on {executor.kind}")
    start = time.perf_counter()
    solver_s, sensor_s = 0.0, {}
    with progress_bar(total=total, unit="frame", desc=desc, enabled=progress) as bar:
        work = functools.partial(trace_run, progress=bar) if here else trace_run
        try:
            for finished, (_, result) in enumerate(
                executor.map(work, tasks, [f"run {t.run}" for t in tasks], processes=workers), 1
            ):
                solver_s += result.solver_seconds
                for name, seconds in result.sensor_seconds.items():
                    sensor_s[name] = sensor_s.get(name, 0.0) + seconds
                if not here:  # frame by frame when here, else a finished run's frames at once
                    bar.set_postfix_str(f"{finished}/{len(tasks)} runs", refresh=False)
                    bar.update(frames[result.run])
        finally:
            release_scenes()
    return GenerationStats(
        frames=total,
        seconds=time.perf_counter() - start,
        solver_seconds=solver_s,
        sensor_seconds=dict(sorted(sensor_s.items())),
        steps=sum(len(plan.frames) for plan in plans.values()),
    )

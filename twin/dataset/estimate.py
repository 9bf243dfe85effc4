"""How much disk and time a scenario's generation asks for, before any of it is spent.

Rough by design (within a factor of about two): sizes from the stored arrays, times from the
README's measured throughput on a 2-core CPU. A drive count inside the allowed range can still ask
for days of tracing and terabytes; the estimate is printed, and what cannot fit on disk is refused.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.errors import ConfigError
from twin.scenario.config import ScenarioConfig

# Measured (README, "Measured performance"): seconds per unit of work on this project's CPU.
CHANNEL_S_PER_CALL = 0.068  # one PathSolver call per scene frame costs about the same for 1 or 8 UEs
CAMERA_S_PER_PIXEL = 0.022 / (320 * 180)
LIDAR_S_PER_RAY = 0.008 / (32 * 1024)
RADAR_S_PER_SAMPLE = 0.005 / (4 * 64 * 64)
CAMERA_COMPRESSION = 0.1  # LZF on flat-shaded images (about 4 KiB of 169 KiB at 320 x 180)


@dataclass(frozen=True)
class GenerationEstimate:
    frames: int  # drive samples (one per served UE per time step)
    scene_frames: int  # scene states: sensors render once each
    bytes: int
    seconds: float

    def describe(self) -> str:
        return (
            f"estimate       {self.frames:,} frames ({self.scene_frames:,} scene frames): about "
            f"{format_bytes(self.bytes)} on disk and {format_duration(self.seconds)} of tracing"
        )


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    for unit, length in (("days", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.1f} {unit}"
    return f"{seconds:.0f} s"


def drive_frames(config: ScenarioConfig) -> float:
    """Frames of a typical drive: the whole run window, or (view drives) the time a car at the mean
    speed needs to cross the view at the lanes' mean distance from the base station."""
    data = config.dataset
    if not data.view.enabled:
        return float(data.frames_per_drive)
    bs, view = config.base_station, data.view
    half = max(abs(bs.codebook.min_angle_deg), abs(bs.codebook.max_angle_deg)) + view.margin_deg
    if view.camera and config.sensors.camera.enabled:
        half = min(half, config.sensors.camera.horizontal_fov_deg / 2)
    distance = float(np.mean([abs(lane.offset_m - bs.position_m[1]) for lane in config.street.lanes]))
    speed = float(np.mean(config.traffic.speed_kmh)) / 3.6
    seconds = 2 * distance * np.tan(np.deg2rad(min(half, 89.0))) / max(speed, 0.1)
    return float(min(data.frames_per_drive, max(view.min_frames, seconds * data.frame_rate_hz)))


def estimate_generation(config: ScenarioConfig) -> GenerationEstimate:
    """Disk and tracing time of the whole dataset of `config`."""
    data, bs, tracing = config.dataset, config.base_station, config.ray_tracing
    per_drive = drive_frames(config)
    frames = round(data.drives * per_drive)
    scene_frames = round(config.num_runs * per_drive)
    vehicles = len(config.street.lanes) * config.traffic.vehicles_per_lane
    paths = tracing.max_paths_stored * (8 + 4 + 12 + 4 + 1 + 1 + 1 + 12 * max(tracing.max_depth, 1))
    per_frame = (
        8 * bs.array.num_elements * (1 + config.radio.num_subcarriers)  # h (and CSI)
        + 8 * bs.codebook.num_beams  # measured and noiseless RSRP
        + paths
        + 28 * vehicles  # traffic poses
        + 64  # labels, positions, GPS
    )
    sensors = config.sensors
    per_scene, seconds = 0.0, scene_frames * CHANNEL_S_PER_CALL
    if sensors.camera.enabled:
        pixels = sensors.camera.resolution[0] * sensors.camera.resolution[1]
        per_scene += 3 * pixels * CAMERA_COMPRESSION
        seconds += scene_frames * pixels * CAMERA_S_PER_PIXEL
    if sensors.lidar.enabled:
        rays = sensors.lidar.channels * sensors.lidar.azimuth_steps
        per_scene += rays * (16 + 2) + 4
        seconds += scene_frames * rays * LIDAR_S_PER_RAY
    if sensors.radar.enabled:
        samples = sensors.radar.num_rx * sensors.radar.samples_per_chirp * sensors.radar.chirps_per_frame
        per_scene += 8 * samples
        seconds += scene_frames * samples * RADAR_S_PER_SAMPLE
    size = int(frames * per_frame + scene_frames * per_scene)
    return GenerationEstimate(frames, scene_frames, size, seconds)


def check_disk(estimate: GenerationEstimate, folder: Path, drives: int) -> None:
    """Refuse a dataset that cannot fit: while the runs are merged, the parts and the merged file
    exist side by side, so twice the store's size must be free."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if 2 * estimate.bytes > free:
        raise ConfigError(
            f"scenario.dataset.drives = {drives}: the dataset needs about {format_bytes(estimate.bytes)} "
            f"(twice that while merging), but {existing} has {format_bytes(free)} free; lower "
            "scenario.dataset.drives or frames_per_drive, or the sensors' resolution"
        )

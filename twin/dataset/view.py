"""A drive as a DeepSense 6G sequence: the frames of a served car's pass inside the base station's view.

The view is the codebook's sector widened by `dataset.view.margin_deg` on each side (directions in
front of the array only) and, with `dataset.view.camera`, the camera's horizontal field of view. A
drive is the longest stretch of consecutive frames in which the car's UE antenna is inside it, at
most `frames_per_drive` long (centred on the pass) and at least `min_frames`; a car that never
enters the view gives no drive. Frames of a run that no drive needs are neither traced nor rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.radio.codebook import UniformLinearArray
from twin.scenario.config import ScenarioConfig
from twin.sensors.camera import project
from twin.trace.traffic import TrafficRun, UeAntennas, ue_antennas


def in_view(config: ScenarioConfig, points: np.ndarray) -> np.ndarray:
    """(...,) whether points (..., 3) lie inside the base station's view."""
    bs = config.base_station
    array = UniformLinearArray.from_config(bs)
    offset = np.asarray(points, np.float64) - array.position
    direction = offset / np.maximum(np.linalg.norm(offset, axis=-1, keepdims=True), 1e-9)
    angle = np.rad2deg(np.arcsin(np.clip(direction @ array.axis, -1.0, 1.0)))
    margin = config.dataset.view.margin_deg
    inside = (direction @ array.boresight > 0) & (angle >= bs.codebook.min_angle_deg - margin)
    inside &= angle <= bs.codebook.max_angle_deg + margin
    camera = config.sensors.camera
    if config.dataset.view.camera and camera.enabled:
        column = project(camera, points)[..., 0]
        with np.errstate(invalid="ignore"):
            inside &= np.isfinite(column) & (column >= 0) & (column <= camera.resolution[0])
    return inside


def longest_stretch(inside: np.ndarray, min_frames: int, max_frames: int) -> np.ndarray:
    """Frame indices of the longest run of True in `inside` (its centre when longer than
    `max_frames`); empty when shorter than `min_frames`."""
    padded = np.concatenate([[False], np.asarray(inside, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    if starts.size == 0:
        return np.zeros(0, np.int64)
    best = int(np.argmax(ends - starts))
    start, end = int(starts[best]), int(ends[best])
    if end - start > max_frames:
        start += (end - start - max_frames) // 2
        end = start + max_frames
    if end - start < min_frames:
        return np.zeros(0, np.int64)
    return np.arange(start, end)


@dataclass(frozen=True)
class RunPlan:
    """What a run traces: its drives (served slot, frames of the run window) and the union of frames."""

    run: TrafficRun
    antennas: UeAntennas  # of every served vehicle of the run
    drives: tuple[tuple[int, np.ndarray], ...]  # (slot in run.served, run frames of the drive)
    frames: np.ndarray  # sorted run frames any drive needs

    @property
    def drive_frames(self) -> int:
        return sum(len(frames) for _, frames in self.drives)


def plan_run(config: ScenarioConfig, run: TrafficRun, slots: int) -> RunPlan:
    """The drives of the first `slots` served vehicles of `run` and the frames to trace for them."""
    antennas = ue_antennas(run, config.traffic, config.base_station.position_m)
    view = config.dataset.view
    frames_total = run.num_frames
    drives = []
    for slot in range(min(slots, len(run.served))):
        if view.enabled:
            inside = in_view(config, antennas.positions[:, slot])
            frames = longest_stretch(inside, view.min_frames, config.dataset.frames_per_drive)
        else:
            frames = np.arange(frames_total)
        if frames.size:
            drives.append((slot, frames))
    union = np.unique(np.concatenate([f for _, f in drives])) if drives else np.zeros(0, np.int64)
    return RunPlan(run=run, antennas=antennas, drives=tuple(drives), frames=union)

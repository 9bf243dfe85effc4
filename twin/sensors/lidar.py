"""A spinning LiDAR at the base station (Ouster OS1-32-like by default), ray-cast in the twin.

Points are (x, y, z, intensity) in metres relative to the LiDAR, axes of the local frame; returns
beyond `max_range_m` are dropped, ranges get Gaussian noise, and each point keeps the label of what
it hit (vehicle index, ground, building) for tests and training labels. Points are packed first
and padded to channels x azimuth_steps.
"""

from __future__ import annotations

import numpy as np

from twin.scenario.config import LidarConfig, ScenarioConfig
from twin.sensors.base import FrameState
from twin.sensors.raycast import cast
from twin.store.schema import FIELDS_BY_NAME
from twin.trace.scene import GROUND, TwinScene

# Diffuse reflectivity by what was hit (a return's intensity scales with it and the incidence).
_REFLECTIVITY = {"concrete": 0.45, "glass": 0.08, "metal": 0.6, "wood": 0.35, "brick": 0.4, GROUND: 0.2}


def beam_directions(config: LidarConfig) -> np.ndarray:
    """(channels x azimuth_steps, 3) unit vectors, channel-major like the sensor's firing order."""
    elevation = np.deg2rad(np.linspace(*config.vertical_fov_deg, config.channels))
    azimuth = 2 * np.pi * np.arange(config.azimuth_steps) / config.azimuth_steps
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)


class Lidar:
    fields = (FIELDS_BY_NAME["lidar"], FIELDS_BY_NAME["lidar_count"], FIELDS_BY_NAME["lidar_object"])

    def __init__(self, config: ScenarioConfig, twin: TwinScene):
        self.config = config.sensors.lidar
        self.seed = config.seed
        self.origin = np.asarray(self.config.position_m, np.float64)
        self.directions = beam_directions(self.config)

    @property
    def num_points(self) -> int:
        return len(self.directions)

    def __call__(self, state: FrameState) -> dict[str, np.ndarray]:
        hits = cast(state.twin, state.run, self.origin, self.directions)
        keep = hits.hit & (hits.distance <= self.config.max_range_m)
        rng = np.random.default_rng([self.seed, state.run.run, state.frame, 11])
        ranges = hits.distance[keep] + rng.normal(0.0, self.config.range_noise_m, keep.sum())
        directions = self.directions[keep]
        incidence = np.abs(np.einsum("ij,ij->i", hits.normal[keep], directions))
        reflectivity = _reflectivity(state.twin, hits.object_id[keep])
        count = int(keep.sum())
        points = np.zeros((self.num_points, 4), np.float32)
        points[:count, :3] = directions * ranges[:, None]
        points[:count, 3] = reflectivity * incidence
        labels = np.full(self.num_points, -3, np.int16)
        labels[:count] = hits.label[keep]
        return {"lidar": points, "lidar_count": np.int32(count), "lidar_object": labels}


def _reflectivity(twin: TwinScene, object_ids: np.ndarray) -> np.ndarray:
    out = np.empty(len(object_ids))
    for oid in np.unique(object_ids):  # a handful of objects, not per point
        surface = twin.surface(int(oid))
        key = GROUND if surface.category == GROUND else surface.material
        out[object_ids == oid] = _REFLECTIVITY.get(key, 0.3)
    return out

"""What a learner knows about the deployment it was trained for: codebook, base-station pose, sensor
placement and radio constants, read from a store's root attributes and saved with every checkpoint.

Preprocessing (GPS → metres around the base station, LiDAR relative to the ground, radar maps) and
the Kalman baseline's geometric beam need it; a checkpoint carries it so a policy preprocesses
environment observations exactly as the training data was preprocessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.errors import StoreError
from twin.store import TwinStore
from twin.validation import to_dict

Vector = tuple[float, ...]


@dataclass(frozen=True)
class Deployment:
    num_beams: int
    angles_deg: Vector  # (K,) beam steering angles, angular order
    frame_rate_hz: float
    noise_power_dbm: float
    bs_position_m: Vector | None = None  # (3,)
    bs_yaw_deg: float | None = None  # boresight azimuth, counter-clockwise from local +x
    geodetic_origin: Vector | None = None  # latitude, longitude, altitude, heading of local +x
    lidar_position_m: Vector | None = None  # (3,)
    sensors: dict[str, Any] = field(default_factory=dict)  # the store's sensor configuration (JSON)

    @property
    def angles(self) -> np.ndarray:
        return np.asarray(self.angles_deg, np.float64)

    def to_json(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        def vector(name: str) -> Vector | None:
            value = data.get(name)
            return None if value is None else tuple(float(v) for v in value)

        return cls(
            num_beams=int(data["num_beams"]),
            angles_deg=tuple(float(a) for a in data["angles_deg"]),
            frame_rate_hz=float(data["frame_rate_hz"]),
            noise_power_dbm=float(data["noise_power_dbm"]),
            bs_position_m=vector("bs_position_m"),
            bs_yaw_deg=None if data.get("bs_yaw_deg") is None else float(data["bs_yaw_deg"]),
            geodetic_origin=vector("geodetic_origin"),
            lidar_position_m=vector("lidar_position_m"),
            sensors=dict(data.get("sensors") or {}),
        )


def _vector(attrs: Any, name: str, size: int) -> Vector | None:
    if name not in attrs:
        return None
    values = np.asarray(attrs[name], np.float64).reshape(-1)
    return tuple(float(v) for v in values[:size]) if values.size >= size else None


def deployment_of(store: TwinStore) -> Deployment:
    """The deployment a store was recorded in (replayed stores may lack the poses: those stay None)."""
    attrs = store.attrs
    num_beams = int(attrs["num_beams"])
    try:
        angles = np.asarray(store.constant("codebook/angles_deg"), np.float64)
    except StoreError:  # replayed data without a codebook: DeepSense's uniform ±45 degrees
        angles = np.linspace(-45.0, 45.0, num_beams)
    origin = _vector(attrs, "geodetic_origin", 3)
    if origin is not None:
        origin = (*origin, float(attrs.get("geodetic_heading_deg", 90.0)))
    sensors = json.loads(attrs["sensors"]) if "sensors" in attrs else {}
    return Deployment(
        num_beams=num_beams,
        angles_deg=tuple(float(a) for a in angles),
        frame_rate_hz=float(attrs["frame_rate_hz"]),
        noise_power_dbm=float(attrs["noise_power_dbm"]),
        bs_position_m=_vector(attrs, "bs_position_m", 3),
        bs_yaw_deg=float(attrs["bs_yaw_deg"]) if "bs_yaw_deg" in attrs else None,
        geodetic_origin=origin,
        lidar_position_m=_vector(attrs, "lidar_position_m", 3),
        sensors=sensors,
    )

"""The deployment a store was recorded in, read from its root attributes in one place.

Codebook, base-station pose and array, geodetic origin, sensor placement and radio constants: what
the environment hands to policies (twin.loop.drives.TwinContext) and what a learner preprocesses
with and saves in its checkpoint (learners). Replayed recordings may lack the poses (those stay
None) or the codebook (then DeepSense's uniform ±45 degrees is assumed, and `codebook_from_store`
says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.errors import StoreError
from twin.radio.codebook import UniformLinearArray
from twin.scenario.config import GeodeticOrigin
from twin.store.hdf5 import TwinStore
from twin.validation import to_dict

Vector = tuple[float, ...]
DEFAULT_CODEBOOK_DEG = (-45.0, 45.0)  # DeepSense 6G's 64 beams over ±45 degrees


@dataclass(frozen=True)
class Deployment:
    num_beams: int
    angles_deg: Vector  # (K,) beam steering angles, angular order
    frame_rate_hz: float
    noise_power_dbm: float
    tx_power_dbm: float = 0.0
    measurement_noise_db: float = 0.0  # std of the power detector's error
    num_antennas: int = 0  # 0: unknown
    num_subcarriers: int = 0  # S of the store's csi (N × S); 0: no csi, only the narrowband h
    spacing_wavelengths: float = 0.5
    bs_position_m: Vector | None = None  # (3,)
    bs_yaw_deg: float | None = None  # boresight azimuth, counter-clockwise from local +x
    geodetic_origin: Vector | None = None  # latitude, longitude, altitude, heading of local +x
    lidar_position_m: Vector | None = None  # (3,)
    sensors: dict[str, Any] = field(default_factory=dict)  # the store's sensor configuration (JSON)
    codebook_from_store: bool = True  # False: angles assumed (DEFAULT_CODEBOOK_DEG)
    # The real elements' gain (dB) and phase (deg) errors; empty: an ideal array.
    element_gain_db: Vector = ()
    element_phase_deg: Vector = ()

    @property
    def angles(self) -> np.ndarray:
        return np.asarray(self.angles_deg, np.float64)

    @property
    def array(self) -> UniformLinearArray | None:
        """The base station's ULA, or None when the store lacks its pose."""
        if self.bs_position_m is None or self.bs_yaw_deg is None:
            return None
        errors = None
        if self.element_gain_db:
            errors = 10 ** (np.asarray(self.element_gain_db) / 20) * np.exp(
                1j * np.deg2rad(self.element_phase_deg)
            )
        return UniformLinearArray(
            num_elements=self.num_antennas,
            spacing_wavelengths=self.spacing_wavelengths,
            position=np.asarray(self.bs_position_m, np.float64),
            yaw_rad=float(np.deg2rad(self.bs_yaw_deg)),
            element_gain=errors,
        )

    @property
    def origin(self) -> GeodeticOrigin | None:
        if self.geodetic_origin is None:
            return None
        lat, lon, alt, heading = self.geodetic_origin
        return GeodeticOrigin(latitude_deg=lat, longitude_deg=lon, altitude_m=alt, heading_deg=heading)

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
            tx_power_dbm=float(data.get("tx_power_dbm", 0.0)),
            measurement_noise_db=float(data.get("measurement_noise_db", 0.0)),
            num_antennas=int(data.get("num_antennas", 0)),
            num_subcarriers=int(data.get("num_subcarriers", 0)),
            spacing_wavelengths=float(data.get("spacing_wavelengths", 0.5)),
            bs_position_m=vector("bs_position_m"),
            bs_yaw_deg=None if data.get("bs_yaw_deg") is None else float(data["bs_yaw_deg"]),
            geodetic_origin=vector("geodetic_origin"),
            lidar_position_m=vector("lidar_position_m"),
            sensors=dict(data.get("sensors") or {}),
            codebook_from_store=bool(data.get("codebook_from_store", True)),
            element_gain_db=tuple(float(v) for v in data.get("element_gain_db", ())),
            element_phase_deg=tuple(float(v) for v in data.get("element_phase_deg", ())),
        )


def _vector(attrs: Any, name: str, size: int) -> Vector | None:
    if name not in attrs:
        return None
    values = np.asarray(attrs[name], np.float64).reshape(-1)
    return tuple(float(v) for v in values[:size]) if values.size >= size else None


def codebook_weights(store: TwinStore) -> np.ndarray | None:
    """(K, N) codebook weights, or None when the store does not carry them (replayed sweeps)."""
    try:
        return store.constant("codebook/weights")
    except StoreError:
        return None


def _subcarriers(store: TwinStore) -> int:
    """S of the store's csi (the last axis of its (T, N, S) arrays), 0 when it has none."""
    if "csi" not in store.modalities:
        return 0
    return int(store.episode(store.episode_ids[0], ["csi"])["csi"].shape[-1])


def read_deployment(store: TwinStore) -> Deployment:
    """The deployment of an open, validated store."""
    attrs = store.attrs
    num_beams = int(attrs["num_beams"])
    try:
        angles, known = np.asarray(store.constant("codebook/angles_deg"), np.float64), True
    except StoreError:
        angles, known = np.linspace(*DEFAULT_CODEBOOK_DEG, num_beams), False
    origin = _vector(attrs, "geodetic_origin", 3)
    if origin is not None:
        origin = (*origin, float(attrs.get("geodetic_heading_deg", 90.0)))
    try:
        errors = np.asarray(store.constant("codebook/element_gain"), np.complex128)
    except StoreError:  # an ideal array (or a recording: its errors are in the data)
        errors = np.zeros(0, np.complex128)
    return Deployment(
        num_beams=num_beams,
        angles_deg=tuple(float(a) for a in angles),
        frame_rate_hz=float(attrs["frame_rate_hz"]),
        noise_power_dbm=float(attrs["noise_power_dbm"]),
        tx_power_dbm=float(attrs["tx_power_dbm"]),
        measurement_noise_db=float(attrs.get("measurement_noise_db", 0.0)),
        num_antennas=int(attrs.get("num_antennas", 0)),
        num_subcarriers=_subcarriers(store),
        spacing_wavelengths=float(attrs.get("array_spacing_wavelengths", 0.5)),
        bs_position_m=_vector(attrs, "bs_position_m", 3),
        bs_yaw_deg=float(attrs["bs_yaw_deg"]) if "bs_yaw_deg" in attrs else None,
        geodetic_origin=origin,
        lidar_position_m=_vector(attrs, "lidar_position_m", 3),
        sensors=json.loads(attrs["sensors"]) if "sensors" in attrs else {},
        codebook_from_store=known,
        element_gain_db=tuple(float(v) for v in 20 * np.log10(np.abs(errors))),
        element_phase_deg=tuple(float(v) for v in np.rad2deg(np.angle(errors))),
    )

"""Small synthetic stores with every modality, written in milliseconds without Sionna.

Vehicles drive straight past the base station at constant speed; the channel has three closed-form
paths (line of sight, a ground bounce, a reflection off the far facade), so h, the path table and
the sweeps agree exactly. Sensor fields hold deterministic patterns of the schema's shapes. Tests,
the environment benchmark and examples use these instead of tracing; `channel=False` writes a
replay-like store with measured RSRP only (no h, no paths, no noiseless truth).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twin.modalities import RECORDED_SENSORS
from twin.radio.codebook import Codebook, UniformLinearArray, measure_rsrp_dbm, noise_power_dbm
from twin.scenario.config import GeodeticOrigin
from twin.scenario.geodetic import local_to_geodetic
from twin.store import Episode, write_store

SPEED_OF_LIGHT = 299_792_458.0
BS_POSITION = (0.0, -9.0, 2.5)
FACADE_Y = 15.0
ORIGIN = GeodeticOrigin(latitude_deg=33.4193, longitude_deg=-111.9347, altitude_m=360.0)


def _paths(ue: np.ndarray, bs: np.ndarray, wavelength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, 3) gains, departures (T, 3, 3) and lengths of LoS, ground bounce and facade reflection."""
    images = np.stack(
        [ue, ue * np.array([1, 1, -1]), np.stack([ue[:, 0], 2 * FACADE_Y - ue[:, 1], ue[:, 2]], -1)], 1
    )
    vectors = images - bs
    lengths = np.linalg.norm(vectors, axis=-1)
    coefficient = np.array([1.0, -0.4, 0.5])
    gain = coefficient * wavelength / (4 * np.pi * lengths) * np.exp(-2j * np.pi * lengths / wavelength)
    return gain.astype(np.complex64), (vectors / lengths[..., None]).astype(np.float32), lengths


def synthetic_store(
    path: str | Path,
    drives: int = 4,
    frames: int | Sequence[int] = 40,
    num_beams: int = 64,
    num_antennas: int = 16,
    sensors: Sequence[str] = RECORDED_SENSORS,
    camera_hw: tuple[int, int] = (36, 64),
    lidar_points: int = 256,
    radar_shape: tuple[int, int, int] = (4, 16, 16),
    channel: bool = True,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    carrier, bandwidth, nf, tx = 60e9, 100e6, 7.0, 20.0
    wavelength = SPEED_OF_LIGHT / carrier
    noise = noise_power_dbm(bandwidth, nf)
    bs = np.asarray(BS_POSITION)
    array = UniformLinearArray(num_antennas, 0.5, bs, np.deg2rad(90.0))
    codebook = Codebook.steering(array, num_beams, -45.0, 45.0)
    fps = 10.0
    per_drive = [frames] * drives if isinstance(frames, int) else list(frames)
    episodes = []
    for d, frames in enumerate(per_drive):  # from here on: this drive's length
        t = np.arange(frames) / fps
        direction = 1 if d % 2 == 0 else -1
        speed = 8.0 + 2.0 * d
        x = direction * (speed * (t - t[-1] / 2)) + 3.0 * (d % 3 - 1)
        ue = np.stack([x, np.full(frames, -3.25 * direction), np.full(frames, 1.6)], -1)
        gain, departure, lengths = _paths(ue, bs, wavelength)
        h = np.einsum("tl,tln->tn", gain, array.steering(array.sin_angle(departure.astype(np.float64))))
        true = tx + 10 * np.log10(codebook.beamforming_gain(h))
        measured = measure_rsrp_dbm(true, noise, 0.5, rng).astype(np.float32)
        data = {
            "t": t,
            "rsrp_dbm": measured,
            "best_beam": measured.argmax(-1).astype(np.int16),
            "ue_pos": ue.astype(np.float32),
            "ue_vel": np.tile([direction * speed, 0.0, 0.0], (frames, 1)).astype(np.float32),
        }
        groups = {}
        if channel:
            data |= {
                "h": h.astype(np.complex64),
                "rsrp_noiseless_dbm": true.astype(np.float32),
                "los": np.ones(frames, bool),
                "blocked": np.zeros(frames, bool),
            }
            groups["paths"] = {
                "gain": gain,
                "delay_s": (lengths / SPEED_OF_LIGHT).astype(np.float32),
                "departure": departure,
                "doppler_hz": np.zeros((frames, 3), np.float32),
                "is_los": np.tile([True, False, False], (frames, 1)),
                "bounces": np.tile(np.array([0, 1, 1], np.int8), (frames, 1)),
                "vertices": np.full((frames, 3, 2, 3), np.nan, np.float32),
                "valid": np.ones((frames, 3), bool),
            }
        data |= _sensors(sensors, ue, frames, camera_hw, lidar_points, radar_shape, d)
        episodes.append(Episode(f"run{d // 2:05d}-ue{d % 2:02d}", data, groups, {"run": d // 2}))
    fields = [name for name in episodes[0].data if name not in ("t", "rsrp_dbm", "best_beam")]
    attrs = {
        "source": "synthetic" if channel else "synthetic-replay",
        "modalities": json.dumps(fields),
        "carrier_hz": carrier,
        "bandwidth_hz": bandwidth,
        "noise_figure_db": nf,
        "noise_power_dbm": noise,
        "tx_power_dbm": tx,
        "measurement_noise_db": 0.5,
        "frame_rate_hz": fps,
        "num_beams": num_beams,
        "num_antennas": num_antennas,
        "array_spacing_wavelengths": 0.5,
        "bs_position_m": bs,
        "bs_yaw_deg": 90.0,
        "geodetic_origin": np.array([ORIGIN.latitude_deg, ORIGIN.longitude_deg, ORIGIN.altitude_m]),
        "geodetic_heading_deg": ORIGIN.heading_deg,
        "scenario_yaml": "name: synthetic\nstreet: {length_m: 80.0, width_m: 13.0}\n",
    }
    constants = {"codebook/angles_deg": np.rad2deg(codebook.angles_rad), "codebook/weights": codebook.weights}
    return write_store(Path(path), attrs, constants, episodes)


def _sensors(
    names: Sequence[str],
    ue: np.ndarray,
    frames: int,
    camera_hw: tuple[int, int],
    lidar_points: int,
    radar_shape: tuple[int, int, int],
    drive: int,
) -> dict[str, np.ndarray]:
    """Patterns that differ per frame, so tests can tell frames (and frozen repeats) apart."""
    out: dict[str, np.ndarray] = {}
    index = np.arange(frames)
    if "camera" in names:
        h, w = camera_hw
        image = (index[:, None, None, None] * 7 + np.arange(w)[None, None, :, None] + 31 * drive) % 200 + 20
        out["camera"] = np.broadcast_to(image, (frames, h, w, 3)).astype(np.uint8)
    if "lidar" in names:
        count = lidar_points * 3 // 4
        points = np.zeros((frames, lidar_points, 4), np.float32)
        angle = np.linspace(0, 2 * np.pi, count, endpoint=False)
        points[:, :count, 0] = 10 * np.cos(angle) + index[:, None] * 0.1
        points[:, :count, 1] = 10 * np.sin(angle)
        points[:, :count, 2] = 1.0
        points[:, :count, 3] = 0.5
        out["lidar"] = points
        out["lidar_count"] = np.full(frames, count, np.int32)
        out["lidar_object"] = (
            np.where(np.arange(lidar_points) < count, -2, -1).astype(np.int16)[None].repeat(frames, 0)
        )
    if "radar" in names:
        rx, samples, chirps = radar_shape
        phase = np.arange(samples)[None, None, :, None] * 0.3 + index[:, None, None, None] * 0.05
        cube = np.exp(1j * phase) * np.ones((frames, rx, samples, chirps))
        out["radar"] = cube.astype(np.complex64)
    if "gps" in names:
        fix = local_to_geodetic(ORIGIN, ue[:, :2])
        valid = np.ones(frames, bool)
        out["gps"] = fix.astype(np.float64)
        out["gps_valid"] = valid
    return out

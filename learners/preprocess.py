"""Per-modality preprocessing: one raw frame (as stored, or as the environment observes it) → a small
float32 array a network reads.

- camera: area-resized RGB, scaled to roughly zero mean and unit spread, channels first (3, h, w);
- radar: two maps by FFT of the IF cube (twin.sensors.radar.range_doppler_angle), range–angle and
  range–velocity, in dB relative to the map's median, resized to one grid (2, r, a): the 2-channel
  radar input of BeamTransFuser; or, with `radar_view=cube`, the raw IF cube itself (2·Rx, S, C),
  real parts then imaginary parts, cut or zero-padded to `radar_cube_size` and scaled to unit RMS
  per frame (VI-PoE's RF input, whose own learnable window and DFTs replace the fixed FFT);
- LiDAR: a bird's-eye histogram of the points above the ground (1, rows, cols) or a spherical depth
  image (1, elevation, azimuth);
- GPS: latitude/longitude → metres around the base station by an equirectangular projection with
  the ellipsoid's radii at the origin (exact to millimetres over a street), as (x, y) / scale plus
  the sine and cosine of the UE's azimuth from boresight: the sine is the array angle's sine, which
  a geometric beam would use;
- channel: the uplink channel estimate, the store's `csi` (N antennas × S subcarriers, complex) →
  (2, N, S) where it has subcarriers, its narrowband `h` (N) → (2, N, 1) otherwise (or always, with
  `channel_field=h`), real then imaginary parts, in units of one global gain `channel_ref_db` (not
  per frame: the path gain tells LoS from non-LoS and near from far);
- RSRP: (RSRP − noise power) / scale, i.e. SNR in units of `rsrp_scale_db`.

The same functions serve training (frames read from the store) and the policy adapter (frames from
environment observations), so a deployed model sees what it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from twin.errors import ConfigError
from twin.modalities import RECORDED_SENSORS
from twin.scenario.config import RadarConfig
from twin.sensors.radar import range_doppler_angle
from twin.store.deployment import Deployment
from twin.validation import at_least, between, build, each_between, one_of, spec, to_dict

CHANNEL_INPUT = "channel"  # the base station's uplink channel estimate (not a recorded sensor)
SENSOR_INPUTS = (*RECORDED_SENSORS, CHANNEL_INPUT)  # model inputs computed from observations
GPS_FEATURES = 4  # x / scale, y / scale, sin(azimuth), cos(azimuth)
CAMERA_MEAN, CAMERA_STD = 0.5, 0.25
WGS84_A = 6_378_137.0
WGS84_E2 = 6.694_379_990_14e-3


def _four_floats(value: Any) -> str | None:
    if len(value) == 4 and value[0] < value[1] and value[2] < value[3]:
        return None
    return "[x_min, x_max, y_min, y_max] with min < max"


@dataclass(frozen=True)
class PreprocessConfig:
    camera_size: tuple[int, int] = spec((36, 64), check=each_between(4, 4096))  # height, width
    lidar_view: str = spec("bev", check=one_of("bev", "depth"))
    # Bird's-eye grid in metres relative to the LiDAR, local axes (x along the street, y across).
    bev_extent_m: tuple[float, float, float, float] = spec((-40.0, 40.0, 0.0, 24.0), check=_four_floats)
    bev_size: tuple[int, int] = spec((32, 64), check=each_between(4, 4096))  # rows (y), columns (x)
    bev_min_height_m: float = spec(0.3, check=between(-10, 10))  # above the ground: drops road returns
    depth_size: tuple[int, int] = spec((16, 128), check=each_between(4, 4096))  # elevation, azimuth bins
    radar_size: tuple[int, int] = spec((32, 32), check=each_between(4, 4096))  # range, angle/velocity
    radar_angle_bins: int = spec(32, check=between(4, 1024))
    radar_max_range_m: float = spec(40.0, check=at_least(1.0))
    radar_view: str = spec("maps", check=one_of("maps", "cube"))
    radar_cube_size: tuple[int, int] = spec((32, 32), check=each_between(1, 4096))  # samples, chirps
    gps_source: str = spec("gps", check=one_of("gps", "position"))  # position: the stored ue_pos
    gps_scale_m: float = spec(30.0, check=at_least(0.1))
    rsrp_scale_db: float = spec(20.0, check=at_least(0.1))
    channel_ref_db: float = spec(-80.0, check=between(-300, 100))  # |h|² of one unit (urban_street ≈ −80)
    # auto: the store's csi (N × S) where it has subcarriers, else h; h: the narrowband h always (the
    # README's comparison; offline only: the closed loop observes the store's csi where it has one).
    channel_field: str = spec("auto", check=one_of("auto", "h"))

    def to_json(self) -> dict[str, Any]:
        return to_dict(self)


def preprocess_config(
    data: dict[str, Any] | PreprocessConfig | None, prefix: str = "preprocess"
) -> PreprocessConfig:
    if isinstance(data, PreprocessConfig):
        return data
    return build(PreprocessConfig, dict(data or {}), prefix)


# --- camera -----------------------------------------------------------------------------------------


def camera_image(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 → (3, h, w) float32, area-resized and normalised."""
    frame = (
        np.array(frame) if not frame.flags.writeable else np.ascontiguousarray(frame)
    )  # torch wants writable
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    if tuple(image.shape[-2:]) != tuple(size):
        image = F.interpolate(image, size=tuple(size), mode="area")
    return ((image[0] / 255.0 - CAMERA_MEAN) / CAMERA_STD).numpy()


# --- radar ------------------------------------------------------------------------------------------


def radar_cube(raw: np.ndarray) -> np.ndarray:
    """A stored complex cube (Rx, S, C) or the environment's float (Rx, S, C, 2) → complex64."""
    if np.iscomplexobj(raw):
        return np.asarray(raw, np.complex64)
    raw = np.ascontiguousarray(raw, np.float32)
    return raw.view(np.complex64)[..., 0]


def _db_map(power: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    db = 10 * np.log10(np.maximum(power, 1e-30))
    db = (db - np.median(db)) / 10.0  # relative to the noise-and-clutter floor, in units of 10 dB
    tensor = torch.from_numpy(np.ascontiguousarray(db, np.float32))[None, None]
    return F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()


def radar_maps(raw: np.ndarray, radar: RadarConfig, config: PreprocessConfig) -> np.ndarray:
    """(2, r, a): range–angle and range–velocity power maps (non-coherent sums over the third axis)."""
    power, range_m, _, _ = range_doppler_angle(radar_cube(raw), radar, angle_bins=config.radar_angle_bins)
    keep = max(2, int(np.searchsorted(range_m, config.radar_max_range_m, side="right")))
    power = power[:keep]  # (range, doppler, angle)
    range_angle = _db_map(power.sum(axis=1), config.radar_size)
    range_velocity = _db_map(power.sum(axis=2), config.radar_size)
    return np.stack([range_angle, range_velocity]).astype(np.float32)


def radar_cube_input(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(2·Rx, S, C): the cube's first S samples and C chirps (zero-padded where it has fewer), real
    parts then imaginary parts, scaled to unit RMS (the frame's power is kept by no other input, but
    the target's position in the cube is: scale-free input, whatever the transmit power)."""
    cube = radar_cube(raw)[:, : size[0], : size[1]]
    out = np.zeros((2 * cube.shape[0], *size), np.float32)
    rx, s, c = cube.shape
    out[:rx, :s, :c], out[rx:, :s, :c] = cube.real, cube.imag
    rms = float(np.sqrt(np.mean(out**2)))
    return out / rms if rms > 0 else out


def _resampled(axis: np.ndarray, size: int) -> np.ndarray:
    """An axis after bilinear resizing to `size` cells (align_corners=False sampling points)."""
    where = (np.arange(size) + 0.5) * len(axis) / size - 0.5
    return np.interp(where, np.arange(len(axis)), axis)


def radar_axes(radar: RadarConfig, config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The maps' axes: range (m) of the rows, angle (deg) of the range–angle map's columns, radial
    velocity (m/s) of the range–velocity map's columns."""
    cube = np.zeros((radar.num_rx, radar.samples_per_chirp, radar.chirps_per_frame), np.complex64)
    _, range_m, velocity, angle = range_doppler_angle(cube, radar, angle_bins=config.radar_angle_bins)
    keep = max(2, int(np.searchsorted(range_m, config.radar_max_range_m, side="right")))
    rows, cols = config.radar_size
    return _resampled(range_m[:keep], rows), _resampled(angle, cols), _resampled(velocity, cols)


# --- LiDAR ------------------------------------------------------------------------------------------


def lidar_points(raw: np.ndarray) -> np.ndarray:
    """The real points of a padded (P, 4) frame (padding rows are all zero, NaN read as zero)."""
    points = np.nan_to_num(np.asarray(raw, np.float32))
    return points[np.any(points != 0, axis=1)]


def lidar_bev(raw: np.ndarray, lidar_height_m: float, config: PreprocessConfig) -> np.ndarray:
    """(1, rows, cols): log(1 + count) of points above `bev_min_height_m` per cell, scaled to ~[0, 1]."""
    points = lidar_points(raw)
    above = points[points[:, 2] + lidar_height_m > config.bev_min_height_m]
    x_min, x_max, y_min, y_max = config.bev_extent_m
    rows, cols = config.bev_size
    counts, _, _ = np.histogram2d(
        above[:, 1], above[:, 0], bins=(rows, cols), range=((y_min, y_max), (x_min, x_max))
    )
    return (np.log1p(counts) / math.log1p(64.0)).astype(np.float32)[None]


def lidar_depth(raw: np.ndarray, lidar: dict[str, Any], config: PreprocessConfig) -> np.ndarray:
    """(1, elevation, azimuth): 1 − range / max range of the nearest return per cell (0: no return)."""
    points = lidar_points(raw)
    rows, cols = config.depth_size
    low, high = (math.radians(a) for a in lidar.get("vertical_fov_deg", (-22.5, 22.5)))
    max_range = float(lidar.get("max_range_m", 120.0))
    out = np.zeros((rows, cols), np.float32)
    if len(points):
        horizontal = np.hypot(points[:, 0], points[:, 1])
        distance = np.sqrt(horizontal**2 + points[:, 2] ** 2)
        elevation = np.arctan2(points[:, 2], horizontal)
        azimuth = np.arctan2(points[:, 1], points[:, 0])
        row = np.clip(((high - elevation) / max(high - low, 1e-9) * rows).astype(int), 0, rows - 1)
        col = np.clip(((azimuth + math.pi) / (2 * math.pi) * cols).astype(int), 0, cols - 1)
        value = np.clip(1 - distance / max_range, 0, 1).astype(np.float32)
        np.maximum.at(out, (row, col), value)  # nearest return wins
    return out[None]


# --- GPS --------------------------------------------------------------------------------------------


def equirectangular(latlon: np.ndarray, origin: tuple[float, float, float, float]) -> np.ndarray:
    """(..., 2) latitude/longitude degrees → (..., 2) local metres (x along `heading_deg`, y left)."""
    lat0, lon0, _, heading = origin
    s = math.sin(math.radians(lat0))
    w = math.sqrt(1 - WGS84_E2 * s * s)
    meridian, normal = WGS84_A * (1 - WGS84_E2) / w**3, WGS84_A / w
    latlon = np.asarray(latlon, np.float64)
    north = np.radians(latlon[..., 0] - lat0) * meridian
    east = np.radians(latlon[..., 1] - lon0) * normal * math.cos(math.radians(lat0))
    b = math.radians(heading)
    return np.stack([east * math.sin(b) + north * math.cos(b), -east * math.cos(b) + north * math.sin(b)], -1)


def position_features(xy: np.ndarray, deployment: Deployment, config: PreprocessConfig) -> np.ndarray:
    """(2,) local metres → (4,): offset from the base station / scale, sin and cos of its azimuth
    from boresight (the sine equals the sine of the array angle in the horizontal plane)."""
    bs = deployment.bs_position_m or (0.0, 0.0, 0.0)
    dx, dy = float(xy[0]) - bs[0], float(xy[1]) - bs[1]
    azimuth = math.atan2(dy, dx) - math.radians(deployment.bs_yaw_deg or 0.0)
    scale = config.gps_scale_m
    return np.array([dx / scale, dy / scale, math.sin(azimuth), math.cos(azimuth)], np.float32)


def gps_features(raw: np.ndarray, deployment: Deployment, config: PreprocessConfig) -> np.ndarray:
    """A GPS fix (lat, lon) or, with gps_source=position, a local position (x, y, z) → (4,)."""
    raw = np.asarray(raw, np.float64)
    if not np.isfinite(raw).all():
        return np.zeros(GPS_FEATURES, np.float32)
    if config.gps_source == "position":
        return position_features(raw[:2], deployment, config)
    if deployment.geodetic_origin is None:
        raise ConfigError(
            "preprocess.gps_source = 'gps': the store has no geodetic_origin to map fixes to metres"
        )
    return position_features(equirectangular(raw[:2], deployment.geodetic_origin), deployment, config)


def features_to_metres(features: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """(..., 4) GPS features → (..., 2) metres from the base station (inverse of the scaling)."""
    return features[..., :2] * config.gps_scale_m


# --- RSRP -------------------------------------------------------------------------------------------


def rsrp_normalised(
    rsrp_dbm: np.ndarray | float, noise_power_dbm: float, config: PreprocessConfig
) -> np.ndarray:
    """SNR in units of rsrp_scale_db; floored at −1 (−scale dB) so 'no signal' stays finite."""
    snr = (np.asarray(rsrp_dbm, np.float64) - noise_power_dbm) / config.rsrp_scale_db
    return np.maximum(np.nan_to_num(snr, nan=-1.0, neginf=-1.0), -1.0).astype(np.float32)


# --- one entry point per input ---------------------------------------------------------------------


def channel_input(raw: np.ndarray, ref_db: float) -> np.ndarray:
    """A real/imaginary observation (N, S, 2) or (N, 2) — or complex (N, S) / (N,) as stored — →
    (2, N, S) or (2, N, 1), in units of 10^(ref_db/20)."""
    values = np.asarray(raw)
    if np.iscomplexobj(values):
        values = np.stack([values.real, values.imag], -1)
    if values.ndim == 2:  # narrowband: one "subcarrier"
        values = values[:, None, :]
    scale = 10 ** (-ref_db / 20)
    return (np.moveaxis(values, -1, 0) * scale).astype(np.float32)


def channel_shape(deployment: Deployment, narrowband: bool = False) -> tuple[int, int, int]:
    """The channel input of a store: (2, N, S) over its S subcarriers (its csi), (2, N, 1) for the
    narrowband h (a store without subcarriers, or `narrowband`)."""
    subcarriers = 0 if narrowband else deployment.num_subcarriers
    return (2, deployment.num_antennas, max(subcarriers, 1))


def check_channel_fits(
    trained: Sequence[int] | None, given: Sequence[int] | None, who: str, store: str | Path
) -> None:
    """One error line when a model trained on one channel shape meets a store that gives another
    (the closed loop serves a store's csi where it has one); None: no channel input on that side."""
    if trained is None or given is None or tuple(trained) == tuple(given):
        return
    raise ConfigError(
        f"{who}: trained on channel inputs {tuple(trained)}, but store {store} gives {tuple(given)} "
        "((2, N, S): csi over S subcarriers; (2, N, 1): the narrowband h); train it on a store of that kind"
    )


def input_source(name: str, config: PreprocessConfig) -> str:
    """The observation modality an input is computed from (GPS may come from the ideal position)."""
    if name == "gps":
        return "gps" if config.gps_source == "gps" else "position"
    return name


class Preprocessor:
    """Raw frames of one deployment → network inputs, for the inputs a model reads."""

    def __init__(self, config: PreprocessConfig, deployment: Deployment):
        self.config = config
        self.deployment = deployment
        sensors = deployment.sensors
        self._radar = build(RadarConfig, sensors["radar"], "sensors.radar") if "radar" in sensors else None
        self._lidar = dict(sensors.get("lidar", {}))
        lidar_position = deployment.lidar_position_m or tuple(self._lidar.get("position_m", (0.0, 0.0, 0.0)))
        self._lidar_height = float(lidar_position[2])

    def _radar_config(self) -> RadarConfig:
        if self._radar is None:
            raise ConfigError("radar input: the store has no radar configuration (attribute 'sensors')")
        return self._radar

    def source(self, name: str) -> str:
        return input_source(name, self.config)

    def shape(self, name: str) -> tuple[int, ...]:
        c = self.config
        if name == "camera":
            return (3, *c.camera_size)
        if name == "radar":
            if c.radar_view == "cube":
                return (2 * self._radar_config().num_rx, *c.radar_cube_size)
            return (2, *c.radar_size)
        if name == "lidar":
            return (1, *(c.bev_size if c.lidar_view == "bev" else c.depth_size))
        if name == "gps":
            return (GPS_FEATURES,)
        if name == CHANNEL_INPUT:
            return channel_shape(self.deployment, narrowband=c.channel_field == "h")
        raise ConfigError(f"unknown model input {name!r}; sensor inputs: {', '.join(SENSOR_INPUTS)}")

    def frame(self, name: str, raw: np.ndarray) -> np.ndarray:
        """One raw frame → the input array of `shape(name)`."""
        c = self.config
        if name == "camera":
            return camera_image(raw, c.camera_size)
        if name == "radar":
            if c.radar_view == "cube":
                return radar_cube_input(raw, c.radar_cube_size)
            return radar_maps(raw, self._radar_config(), c)
        if name == "lidar":
            if c.lidar_view == "bev":
                return lidar_bev(raw, self._lidar_height, c)
            return lidar_depth(raw, self._lidar, c)
        if name == "gps":
            return gps_features(raw, self.deployment, c)
        if name == CHANNEL_INPUT:
            channel = channel_input(raw, c.channel_ref_db)
            if channel.shape != self.shape(name):
                raise ConfigError(
                    f"channel input: an observation of shape {channel.shape}, the model reads "
                    f"{self.shape(name)} (csi (2, N, S) or the narrowband h (2, N, 1))"
                )
            return channel
        raise ConfigError(f"unknown model input {name!r}; sensor inputs: {', '.join(SENSOR_INPUTS)}")

    def frames(self, name: str, raw: np.ndarray) -> np.ndarray:
        """(T, ...) raw frames → (T, *shape(name)) float32."""
        out = np.empty((len(raw), *self.shape(name)), np.float32)
        for t in range(len(raw)):
            out[t] = self.frame(name, raw[t])
        return out

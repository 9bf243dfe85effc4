"""Each modality's preprocessing against geometry worked out by hand or by the twin's own conventions;
the channel input from a store's csi (2, N, S) or its narrowband h (2, N, 1)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from learners.data import load_frames
from learners.preprocess import (
    CAMERA_MEAN,
    CAMERA_STD,
    PreprocessConfig,
    Preprocessor,
    camera_image,
    channel_input,
    channel_shape,
    equirectangular,
    gps_features,
    lidar_bev,
    lidar_depth,
    preprocess_config,
    radar_axes,
    radar_maps,
    rsrp_normalised,
)
from twin.errors import ConfigError
from twin.radio.codebook import UniformLinearArray
from twin.scenario.config import GeodeticOrigin, RadarConfig
from twin.scenario.geodetic import geodetic_to_local, local_to_geodetic
from twin.sensors.radar import SPEED_OF_LIGHT, carrier_hz
from twin.store import TwinStore
from twin.store.deployment import Deployment

ORIGIN = (48.137, 11.575, 520.0, 70.0)  # lat, lon, alt, heading of local +x


def deployment(**changes: object) -> Deployment:
    base = {"num_beams": 64, "angles_deg": tuple(np.linspace(-45, 45, 64)), "frame_rate_hz": 10.0,
            "noise_power_dbm": -87.0, "bs_position_m": (0.0, -9.0, 2.5), "bs_yaw_deg": 90.0,
            "geodetic_origin": ORIGIN, "lidar_position_m": (0.0, -9.0, 3.2)}  # fmt: skip
    return Deployment(**{**base, **changes})


def test_equirectangular_matches_the_twins_tangent_plane_to_millimetres() -> None:
    origin = GeodeticOrigin(*ORIGIN)
    local = np.random.default_rng(0).uniform(-200, 200, (100, 2))
    latlon = local_to_geodetic(origin, local)
    np.testing.assert_allclose(equirectangular(latlon, ORIGIN), local, atol=1e-3)
    np.testing.assert_allclose(equirectangular(latlon, ORIGIN), geodetic_to_local(origin, latlon), atol=1e-3)


def test_gps_features_are_metres_around_the_base_station_and_the_array_angle() -> None:
    config = PreprocessConfig(gps_scale_m=10.0)
    d = deployment()
    local = np.array([-10.0, 1.0])  # 10 m left of the base station, 10 m in front of it
    features = gps_features(local_to_geodetic(GeodeticOrigin(*ORIGIN), local), d, config)
    np.testing.assert_allclose(features, [-1.0, 1.0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-4)
    # The sine is the twin's array-angle sine (horizontal plane) for the same base-station pose.
    array = UniformLinearArray(16, 0.5, np.array(d.bs_position_m), math.radians(90.0))
    direction = np.array([-10.0, 10.0, 0.0]) / math.hypot(10, 10)
    assert features[2] == pytest.approx(float(array.sin_angle(direction)), abs=1e-4)
    np.testing.assert_array_equal(gps_features(np.array([np.nan, np.nan]), d, config), np.zeros(4))
    position = gps_features(
        np.array([-10.0, 1.0, 1.5]), d, PreprocessConfig(gps_scale_m=10.0, gps_source="position")
    )
    np.testing.assert_allclose(position, features, atol=1e-4)
    with pytest.raises(ConfigError, match="no geodetic_origin"):
        gps_features(np.array([48.1, 11.5]), deployment(geodetic_origin=None), config)


def _target_cube(radar: RadarConfig, range_m: float, angle_deg: float, velocity_mps: float) -> np.ndarray:
    """One point target in the twin's IF conventions (beat = slope·τ, Doppler 2v/λ, RX phase −d·sinθ)."""
    beat = radar.slope_hz_per_s * 2 * range_m / SPEED_OF_LIGHT
    doppler = 2 * velocity_mps / (SPEED_OF_LIGHT / carrier_hz(radar))
    offsets = (np.arange(radar.num_rx) - (radar.num_rx - 1) / 2) * radar.rx_spacing_wavelengths
    rx = np.exp(-2j * np.pi * math.sin(math.radians(angle_deg)) * offsets)
    fast = np.exp(2j * np.pi * beat * np.arange(radar.samples_per_chirp) / radar.sample_rate_hz)
    slow = np.exp(2j * np.pi * doppler * np.arange(radar.chirps_per_frame) * radar.chirp_period_s)
    return (rx[:, None, None] * fast[None, :, None] * slow[None, None, :]).astype(np.complex64)


def test_radar_maps_put_a_target_at_its_range_angle_and_velocity() -> None:
    radar = RadarConfig(samples_per_chirp=64, chirps_per_frame=32)
    config = PreprocessConfig(radar_size=(32, 32))
    cube = _target_cube(radar, range_m=15.0, angle_deg=20.0, velocity_mps=4.0)
    maps = radar_maps(cube, radar, config)
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    rows, angles, velocities = radar_axes(radar, config)
    row, col = np.unravel_index(np.argmax(maps[0]), maps[0].shape)
    assert rows[row] == pytest.approx(15.0, abs=1.6)  # one range cell (0.78 m) after resizing
    assert angles[col] == pytest.approx(20.0, abs=6.0)  # four RX: a coarse angle
    row, col = np.unravel_index(np.argmax(maps[1]), maps[1].shape)
    assert rows[row] == pytest.approx(15.0, abs=1.6)
    assert velocities[col] == pytest.approx(4.0, abs=1.2)
    # The environment hands radar out as float (..., 2) real/imaginary parts: same maps.
    as_observed = cube.view(np.float32).reshape(*cube.shape, 2)
    np.testing.assert_array_equal(radar_maps(as_observed, radar, config), maps)


def test_lidar_bev_counts_points_above_the_ground_in_their_cell() -> None:
    config = PreprocessConfig(bev_extent_m=(-10, 10, 0, 20), bev_size=(4, 4), bev_min_height_m=0.3)
    points = np.zeros((8, 4), np.float32)  # padded to 8 rows
    points[0] = [-7.5, 2.5, -2.0, 1]  # 1.2 m above ground (LiDAR at 3.2 m): row 0, col 0
    points[1] = [-7.4, 2.6, -2.1, 1]
    points[2] = [7.5, 17.5, -1.0, 1]  # row 3, col 3
    points[3] = [7.5, 17.5, -3.15, 1]  # road return (0.05 m above ground): dropped
    bev = lidar_bev(points, 3.2, config)
    assert bev.shape == (1, 4, 4)
    expected = np.zeros((4, 4))
    expected[0, 0], expected[3, 3] = math.log1p(2) / math.log1p(64), math.log1p(1) / math.log1p(64)
    np.testing.assert_allclose(bev[0], expected, rtol=1e-6)


def test_lidar_depth_image_keeps_the_nearest_return_per_direction() -> None:
    config = PreprocessConfig(depth_size=(4, 8))
    lidar = {"vertical_fov_deg": [-20.0, 20.0], "max_range_m": 100.0}
    points = np.array([[10.0, 0.0, 0.5, 1], [20.0, 0.0, 1.0, 1], [0.0, 0.0, 0.0, 0.0]], np.float32)
    depth = lidar_depth(points, lidar, config)
    assert depth.shape == (1, 4, 8)
    # Both points lie at elevation ~2.9° (row 1 of 4 over +20..-20°) and azimuth 0 (column 4 of 8).
    assert depth[0, 1, 4] == pytest.approx(1 - math.sqrt(100.25) / 100)
    assert np.count_nonzero(depth) == 1


def test_camera_is_area_resized_and_normalised() -> None:
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[:2, :2] = 255  # top-left quarter white
    image = camera_image(frame, (2, 2))
    assert image.shape == (3, 2, 2)
    white, black = (1 - CAMERA_MEAN) / CAMERA_STD, (0 - CAMERA_MEAN) / CAMERA_STD
    np.testing.assert_allclose(image[:, 0, 0], white, rtol=1e-6)
    np.testing.assert_allclose(image[:, 1, 1], black, rtol=1e-6)
    assert camera_image(frame, (4, 4)).shape == (3, 4, 4)


def test_rsrp_is_snr_in_units_of_the_scale_and_finite() -> None:
    config = PreprocessConfig(rsrp_scale_db=20.0)
    np.testing.assert_allclose(
        rsrp_normalised(np.array([-87.0, -47.0, -np.inf, np.nan]), -87.0, config), [0, 2, -1, -1]
    )


def test_preprocessor_shapes_and_sources() -> None:
    preprocessor = Preprocessor(PreprocessConfig(lidar_view="depth", depth_size=(8, 16)), deployment())
    assert preprocessor.shape("lidar") == (1, 8, 16)
    assert preprocessor.shape("camera") == (3, 36, 64)
    assert preprocessor.source("gps") == "gps"
    assert Preprocessor(PreprocessConfig(gps_source="position"), deployment()).source("gps") == "position"
    with pytest.raises(ConfigError, match="no radar configuration"):
        preprocessor.frame("radar", np.zeros((4, 8, 8), np.complex64))


def test_bad_preprocessing_settings_fail_in_one_line() -> None:
    with pytest.raises(
        ConfigError, match=r"^preprocess\.lidar_view = 'voxels': expected one of 'bev', 'depth'$"
    ):
        preprocess_config({"lidar_view": "voxels"})
    with pytest.raises(ConfigError, match=r"^preprocess\.bev_extent_m = \[10, -10, 0, 5\]: expected"):
        preprocess_config({"bev_extent_m": [10, -10, 0, 5]})
    with pytest.raises(ConfigError, match=r"^preprocess\.camera_sizes: unknown key"):
        preprocess_config({"camera_sizes": [1, 2]})


def test_the_channel_input_keeps_the_subcarrier_axis() -> None:
    rng = np.random.default_rng(4)
    csi = (rng.standard_normal((16, 8)) + 1j * rng.standard_normal((16, 8))).astype(np.complex64)
    observed = csi.view(np.float32).reshape(16, 8, 2)  # as the environment serves it
    x = channel_input(observed, -20.0)  # one unit = 10^(-20/20) = 0.1
    assert x.shape == (2, 16, 8)
    np.testing.assert_allclose(x[0] * 0.1, csi.real, rtol=1e-6)
    np.testing.assert_allclose(x[1] * 0.1, csi.imag, rtol=1e-6)
    np.testing.assert_array_equal(channel_input(csi, -20.0), x)  # stored complex: the same
    h = np.ascontiguousarray(csi[:, 3])
    narrow = channel_input(h.view(np.float32).reshape(16, 2), -20.0)
    assert narrow.shape == (2, 16, 1) and np.array_equal(narrow[..., 0], x[..., 3])
    assert channel_shape(deployment(num_antennas=16, num_subcarriers=8)) == (2, 16, 8)
    assert channel_shape(deployment(num_antennas=16)) == (2, 16, 1)
    assert channel_shape(deployment(num_antennas=16, num_subcarriers=8), narrowband=True) == (2, 16, 1)
    wideband = Preprocessor(PreprocessConfig(), deployment(num_antennas=16, num_subcarriers=8))
    with pytest.raises(ConfigError, match=r"^channel input: an observation of shape \(2, 16, 1\), the model"):
        wideband.frame("channel", h)


def test_a_store_with_subcarriers_gives_2x16x8_and_a_narrowband_one_2x16x1(
    tiny_csi_store: Path, tiny_store: Path
) -> None:
    frames = load_frames(tiny_csi_store, ("channel",), PreprocessConfig(channel_ref_db=0.0))
    assert frames.shapes["channel"] == (2, 16, 8) and frames.deployment.num_subcarriers == 8
    with TwinStore(tiny_csi_store) as store:
        episode = store.episode(frames.drives[0].id, ["csi", "h"])
    x = frames.drives[0].inputs["channel"]
    assert x.shape == (len(episode["csi"]), 2, 16, 8)
    np.testing.assert_allclose(x[:, 0] + 1j * x[:, 1], episode["csi"], rtol=1e-6)
    h_only = PreprocessConfig(channel_ref_db=0.0, channel_field="h")
    narrow = load_frames(tiny_csi_store, ("channel",), h_only)
    assert narrow.shapes["channel"] == (2, 16, 1)
    y = narrow.drives[0].inputs["channel"][..., 0]
    np.testing.assert_allclose(y[:, 0] + 1j * y[:, 1], episode["h"], rtol=1e-6)
    plain = load_frames(tiny_store, ("channel",), PreprocessConfig())
    assert plain.shapes["channel"] == (2, 16, 1) and plain.deployment.num_subcarriers == 0
    assert plain.drives[0].inputs["channel"].shape[1:] == (2, 16, 1)

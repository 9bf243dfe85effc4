"""GPS: geodetic round trip, noise, update rate and outages."""

from __future__ import annotations

import numpy as np
import pytest

from twin.scenario.config import GeodeticOrigin, GpsConfig
from twin.scenario.geodetic import geodetic_to_local, local_to_geodetic
from twin.sensors.gps import fix_schedule, gps_track

ORIGIN = GeodeticOrigin(latitude_deg=33.4193, longitude_deg=-111.9347, altitude_m=360.0, heading_deg=0.0)


def test_round_trip_and_known_distances() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(-200, 200, (100, 2))
    np.testing.assert_allclose(geodetic_to_local(ORIGIN, local_to_geodetic(ORIGIN, xy)), xy, atol=1e-6)
    # heading 0: local +x points north; one arc-second of latitude is about 30.8 m here.
    north = local_to_geodetic(ORIGIN, np.array([30.8, 0.0]))
    assert (north[0] - ORIGIN.latitude_deg) * 3600 == pytest.approx(1.0, rel=0.01)
    assert north[1] == pytest.approx(ORIGIN.longitude_deg)
    east = GeodeticOrigin(0.0, 0.0, 0.0, heading_deg=90.0)
    lat, lon = local_to_geodetic(east, np.array([111_319.49, 0.0]))
    assert lon == pytest.approx(1.0, rel=1e-6) and lat == pytest.approx(0.0, abs=1e-9)


def test_reported_positions_carry_the_configured_noise() -> None:
    config = GpsConfig(noise_m=0.5, update_rate_hz=10.0)
    positions = np.zeros((20_000, 3))
    track, valid = gps_track(config, ORIGIN, positions, 10.0, np.random.default_rng(1))
    assert valid.all()
    error = geodetic_to_local(ORIGIN, track)
    assert np.std(error, axis=0) == pytest.approx([0.5, 0.5], rel=0.05)
    assert np.abs(error.mean(axis=0)).max() < 0.02


def test_update_rate_holds_the_last_fix_between_updates() -> None:
    config = GpsConfig(noise_m=0.0, update_rate_hz=2.5)
    positions = np.stack([np.arange(12.0), np.zeros(12), np.zeros(12)], -1)
    track, valid = gps_track(config, ORIGIN, positions, 10.0, np.random.default_rng(0))
    assert np.flatnonzero(valid).tolist() == [0, 4, 8]
    x = geodetic_to_local(ORIGIN, track)[:, 0]
    np.testing.assert_allclose(x, [0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8], atol=1e-6)


def test_outages_occur_at_the_configured_rate() -> None:
    config = GpsConfig(update_rate_hz=10.0, outage_rate_per_s=0.2, outage_duration_s=(1.0, 3.0))
    valid = fix_schedule(config, 100_000, 10.0, np.random.default_rng(3))
    # Outages start as a Poisson process (0.2/s) and last 2 s on average: covered share 1 - e^{-0.4}.
    assert 1 - valid.mean() == pytest.approx(1 - np.exp(-0.4), abs=0.02)
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[1], valid.astype(int), [1]]))))[::2]
    assert runs.min() >= 10  # no outage shorter than the 1 s minimum
    calm = fix_schedule(GpsConfig(update_rate_hz=10.0), 1000, 10.0, np.random.default_rng(3))
    assert calm.all()


def test_the_drifting_bias_has_its_std_and_correlation_time() -> None:
    from twin.sensors.gps import drifting_bias

    rate, std, tau = 10.0, 0.05, 3.0
    bias = drifting_bias(200_000, rate, std, tau, np.random.default_rng(1))
    assert bias.std(axis=0) == pytest.approx([std, std], rel=0.05)
    lag = round(tau * rate)  # exp(-1) after one correlation time
    correlation = np.mean(bias[lag:] * bias[:-lag], axis=0) / bias.var(axis=0)
    np.testing.assert_allclose(correlation, np.exp(-1), atol=0.03)


def test_a_gps_without_bias_keeps_its_draws() -> None:
    positions = np.zeros((50, 3))
    plain = gps_track(GpsConfig(noise_m=0.5), ORIGIN, positions, 10.0, np.random.default_rng(3))
    biased = gps_track(
        GpsConfig(noise_m=0.5, bias_std_m=2.0), ORIGIN, positions, 10.0, np.random.default_rng(3)
    )
    assert np.array_equal(plain[1], biased[1])  # the same fixes arrive
    offset = geodetic_to_local(ORIGIN, biased[0]) - geodetic_to_local(ORIGIN, plain[0])
    assert np.abs(offset).max() > 0.5 and np.abs(np.diff(offset, axis=0)).max() < 0.5  # slow, not jitter

"""Codebook and array physics against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from twin.radio.codebook import (
    Codebook,
    UniformLinearArray,
    measure_rsrp_dbm,
    noise_power_dbm,
    rsrp_noiseless_dbm,
)


def _array(n: int = 16, yaw_deg: float = 90.0) -> UniformLinearArray:
    return UniformLinearArray(n, 0.5, np.zeros(3), np.deg2rad(yaw_deg))


def test_beams_are_unit_norm_and_in_angular_order() -> None:
    cb = Codebook.steering(_array(), 64, -45, 45)
    np.testing.assert_allclose(np.linalg.norm(cb.weights, axis=1), 1.0, atol=1e-12)
    assert np.all(np.diff(cb.angles_rad) > 0)
    np.testing.assert_allclose(np.rad2deg(cb.angles_rad[[0, -1]]), [-45, 45])


@pytest.mark.parametrize("n", [4, 16, 32])
def test_array_gain_is_n_on_the_steering_direction(n: int) -> None:
    array = _array(n)
    cb = Codebook.steering(array, 64, -45, 45)
    h = array.steering(np.sin(cb.angles_rad))  # unit-gain element response towards each beam
    gains = cb.beamforming_gain(h)  # (K, K)
    np.testing.assert_allclose(np.diag(gains), n, rtol=1e-12)
    assert np.all(gains.argmax(axis=1) == np.arange(64))


def test_steering_vectors_on_the_dft_grid_are_orthogonal() -> None:
    n = 16
    array = _array(n)
    sin_grid = 2 * (np.arange(n) - n // 2) / n  # half-wavelength ULA: spatial frequencies 2m/N
    a = array.steering(sin_grid)
    np.testing.assert_allclose(a.conj() @ a.T, n * np.eye(n), atol=1e-9)


def test_array_axis_and_direction_conventions() -> None:
    array = _array(yaw_deg=90.0)
    np.testing.assert_allclose(array.boresight, [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(array.axis, [-1, 0, 0], atol=1e-12)
    u = array.direction(np.deg2rad(30.0))
    np.testing.assert_allclose(array.sin_angle(u), 0.5, atol=1e-12)
    # Elevation shrinks the angle seen by the horizontal array.
    u = array.direction(np.deg2rad(30.0), np.deg2rad(60.0))
    np.testing.assert_allclose(array.sin_angle(u), 0.25, atol=1e-12)


def test_noise_power_closed_form() -> None:
    assert noise_power_dbm(100e6, 7.0) == pytest.approx(-174 + 80 + 7)
    assert noise_power_dbm(1.0, 0.0) == pytest.approx(-174.0)


def test_rsrp_and_measurement_model() -> None:
    array = _array()
    cb = Codebook.steering(array, 64, -45, 45)
    h = 1e-5 * array.steering(np.sin(cb.angles_rad[10]))
    true = rsrp_noiseless_dbm(h, cb, 20.0)
    assert true[10] == pytest.approx(20 + 20 * np.log10(1e-5) + 10 * np.log10(16))
    rng = np.random.default_rng(0)
    noiseless = measure_rsrp_dbm(true, -87.0, 0.0, rng)
    np.testing.assert_allclose(noiseless, 10 * np.log10(10 ** (true / 10) + 10 ** (-8.7)))
    noisy = np.stack([measure_rsrp_dbm(true, -87.0, 2.0, rng) for _ in range(4000)])
    assert np.std(noisy - noiseless, axis=0).mean() == pytest.approx(2.0, rel=0.05)

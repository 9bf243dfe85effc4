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


# --- the real array's element errors -------------------------------------------------------------


def _configured(gain_db: float, phase_deg: float, seed: int = 0) -> UniformLinearArray:
    from twin.scenario.config import ArrayConfig, BaseStationConfig

    array = ArrayConfig(num_elements=16, gain_error_db=gain_db, phase_error_deg=phase_deg, error_seed=seed)
    return UniformLinearArray.from_config(BaseStationConfig(array=array))


def test_zero_errors_are_the_ideal_array_and_codebook() -> None:
    from twin.scenario.config import BaseStationConfig

    ideal = _configured(0.0, 0.0)
    assert ideal.element_gain is None
    sin = np.sin(np.deg2rad(np.linspace(-80, 80, 41)))
    np.testing.assert_array_equal(ideal.response(sin), ideal.steering(sin))
    reference = Codebook.steering(_array(16), 64, -45, 45)
    built = Codebook.from_config(BaseStationConfig())
    np.testing.assert_array_equal(built.weights, reference.weights)
    # Errors change what the elements receive, never the codebook the base station steers with.
    errors = _configured(1.5, 35.0)
    assert errors.element_gain is not None and np.all(errors.element_gain != 1)
    np.testing.assert_array_equal(errors.steering(sin), ideal.steering(sin))


def test_with_errors_the_peak_stays_on_the_steering_angle() -> None:
    codebook = Codebook.steering(_array(16), 64, -45, 45)
    for seed in range(5):
        array = _configured(1.0, 20.0, seed)
        for k in range(4, 60, 5):  # a plane wave from beam k's direction (free space)
            h = array.response(np.sin(codebook.angles_rad[k]))
            assert abs(int(np.argmax(codebook.beamforming_gain(h))) - k) <= 1


def test_the_mean_pattern_with_errors_follows_the_closed_form() -> None:
    """E|Σ w_n* a_n ε_n|² = |E ε|² |AF|² + Var(ε) Σ|w_n|²: the errors fill the nulls with a floor of
    Var(ε) below the peak's N |E ε|² (sidelobes about 10-17 dB down for DeepSense-like errors)."""
    gain_db, phase_deg = 1.5, 35.0
    ideal = _array(16)
    w = ideal.steering(np.sin(0.0)) / 4.0  # the boresight beam
    sin = np.sin(np.deg2rad(np.linspace(-60, 60, 121)))
    patterns = np.array(
        [np.abs(_configured(gain_db, phase_deg, s).response(sin) @ w.conj()) ** 2 for s in range(3000)]
    )
    sigma_ln, sigma_phase = gain_db * np.log(10) / 20, np.deg2rad(phase_deg)
    mean = np.exp(sigma_ln**2 / 2) * np.exp(-(sigma_phase**2) / 2)  # E ε (log-normal x phase)
    power = np.exp(2 * sigma_ln**2)  # E |ε|²
    expected = mean**2 * np.abs(ideal.steering(sin) @ w.conj()) ** 2 + (power - mean**2)
    np.testing.assert_allclose(patterns.mean(axis=0), expected, rtol=0.06, atol=0.004)
    floor_db = 10 * np.log10((power - mean**2) / (16 * mean**2))
    assert -17.0 < floor_db < -13.0  # what the real scenario-17 sweeps show

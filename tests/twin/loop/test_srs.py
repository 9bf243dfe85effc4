"""The uplink channel estimate (twin.loop.srs): noise of the requested statistics, the link budget's
SNR, deterministic per drive and seed, and served by the environment in place of the noiseless h; on a
store with subcarriers over the csi, at the same SNR on every subcarrier and independent across them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from twin.errors import ConfigError
from twin.loop.env import BeamSelectionEnv
from twin.loop.srs import check_srs_snr, noise_variance, srs_estimate
from twin.store import TwinStore


def _h(frames: int = 4000, elements: int = 16) -> np.ndarray:
    rng = np.random.default_rng(1)
    scale = 10 ** rng.uniform(-6, -4, (frames, 1))  # frames of very different power
    shape = (frames, elements)
    return (scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))).astype(np.complex64)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_a_fixed_snr_is_met_per_frame_with_circular_complex_noise(snr_db: float) -> None:
    h = _h()
    noise = srs_estimate(h, snr_db, 20.0, -90.0, np.random.default_rng(0)).astype(np.complex128) - h
    power = np.mean(np.abs(h) ** 2, axis=1)
    ratio = np.abs(noise) ** 2 / power[:, None]  # per-frame normalised: exponential of mean 10^(-SNR/10)
    assert 10 * np.log10(ratio.mean()) == pytest.approx(-snr_db, abs=0.05)
    normalised = noise / np.sqrt(power[:, None])
    assert np.var(normalised.real) == pytest.approx(np.var(normalised.imag), rel=0.03)  # circular
    assert abs(np.mean(normalised.real * normalised.imag)) < 0.01 * np.var(normalised.real)
    assert abs(np.mean(normalised)) < 0.01 * np.std(normalised)  # zero mean


def test_the_link_budget_noise_is_thermal_noise_over_the_transmit_power() -> None:
    h = _h(200)
    assert np.allclose(noise_variance(h, None, 20.0, -90.0), 1e-11)  # -90 dBm - 20 dBm = -110 dB
    noise = srs_estimate(h, None, 20.0, -90.0, np.random.default_rng(0)).astype(np.complex128) - h
    assert 10 * np.log10(np.mean(np.abs(noise) ** 2)) == pytest.approx(-110.0, abs=0.1)


def test_inf_is_the_noiseless_channel_and_bad_values_are_one_line_errors() -> None:
    h = _h(10)
    assert np.array_equal(srs_estimate(h, math.inf, 20.0, -90.0, np.random.default_rng(0)), h)
    assert check_srs_snr(None) is None and check_srs_snr(20) == 20.0
    for bad in ("20", True, float("nan"), -60.0):
        with pytest.raises(ConfigError, match=r"^srs_snr_db = .*: expected null \(the link budget\)"):
            check_srs_snr(bad)  # type: ignore[arg-type]


def _channel(env: BeamSelectionEnv, episode: int, fault_seed: int) -> np.ndarray:
    obs, _ = env.reset(options={"episode": episode, "fault_seed": fault_seed})
    return obs["channel"]


def test_the_environment_serves_the_estimate_deterministic_per_drive_and_seed(tiny_store: Path) -> None:
    noisy = BeamSelectionEnv(tiny_store, modalities=["channel"], srs_snr_db=10.0)
    exact = BeamSelectionEnv(tiny_store, modalities=["channel"], srs_snr_db=math.inf)
    truth = _channel(exact, 0, 3)
    assert np.array_equal(truth, exact.drive.sensors["channel"][0])
    first = _channel(noisy, 0, 3)
    assert np.array_equal(first, _channel(noisy, 0, 3))  # same drive and seed: same estimate
    assert not np.array_equal(first, _channel(noisy, 0, 4))  # another seed: other noise
    assert not np.array_equal(first, truth)
    error = (first - truth).ravel()
    assert np.sum(error**2) > 0 and np.isfinite(error).all()
    default = BeamSelectionEnv(tiny_store, modalities=["channel"])
    assert default.srs_snr_db is None  # the link budget by default: noisy
    assert not np.array_equal(_channel(default, 0, 3), truth)
    with pytest.raises(ConfigError, match=r"^srs_snr_db = 'x'"):
        BeamSelectionEnv(tiny_store, modalities=["channel"], srs_snr_db="x")  # type: ignore[arg-type]


def test_the_evaluation_option_defaults_to_the_link_budget_and_checks_its_range() -> None:
    from twin.loop.evaluate import evaluation_from

    assert evaluation_from({}).srs_snr_db is None
    assert evaluation_from({"srs_snr_db": math.inf}).srs_snr_db == math.inf
    with pytest.raises(ConfigError, match=r"^evaluation\.srs_snr_db = -60: expected a value >= -50$"):
        evaluation_from({"srs_snr_db": -60})


def _csi(frames: int = 2000, elements: int = 16, subcarriers: int = 8) -> np.ndarray:
    rng = np.random.default_rng(5)
    scale = 10 ** rng.uniform(-6, -4, (frames, 1, 1))
    shape = (frames, elements, subcarriers)
    return (scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))).astype(np.complex64)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_over_subcarriers_a_fixed_snr_is_met_per_frame_and_the_noise_is_white(snr_db: float) -> None:
    csi = _csi()
    noise = srs_estimate(csi, snr_db, 20.0, -90.0, np.random.default_rng(0)).astype(np.complex128) - csi
    power = np.mean(np.abs(csi) ** 2, axis=(1, 2))  # the frame's mean power per element and subcarrier
    normalised = noise / np.sqrt(power[:, None, None])
    assert 10 * np.log10(np.mean(np.abs(normalised) ** 2)) == pytest.approx(-snr_db, abs=0.05)
    per_subcarrier = 10 * np.log10(np.mean(np.abs(normalised) ** 2, axis=(0, 1)))
    np.testing.assert_allclose(per_subcarrier, -snr_db, atol=0.1)  # every subcarrier at the same SNR
    adjacent = np.mean(normalised[..., 1:] * np.conj(normalised[..., :-1]))
    assert abs(adjacent) < 0.02 * np.mean(np.abs(normalised) ** 2)  # independent across subcarriers
    assert np.var(normalised.real) == pytest.approx(np.var(normalised.imag), rel=0.03)  # circular


def test_over_subcarriers_the_link_budget_noise_is_the_narrowband_one_per_entry() -> None:
    csi = _csi(200)
    assert np.allclose(noise_variance(csi, None, 20.0, -90.0), 1e-11)
    noise = srs_estimate(csi, None, 20.0, -90.0, np.random.default_rng(0)).astype(np.complex128) - csi
    assert 10 * np.log10(np.mean(np.abs(noise) ** 2)) == pytest.approx(-110.0, abs=0.1)


def _drive_channels(env: BeamSelectionEnv, episode: int, fault_seed: int) -> np.ndarray:
    """Every frame's channel observation of one episode, (T, ...) complex."""
    obs, _ = env.reset(options={"episode": episode, "fault_seed": fault_seed})
    seen, done = [obs["channel"]], False
    while not done:
        obs, _, terminated, truncated, _ = env.step(0)
        done = terminated or truncated
        if not done:
            seen.append(obs["channel"])
    return np.stack(seen).view(np.complex64)[..., 0].astype(np.complex128)


def test_the_environment_serves_the_csi_estimate_on_a_store_with_subcarriers(tiny_csi_store: Path) -> None:
    exact = BeamSelectionEnv(tiny_csi_store, modalities=["channel"], srs_snr_db=math.inf)
    assert exact.observation_space["channel"].shape == (16, 8, 2)
    truth = _drive_channels(exact, 1, 0)
    with TwinStore(tiny_csi_store) as store:
        csi = store.episode(exact.drive.id, ["csi"])["csi"]
    np.testing.assert_array_equal(truth, csi[: len(truth)])
    noisy = BeamSelectionEnv(tiny_csi_store, modalities=["channel"], srs_snr_db=10.0)
    error = _drive_channels(noisy, 1, 0) - truth
    ratio = np.mean(np.abs(error) ** 2, axis=(1, 2)) / np.mean(np.abs(truth) ** 2, axis=(1, 2))
    assert 10 * np.log10(ratio.mean()) == pytest.approx(-10.0, abs=0.6)  # 128 draws a frame

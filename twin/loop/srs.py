"""The base station's uplink channel estimate from the UE's SRS: the true channel plus estimation
noise. The channel is the narrowband h (T, N) or, where the store has subcarriers, the csi (T, N, S).

A least-squares estimate from one pilot per antenna element (and subcarrier) carries complex Gaussian
noise of the receiver's noise power on every entry, independent across elements and subcarriers.
`snr_db = None` takes that power from the link budget (the UE's transmit power against the thermal
noise: a far car's estimate is noisier than a near one's). Over S subcarriers the SRS spreads its
power over the band as the noise is spread, so each subcarrier's estimate has the same SNR as the
narrowband one (P/S against N/S): the same noise variance, in the units of h, per entry. A number
fixes the per-entry SNR instead, against each frame's mean power per entry (over elements and
subcarriers); `inf` keeps the noiseless channel (an upper bound: no real SRS is exact).
"""

from __future__ import annotations

import math

import numpy as np

from twin.errors import ConfigError


def check_srs_snr(value: float | None, key: str = "srs_snr_db") -> float | None:
    """None (link budget), a finite SNR in dB, or inf (noiseless); else one error line."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value < -50:
        raise ConfigError(f"{key} = {value!r}: expected null (the link budget), a number >= -50 dB or inf")
    return float(value)


def noise_variance(
    h: np.ndarray, snr_db: float | None, tx_power_dbm: float, noise_power_dbm: float
) -> np.ndarray:
    """(T,) complex noise variance per entry (element, subcarrier), in the units of h (RSRP = tx
    power + |w^H h|^2)."""
    frames = h.shape[0]
    if snr_db is None:  # thermal noise referred to the transmitter: N / P_tx
        return np.full(frames, 10 ** ((noise_power_dbm - tx_power_dbm) / 10))
    if math.isinf(snr_db):
        return np.zeros(frames)
    power = np.mean(np.abs(h.reshape(frames, -1)) ** 2, axis=1)
    return power / 10 ** (snr_db / 10)


def srs_estimate(
    h: np.ndarray,
    snr_db: float | None,
    tx_power_dbm: float,
    noise_power_dbm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """h (T, ...) complex → its noisy estimate, complex64, same shape; draws from `rng` always (so
    the stream's later draws never depend on the SNR)."""
    variance = noise_variance(h, snr_db, tx_power_dbm, noise_power_dbm)
    std = np.sqrt(variance / 2).reshape(-1, *([1] * (h.ndim - 1)))
    noise = rng.standard_normal((*h.shape, 2))
    return (h + std * (noise[..., 0] + 1j * noise[..., 1])).astype(np.complex64)

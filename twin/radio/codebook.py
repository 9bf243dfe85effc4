"""The base station's uniform linear array, its steering codebook and the RSRP of a beam sweep.

Conventions (DESIGN.md, physics): N elements spaced d wavelengths along the array axis, which lies
in the horizontal plane 90 degrees counter-clockwise from boresight. A direction u has array angle
theta with sin(theta) = u . axis (so elevation shrinks the effective angle, as it does physically).
Steering vector a_n(theta) = exp(j 2 pi d (n - (N-1)/2) sin(theta)); beam k is w_k = a(theta_k)/sqrt(N)
with theta_k uniform over [min_angle, max_angle] and beams in angular order.
RSRP_k = P_tx + 10 log10 |h^H w_k|^2, the power seen after combining the array with beam k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.scenario.config import BaseStationConfig

BOLTZMANN_DBM_PER_HZ = -174.0  # thermal noise density at 290 K
# No receiver reports more: a UE's 60 dBm at most plus 30 dB of array gain (1024 elements), with
# margin. A replayed value above it (e.g. a linear 1e300, 2954 dBm) is a corrupt number, not a power.
MAX_RSRP_DBM = 100.0


def element_errors(
    num_elements: int, gain_error_db: float, phase_error_deg: float, seed: int
) -> np.ndarray | None:
    """(N,) complex gains of real elements: log-normal amplitude (std `gain_error_db`) and Gaussian
    phase (std `phase_error_deg`) errors drawn once from `seed`; None when both are zero (ideal)."""
    if gain_error_db == 0 and phase_error_deg == 0:
        return None
    rng = np.random.default_rng([seed, 17])
    amplitude_db = rng.normal(0.0, gain_error_db, num_elements)
    phase = np.deg2rad(rng.normal(0.0, phase_error_deg, num_elements))
    return 10 ** (amplitude_db / 20) * np.exp(1j * phase)


@dataclass(frozen=True)
class UniformLinearArray:
    num_elements: int
    spacing_wavelengths: float
    position: np.ndarray  # (3,) array centre, metres
    yaw_rad: float  # boresight azimuth
    element_gain: np.ndarray | None = None  # (N,) complex errors of the real elements; None: ideal

    @classmethod
    def from_config(cls, bs: BaseStationConfig) -> UniformLinearArray:
        array = bs.array
        return cls(
            num_elements=array.num_elements,
            spacing_wavelengths=array.spacing_wavelengths,
            position=np.asarray(bs.position_m, np.float64),
            yaw_rad=float(np.deg2rad(bs.yaw_deg)),
            element_gain=element_errors(
                array.num_elements, array.gain_error_db, array.phase_error_deg, array.error_seed
            ),
        )

    @property
    def boresight(self) -> np.ndarray:
        return np.array([np.cos(self.yaw_rad), np.sin(self.yaw_rad), 0.0])

    @property
    def axis(self) -> np.ndarray:
        return np.array([-np.sin(self.yaw_rad), np.cos(self.yaw_rad), 0.0])

    @property
    def element_offsets(self) -> np.ndarray:
        """(N,) element positions along the axis, in wavelengths, centred on the array."""
        n = np.arange(self.num_elements)
        return (n - (self.num_elements - 1) / 2) * self.spacing_wavelengths

    def direction(self, angle_rad: np.ndarray | float, elevation_rad: np.ndarray | float = 0.0) -> np.ndarray:
        """Unit vector(s) at array angle `angle_rad` from boresight and elevation above the horizon."""
        angle, elevation = np.broadcast_arrays(np.asarray(angle_rad, float), np.asarray(elevation_rad, float))
        horizontal = np.cos(angle)[..., None] * self.boresight + np.sin(angle)[..., None] * self.axis
        return np.cos(elevation)[..., None] * horizontal + np.sin(elevation)[..., None] * np.array(
            [0, 0, 1.0]
        )

    def sin_angle(self, directions: np.ndarray) -> np.ndarray:
        """sin(theta) of unit direction vectors (..., 3): the projection on the array axis."""
        return directions @ self.axis

    def steering(
        self, sin_theta: np.ndarray | float, wavelength_scale: np.ndarray | float = 1.0
    ) -> np.ndarray:
        """Ideal steering vector (..., N) for sin(theta) (what a codebook is designed with);
        `wavelength_scale` = f / f_carrier for wideband use."""
        phase = 2j * np.pi * self.element_offsets * np.asarray(wavelength_scale)[..., None]
        return np.exp(phase * np.asarray(sin_theta, np.float64)[..., None])

    def response(
        self, sin_theta: np.ndarray | float, wavelength_scale: np.ndarray | float = 1.0
    ) -> np.ndarray:
        """What the real elements receive (..., N): the steering vector with their gain and phase
        errors. Channels are built with this; beams with the ideal `steering`."""
        steering = self.steering(sin_theta, wavelength_scale)
        return steering if self.element_gain is None else steering * self.element_gain


@dataclass(frozen=True)
class Codebook:
    angles_rad: np.ndarray  # (K,)
    weights: np.ndarray  # (K, N) complex, unit-norm rows

    @classmethod
    def steering(cls, array: UniformLinearArray, num_beams: int, min_deg: float, max_deg: float) -> Codebook:
        angles = np.deg2rad(np.linspace(min_deg, max_deg, num_beams))
        weights = array.steering(np.sin(angles)) / np.sqrt(array.num_elements)
        return cls(angles_rad=angles, weights=weights)

    @classmethod
    def from_config(cls, bs: BaseStationConfig) -> Codebook:
        array = UniformLinearArray.from_config(bs)
        cb = bs.codebook
        return cls.steering(array, cb.num_beams, cb.min_angle_deg, cb.max_angle_deg)

    @property
    def num_beams(self) -> int:
        return len(self.angles_rad)

    def beamforming_gain(self, h: np.ndarray) -> np.ndarray:
        """|h^H w_k|^2 for every beam: (..., N) → (..., K), linear."""
        return np.abs(np.conj(h) @ self.weights.T) ** 2


def noise_power_dbm(bandwidth_hz: float, noise_figure_db: float) -> float:
    """Thermal noise power at the receiver: -174 dBm/Hz + 10 log10(B) + NF."""
    return BOLTZMANN_DBM_PER_HZ + 10 * np.log10(bandwidth_hz) + noise_figure_db


def to_db(power_linear: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10 * np.log10(power_linear)


def rsrp_noiseless_dbm(h: np.ndarray, codebook: Codebook, tx_power_dbm: float) -> np.ndarray:
    """RSRP_k = P_tx + 10 log10 |h^H w_k|^2 (dBm), no noise."""
    return tx_power_dbm + to_db(codebook.beamforming_gain(h))


def measure_rsrp_dbm(
    rsrp_true_dbm: np.ndarray, noise_dbm: float, measurement_noise_db: float, rng: np.random.Generator
) -> np.ndarray:
    """What a power detector reports: signal plus thermal noise, with a log-normal measurement error."""
    measured = 10 * np.log10(10 ** (rsrp_true_dbm / 10) + 10 ** (noise_dbm / 10))
    if measurement_noise_db > 0:
        measured = measured + rng.normal(0.0, measurement_noise_db, size=measured.shape)
    return measured

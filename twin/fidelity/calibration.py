"""The twin's measurement model moved towards a recording, without re-tracing: the detector error is
measured in the recording, the UE transmit power is searched on the twin's noiseless sweeps to match
the dynamic range (spread, SNR)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.fidelity.distances import Distance, compare, mean_ks
from twin.fidelity.statistics import Drive, NoiselessDrive, SweepStats, store_drives, sweep_statistics
from twin.radio.codebook import measure_rsrp_dbm, noise_power_dbm


@dataclass(frozen=True)
class MeasurementModel:
    tx_power_dbm: float
    noise_figure_db: float
    measurement_noise_db: float
    bandwidth_hz: float = 100e6

    @property
    def noise_power_dbm(self) -> float:
        return noise_power_dbm(self.bandwidth_hz, self.noise_figure_db)


def remeasure(
    drives: Sequence[NoiselessDrive], stored_tx_dbm: float, model: MeasurementModel, seed: int = 0
) -> list[Drive]:
    """The sweeps a store generated with `model`'s radio values would hold: noiseless RSRP scales with
    the transmit power; thermal noise and detector error are drawn as twin.radio.codebook does."""
    rng = np.random.default_rng(seed)
    shift = model.tx_power_dbm - stored_tx_dbm
    return [
        Drive(
            d.t,
            measure_rsrp_dbm(
                d.rsrp_noiseless_dbm + shift, model.noise_power_dbm, model.measurement_noise_db, rng
            ),
        )
        for d in drives
    ]


def detector_noise_db(drives: Sequence[Drive], noise_power_dbm: float, min_snr_db: float = 15.0) -> float:
    """The power detector's error (dB std) seen in a recording: the robust spread (1.4826 MAD) of
    frame-to-frame changes of beams at least `min_snr_db` above the noise, over sqrt(2). Channel
    changes add to it, so it is an upper bound; a static link (DeepSense scenario 17) makes it tight."""
    steps = []
    for drive in drives:
        rsrp = np.asarray(drive.rsrp_dbm, np.float64)
        strong = rsrp >= noise_power_dbm + min_snr_db
        both = strong[1:] & strong[:-1]
        steps.append((rsrp[1:] - rsrp[:-1])[both])
    values = np.concatenate(steps) if steps else np.zeros(0)
    if values.size < 10:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))) / np.sqrt(2))


@dataclass
class Calibration:
    before: MeasurementModel
    after: MeasurementModel
    distances_before: list[Distance]
    distances_after: list[Distance]
    grid: list[tuple[float, float]] = field(default_factory=list)  # (tx power, mean KS D of targets)


DYNAMIC_RANGE = ("spread_db", "snr_db")


def calibrate(
    real: SweepStats,
    drives: Sequence[NoiselessDrive],
    current: MeasurementModel,
    frame_rate_hz: float,
    measurement_noise_db: float,
    tx_offsets_db: Sequence[float] = tuple(np.arange(-10.0, 20.5, 1.0)),
    targets: Sequence[str] = DYNAMIC_RANGE,
    seed: int = 0,
    drop_db: float = 10.0,
) -> Calibration:
    """The twin's measurement model moved towards a recording: the detector error is set to the one
    measured in the recording (`detector_noise_db`), and the UE transmit power is searched to bring the
    dynamic range (`targets`: spread and SNR) closest in mean KS D. Runs on the twin's noiseless sweeps,
    no re-tracing. The noise figure is kept: the statistics depend on transmit power minus noise figure
    only (and a replayed DeepSense floor is anchored to the thermal noise)."""

    def distances(model: MeasurementModel) -> list[Distance]:
        measured = remeasure(drives, current.tx_power_dbm, model, seed)
        return compare(
            real, sweep_statistics(measured, model.noise_power_dbm, frame_rate_hz, "twin", drop_db)
        )

    sigma = measurement_noise_db if np.isfinite(measurement_noise_db) else current.measurement_noise_db
    grid = []
    for offset in tx_offsets_db:
        model = MeasurementModel(
            current.tx_power_dbm + offset, current.noise_figure_db, sigma, current.bandwidth_hz
        )
        grid.append((model.tx_power_dbm, mean_ks(distances(model), targets)))
    best_tx = min(grid, key=lambda item: item[1])[0]
    after = MeasurementModel(best_tx, current.noise_figure_db, sigma, current.bandwidth_hz)
    return Calibration(current, after, distances(current), distances(after), grid)


def calibration_report(real: SweepStats, real_path: Path, twin_path: Path, drop_db: float) -> dict[str, Any]:
    """Calibrate against the recording at `real_path`, print the result and return it for the report."""
    drives, attrs = store_drives(twin_path, noiseless=True)
    current = MeasurementModel(
        float(attrs["tx_power_dbm"]),
        float(attrs["noise_figure_db"]),
        float(attrs.get("measurement_noise_db", 0.0)),
        float(attrs["bandwidth_hz"]),
    )
    real_drives, real_attrs = store_drives(real_path)
    sigma = detector_noise_db(real_drives, float(real_attrs["noise_power_dbm"]))
    result = calibrate(real, drives, current, float(attrs["frame_rate_hz"]), sigma, drop_db=drop_db)
    after = result.after
    print(
        f"calibration    radio.tx_power_dbm {current.tx_power_dbm:g} -> {after.tx_power_dbm:g}, "
        f"radio.measurement_noise_db {current.measurement_noise_db:g} -> {after.measurement_noise_db:.2f} "
        f"(measured in the recording; noise figure {current.noise_figure_db:g} dB kept)"
    )
    print("KS D before -> after (re-measured from the twin's noiseless sweeps):")
    for b, a in zip(result.distances_before, result.distances_after):
        print(f"  {b.statistic:<22}{b.ks:6.3f} -> {a.ks:6.3f}")
    return {
        "before": current.__dict__,
        "after": after.__dict__,
        "ks_before": {d.statistic: d.ks for d in result.distances_before},
        "ks_after": {d.statistic: d.ks for d in result.distances_after},
    }

"""Per-horizon scores of multi-step predictors (horizon τ = frame t+τ, τ = 1 … H), shared by the JEPA
experiment scripts (learners.jepa_real, learners.jepa_experiments). Arrays are (N, H, ...) over N
windows; every function returns one value per horizon.

- beam top-k: the true best beam among the k beams ranked first;
- ΔP (the paper's L1-RSRP difference, eq. 41): |P[k̂] − P[k*]| in dB, from the frame's sweep;
- power / RSSI: MAE and RMSE of a predicted power in dB;
- displacement: ADE over horizons 1 … τ (the mean of the per-horizon errors so far) and FDE at τ, in
  the unit of the positions (metres)."""

from __future__ import annotations

import numpy as np


def top_k(ranked: np.ndarray, beams: np.ndarray, k: int) -> np.ndarray:
    """ranked (N, H, ≥k) beams, best first; beams (N, H) the true best → (H,) hit rate."""
    return (ranked[..., :k] == beams[..., None]).any(-1).mean(0)


def delta_p(predicted: np.ndarray, beams: np.ndarray, sweeps_db: np.ndarray) -> np.ndarray:
    """predicted, beams (N, H); sweeps_db (N, H, K) → (H,) mean |P[k̂] − P[k*]| in dB."""
    pick = np.take_along_axis(sweeps_db, predicted[..., None], -1)[..., 0]
    best = np.take_along_axis(sweeps_db, beams[..., None], -1)[..., 0]
    return np.abs(best - pick).mean(0)


def power_errors(predicted_db: np.ndarray, true_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H) dB each → (MAE, RMSE), each (H,)."""
    err = np.asarray(predicted_db, np.float64) - true_db
    return np.abs(err).mean(0), np.sqrt((err**2).mean(0))


def rssi_db(sweeps_db: np.ndarray) -> np.ndarray:
    """(..., K) beam powers in dBm → (...) RSSI: the mean linear power over the K beams, in dBm."""
    x = np.asarray(sweeps_db, np.float64)
    peak = x.max(-1, keepdims=True)  # factored out so that very low powers do not underflow
    return (peak[..., 0] + 10 * np.log10(np.mean(10 ** ((x - peak) / 10), -1))).astype(np.float64)


def displacement(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """predicted, truth (N, H, 2) → (ADE over horizons 1 … τ, FDE at τ), each (H,)."""
    d = np.linalg.norm(np.asarray(predicted, np.float64) - truth, axis=-1).mean(0)
    return np.cumsum(d) / np.arange(1, len(d) + 1), d

"""Beam-management metrics (DESIGN.md) per frame, pooled over frames, with bootstrap intervals.

With k̂ the served beam, k* = argmax_k of the true (noiseless, faulted) RSRP and SNR_k = RSRP_k - noise:
- rate = log2(1 + SNR_k̂) bit/s/Hz; effective rate = rate x (1 - overhead); oracle rate at k*.
- SNR loss = SNR_k* - SNR_k̂ (dB, >= 0), on the noiseless truth.
- L1-RSRP difference = |RSRP_k̂ - RSRP_k*| on the *measured* sweep of the frame (k* its argmax): what
  a dataset of measured powers (DeepSense) reports; on the truth it would equal the SNR loss.
- top-k: k* among the first k ranked beams. A policy that names one beam is scored with it repeated.
- DBA (DeepSense challenge): (1/3) sum_{k=1..3} [1 - (1/N) sum_n min_{m<=k} min(|ŷ_{n,m} - y_n|/Δ, 1)],
  Δ = 5, linear beam distance, pooled over all N frames.
- outage: share of frames with SNR_k̂ below a threshold; overhead: share of airtime spent sweeping.
Every metric is a mean over frames, so one cluster bootstrap over (drive, seed) units gives the
confidence intervals of all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DBA_DELTA = 5
DBA_TOP = 3


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    higher_is_better: bool
    digits: int = 2


METRICS: tuple[Metric, ...] = (
    Metric("effective_rate", "effective rate", "bit/s/Hz", True),
    Metric("rate", "rate", "bit/s/Hz", True),
    Metric("oracle_rate", "oracle rate", "bit/s/Hz", True),
    Metric("snr_loss_db", "SNR loss", "dB", False),
    Metric("rsrp_diff_db", "L1-RSRP diff.", "dB", False),
    Metric("top1", "top-1", "", True, 3),
    Metric("top3", "top-3", "", True, 3),
    Metric("dba", "DBA", "", True, 3),
    Metric("outage", "outage", "", False, 3),
    Metric("overhead", "overhead", "", False, 4),
)
METRIC_NAMES = tuple(m.name for m in METRICS)


def rate(snr_db: np.ndarray) -> np.ndarray:
    """Achievable rate log2(1 + SNR) in bit/s/Hz."""
    return np.log2(1 + 10 ** (np.asarray(snr_db, np.float64) / 10))


def pad_rankings(ranked: Sequence[Sequence[int]] | np.ndarray, top: int = DBA_TOP) -> np.ndarray:
    """(N, top) int: each row's first `top` beams, the last one repeated where fewer were given."""
    if isinstance(ranked, np.ndarray) and ranked.ndim == 2:
        rows = ranked[:, :top]
        if rows.shape[1] == top:
            return rows.astype(np.int64)
        return np.concatenate([rows, np.repeat(rows[:, -1:], top - rows.shape[1], 1)], 1).astype(np.int64)
    out = np.empty((len(ranked), top), np.int64)
    for n, row in enumerate(ranked):
        row = list(np.atleast_1d(row))[:top]
        out[n] = row + [row[-1]] * (top - len(row))
    return out


def topk_hits(ranked: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """(N,) whether the true beam is among the first k of each ranking."""
    return np.any(ranked[:, :k] == np.asarray(truth)[:, None], axis=1)


def dba_per_frame(
    ranked: np.ndarray, truth: np.ndarray, delta: float = DBA_DELTA, top: int = DBA_TOP
) -> np.ndarray:
    """(N,) each frame's term of the DBA score, (1/top) sum_k [1 - min_{m<=k} min(|ŷ_m - y|/Δ, 1)];
    the pooled DBA is their mean."""
    ranked = pad_rankings(ranked, top)
    distance = np.minimum(np.abs(ranked - np.asarray(truth)[:, None]) / delta, 1.0)
    best_so_far = np.minimum.accumulate(distance, axis=1)
    return np.mean(1.0 - best_so_far, axis=1)


def dba(ranked: np.ndarray, truth: np.ndarray, delta: float = DBA_DELTA, top: int = DBA_TOP) -> float:
    """The DeepSense challenge's distance-based accuracy, pooled over all frames."""
    return float(np.mean(dba_per_frame(ranked, truth, delta, top)))


@dataclass
class FrameRecord:
    """One replayed drive of one policy: per-frame arrays of length T."""

    ranked: np.ndarray  # (T, 3) beams ranked best first; column 0 was served
    oracle: np.ndarray  # (T,) true best beam
    snr_db: np.ndarray  # (T,) true SNR of the served beam
    oracle_snr_db: np.ndarray  # (T,)
    rsrp_diff_db: np.ndarray  # (T,) L1-RSRP difference on the measured sweep
    overhead: np.ndarray  # (T,) share of the frame's airtime spent measuring beams


def frame_metrics(record: FrameRecord, outage_snr_db: float) -> dict[str, np.ndarray]:
    """Every metric of METRICS as a per-frame array (their means are the pooled values)."""
    served_rate = rate(record.snr_db)
    return {
        "effective_rate": served_rate * (1 - record.overhead),
        "rate": served_rate,
        "oracle_rate": rate(record.oracle_snr_db),
        "snr_loss_db": np.maximum(record.oracle_snr_db - record.snr_db, 0.0),
        "rsrp_diff_db": np.abs(record.rsrp_diff_db),
        "top1": topk_hits(record.ranked, record.oracle, 1).astype(np.float64),
        "top3": topk_hits(record.ranked, record.oracle, 3).astype(np.float64),
        "dba": dba_per_frame(record.ranked, record.oracle),
        "outage": (record.snr_db < outage_snr_db).astype(np.float64),
        "overhead": np.asarray(record.overhead, np.float64),
    }


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float


@functools.lru_cache(maxsize=8)
def bootstrap_weights(units: int, resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, units): how often each unit is drawn in each bootstrap resample (cached: every
    policy and condition with as many units shares the resamples)."""
    pick = np.random.default_rng(seed).integers(0, units, (resamples, units))
    weights = np.zeros((resamples, units))
    np.add.at(weights, (np.arange(resamples)[:, None], pick), 1.0)
    weights.flags.writeable = False
    return weights


def pooled_with_ci(
    unit_sums: np.ndarray,
    unit_counts: np.ndarray,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> Estimate:
    """Frame-pooled mean sum/count with a percentile cluster-bootstrap interval over units
    (drive x seed): frames of one drive are correlated, drives are not. `weights` (from
    bootstrap_weights) reuses the same resamples across metrics."""
    unit_sums = np.asarray(unit_sums, np.float64)
    unit_counts = np.asarray(unit_counts, np.float64)
    total = float(unit_counts.sum())
    mean = float(unit_sums.sum() / total) if total else float("nan")
    units = len(unit_sums)
    if units < 2 or resamples <= 0:
        return Estimate(mean, mean, mean)
    if weights is None:
        weights = bootstrap_weights(units, resamples, seed)
    boot = (weights @ unit_sums) / np.maximum(weights @ unit_counts, 1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return Estimate(mean, float(low), float(high))


def unit_sums(metrics: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-metric sums over one unit's frames (what pooling needs), plus the frame count."""
    out = {name: float(np.sum(metrics[name])) for name in METRIC_NAMES}
    out["frames"] = float(len(metrics["rate"]))
    return out


def aggregate(
    units: Sequence[dict[str, float]], confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> dict[str, Estimate]:
    """Pool units (per-metric sums and frame counts, see unit_sums) into estimates with intervals;
    every metric uses the same bootstrap resamples."""
    counts = np.array([u["frames"] for u in units])
    weights = bootstrap_weights(len(units), resamples, seed) if len(units) > 1 and resamples > 0 else None
    return {
        name: pooled_with_ci(np.array([u[name] for u in units]), counts, confidence, resamples, seed, weights)
        for name in METRIC_NAMES
    }

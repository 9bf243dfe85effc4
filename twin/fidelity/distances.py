"""How far two sets of sweep statistics are apart: the two-sample Kolmogorov–Smirnov distance D, its
asymptotic p-value and the 1-Wasserstein distance, per statistic.

Frames are autocorrelated, so the KS p-values (asymptotic) overstate significance; read D itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twin.fidelity.statistics import CALIBRATED, STATISTICS, SweepStats


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if a.size == 0 or b.size == 0:
        return float("nan")
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic p-value of D for samples of sizes n and m (Kolmogorov's series)."""
    if not np.isfinite(d) or n == 0 or m == 0:
        return float("nan")
    en = np.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 1e-3:
        return 1.0
    k = np.arange(1, 101)
    return float(np.clip(2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k**2 * lam**2)), 0.0, 1.0))


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance: the area between the empirical CDFs (in the samples' unit)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if a.size == 0 or b.size == 0:
        return float("nan")
    grid = np.sort(np.concatenate([a, b]))
    widths = np.diff(grid)
    cdf_a = np.searchsorted(a, grid[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, grid[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


@dataclass(frozen=True)
class Distance:
    statistic: str
    n_real: int
    n_twin: int
    median_real: float
    median_twin: float
    ks: float
    p_value: float
    wasserstein: float


def compare(real: SweepStats, twin: SweepStats) -> list[Distance]:
    out = []
    for name in STATISTICS:
        a, b = real.samples[name], twin.samples[name]
        d = ks_distance(a, b)
        out.append(
            Distance(
                statistic=name,
                n_real=int(a.size),
                n_twin=int(b.size),
                median_real=float(np.median(a)) if a.size else float("nan"),
                median_twin=float(np.median(b)) if b.size else float("nan"),
                ks=d,
                p_value=ks_pvalue(d, a.size, b.size),
                wasserstein=wasserstein(a, b),
            )
        )
    return out


def mean_ks(distances: Sequence[Distance], names: Sequence[str] = CALIBRATED) -> float:
    values = [d.ks for d in distances if d.statistic in names and np.isfinite(d.ks)]
    return float(np.mean(values)) if values else float("nan")


def format_table(distances: Sequence[Distance], real: SweepStats, twin: SweepStats) -> str:
    lines = [
        f"real  {real.label}: {real.drives} drives, {real.frames} frames, {len(real.events)} drop events",
        f"twin  {twin.label}: {twin.drives} drives, {twin.frames} frames, {len(twin.events)} drop events",
        f"{'statistic':<22}{'n real':>8}{'n twin':>8}{'median real':>13}{'median twin':>13}"
        f"{'KS D':>8}{'p':>9}{'W1':>9}",
    ]
    for d in distances:
        lines.append(
            f"{d.statistic:<22}{d.n_real:>8}{d.n_twin:>8}{d.median_real:>13.2f}{d.median_twin:>13.2f}"
            f"{d.ks:>8.3f}{d.p_value:>9.1e}{d.wasserstein:>9.2f}"
        )
    lines.append(f"mean KS D over {', '.join(CALIBRATED)}: {mean_ks(distances):.3f}")
    return "\n".join(lines)

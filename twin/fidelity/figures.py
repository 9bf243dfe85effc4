"""The twin-versus-real figure: empirical CDFs of every statistic and the mean drop-event trace."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twin.fidelity.distances import Distance
from twin.fidelity.statistics import STATISTICS, SweepStats


def plot(real: SweepStats, twin: SweepStats, distances: Sequence[Distance], path: Path) -> Path:
    """Empirical CDFs of every statistic (twin vs real, KS D in the title) and the mean drop-event trace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(STATISTICS) + 1
    columns = 4
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), constrained_layout=True)
    axes = axes.ravel()
    by_name = {d.statistic: d for d in distances}
    for ax, (name, title) in zip(axes, STATISTICS.items()):
        for stats, color in ((real, "black"), (twin, "tab:blue")):
            values = np.sort(stats.samples[name])
            if values.size:
                ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", color=color,
                        label=f"{stats.label} (n={values.size})")  # fmt: skip
        ax.set(title=f"{title}\nKS D = {by_name[name].ks:.2f}", ylabel="CDF", ylim=(0, 1.02))
        if name in ("dwell_s", "beam_step") and any(s.samples[name].size for s in (real, twin)):
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    ax = axes[len(STATISTICS)]
    for stats, color in ((real, "black"), (twin, "tab:blue")):
        if len(stats.events):
            mean = stats.events.mean(axis=0)
            spread = np.percentile(stats.events, [25, 75], axis=0)
            ax.plot(stats.event_t, mean, color=color, label=f"{stats.label} ({len(stats.events)} events)")
            ax.fill_between(stats.event_t, spread[0], spread[1], color=color, alpha=0.15)
    ax.set(
        title="best RSRP around drop onsets", xlabel="time from onset [s]", ylabel="dB vs. previous second"
    )
    ax.grid(alpha=0.3)
    if len(real.events) or len(twin.events):
        ax.legend(fontsize=7)
    for extra in axes[panels:]:
        extra.axis("off")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

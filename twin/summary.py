"""A short look at a dataset: frames, LoS share, best-beam histogram, RSRP range — as text and a plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.store import TwinStore


@dataclass(frozen=True)
class DatasetSummary:
    path: str
    drives: int
    frames: int
    los_share: float
    blocked_share: float
    beam_histogram: np.ndarray  # (K,) counts of best beams
    rsrp_min_dbm: float
    rsrp_max_dbm: float
    best_rsrp_median_dbm: float
    snr_median_db: float

    def format(self) -> str:
        k = len(self.beam_histogram)
        bars = " ▁▂▃▄▅▆▇█"
        top = self.beam_histogram.max() or 1
        spark = "".join(bars[round(c / top * (len(bars) - 1))] for c in self.beam_histogram)
        return "\n".join(
            [
                f"dataset        {self.path}",
                f"drives/frames  {self.drives} drives, {self.frames} frames",
                f"line of sight  {100 * self.los_share:.1f} % of frames "
                f"({100 * self.blocked_share:.1f} % blocked)",
                f"RSRP           {self.rsrp_min_dbm:.1f} .. {self.rsrp_max_dbm:.1f} dBm "
                f"(best beam median {self.best_rsrp_median_dbm:.1f} dBm, "
                f"SNR median {self.snr_median_db:.1f} dB)",
                f"best beam 0..{k - 1} |{spark}|",
            ]
        )


def summarize(store: TwinStore) -> DatasetSummary:
    k = int(store.attrs["num_beams"])
    histogram = np.zeros(k, np.int64)
    los, blocked, rsrp_all, best = [], [], [], []
    for episode_id in store.episode_ids:
        ep = store.episode(episode_id, fields=["t", "rsrp_dbm", "best_beam", "los", "blocked"])
        histogram += np.bincount(ep["best_beam"], minlength=k)
        los.append(ep["los"])
        blocked.append(ep["blocked"])
        rsrp_all.append(ep["rsrp_dbm"])
        best.append(ep["rsrp_dbm"].max(axis=-1))
    rsrp = np.concatenate(rsrp_all)
    best_rsrp = np.concatenate(best)
    return DatasetSummary(
        path=str(store.path),
        drives=len(store.episode_ids),
        frames=len(best_rsrp),
        los_share=float(np.concatenate(los).mean()),
        blocked_share=float(np.concatenate(blocked).mean()),
        beam_histogram=histogram,
        rsrp_min_dbm=float(rsrp.min()),
        rsrp_max_dbm=float(rsrp.max()),
        best_rsrp_median_dbm=float(np.median(best_rsrp)),
        snr_median_db=float(np.median(best_rsrp) - store.attrs["noise_power_dbm"]),
    )


def plot_summary(store: TwinStore, summary: DatasetSummary, path: Path) -> Path:
    """Best-beam histogram and one drive's beam sweep over time (a heat map) in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episode = store.episode(store.episode_ids[0], fields=["t", "rsrp_dbm", "best_beam", "los"])
    fig, (ax_hist, ax_sweep) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    ax_hist.bar(np.arange(len(summary.beam_histogram)), summary.beam_histogram, color="tab:blue")
    ax_hist.set(xlabel="best beam index", ylabel="frames", title=f"best beam over {summary.frames} frames")
    t = episode["t"]
    image = ax_sweep.imshow(
        episode["rsrp_dbm"].T,
        aspect="auto",
        origin="lower",
        extent=(t[0], t[-1] if len(t) > 1 else t[0] + 1, -0.5, episode["rsrp_dbm"].shape[1] - 0.5),
        cmap="viridis",
    )
    ax_sweep.plot(t, episode["best_beam"], "w.", ms=3, label="best beam")
    ax_sweep.set(xlabel="time [s]", ylabel="beam index", title=f"RSRP sweep of drive {episode.id}")
    fig.colorbar(image, ax=ax_sweep, label="RSRP [dBm]")
    ax_sweep.legend(loc="upper right", fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

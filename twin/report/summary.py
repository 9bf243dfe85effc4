"""A short look at a dataset: frames, LoS share, best-beam histogram, RSRP range — as text and a plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.store import Episode, TwinStore
from twin.store.deployment import read_deployment


@dataclass(frozen=True)
class DatasetSummary:
    path: str
    drives: int
    frames: int
    los_share: float | None  # None where the data has no LoS labels (e.g. replayed DeepSense)
    blocked_share: float | None
    beam_histogram: np.ndarray  # (K,) counts of best beams
    rsrp_min_dbm: float
    rsrp_max_dbm: float
    best_rsrp_median_dbm: float
    snr_median_db: float
    drive_frames: tuple[int, int, int] = (0, 0, 0)  # shortest, median, longest drive
    sector_share: float | None = None  # frames whose UE lies within the codebook sector ± 10 degrees
    outage_share: float = 0.0  # frames whose best beam's SNR is below 0 dB (the genie's outage)

    def format(self) -> str:
        k = len(self.beam_histogram)
        bars = " ▁▂▃▄▅▆▇█"
        top = self.beam_histogram.max() or 1
        spark = "".join(bars[round(c / top * (len(bars) - 1))] for c in self.beam_histogram)
        return "\n".join(
            [
                f"dataset        {self.path}",
                f"drives/frames  {self.drives} drives, {self.frames} frames (a drive: "
                f"{self.drive_frames[0]}..{self.drive_frames[2]} frames, median {self.drive_frames[1]})",
                *(
                    []
                    if self.sector_share is None
                    else [
                        f"in sector      {100 * self.sector_share:.1f} % of frames within the codebook "
                        f"sector ± {SECTOR_MARGIN_DEG:g}° (best beam below 0 dB SNR: "
                        f"{100 * self.outage_share:.1f} %)"
                    ]
                ),
                "line of sight  not labelled in this data"
                if self.los_share is None
                else f"line of sight  {100 * self.los_share:.1f} % of frames "
                f"({100 * (self.blocked_share or 0.0):.1f} % blocked)",
                f"RSRP           {self.rsrp_min_dbm:.1f} .. {self.rsrp_max_dbm:.1f} dBm "
                f"(best beam median {self.best_rsrp_median_dbm:.1f} dBm, "
                f"SNR median {self.snr_median_db:.1f} dB)",
                f"best beam 0..{k - 1} |{spark}|",
            ]
        )


SECTOR_MARGIN_DEG = 10.0


def _sector_angles(store: TwinStore, positions: np.ndarray) -> np.ndarray:
    """Angle (deg) of UE positions (T, 3) in the base station's array frame."""
    array = read_deployment(store).array
    offset = positions.astype(np.float64) - array.position
    direction = offset / np.maximum(np.linalg.norm(offset, axis=-1, keepdims=True), 1e-9)
    angle = np.rad2deg(np.arcsin(np.clip(direction @ array.axis, -1, 1)))
    return np.where(direction @ array.boresight > 0, angle, np.inf)  # behind the array: outside


def summarize(store: TwinStore) -> DatasetSummary:
    k = int(store.attrs["num_beams"])
    labels = [name for name in ("los", "blocked") if name in store.modalities]
    histogram = np.zeros(k, np.int64)
    flags: dict[str, list[np.ndarray]] = {name: [] for name in labels}
    rsrp_all, best, lengths, in_sector, true_best = [], [], [], [], []
    noiseless = "rsrp_noiseless_dbm" in store.modalities  # the truth the genie's outage is scored on
    deployment = read_deployment(store)
    positions = "ue_pos" in store.modalities and deployment.array is not None
    low, high = deployment.angles[0] - SECTOR_MARGIN_DEG, deployment.angles[-1] + SECTOR_MARGIN_DEG
    for episode_id in store.episode_ids:
        extra = (["ue_pos"] if positions else []) + (["rsrp_noiseless_dbm"] if noiseless else [])
        ep = store.episode(episode_id, fields=["t", "rsrp_dbm", "best_beam", *labels, *extra])
        lengths.append(len(ep["t"]))
        if noiseless:
            true_best.append(np.max(ep["rsrp_noiseless_dbm"], axis=-1))
        if positions:
            angle = _sector_angles(store, ep["ue_pos"])
            in_sector.append((angle >= low) & (angle <= high))
        histogram += np.bincount(ep["best_beam"], minlength=k)
        for name in labels:
            flags[name].append(ep[name])
        rsrp_all.append(ep["rsrp_dbm"])
        best.append(np.nanmax(np.where(np.isnan(ep["rsrp_dbm"]), -np.inf, ep["rsrp_dbm"]), axis=-1))
    rsrp = np.concatenate(rsrp_all)
    best_rsrp = np.concatenate(best)
    noise = float(store.attrs["noise_power_dbm"])

    def share(name: str) -> float | None:
        return float(np.concatenate(flags[name]).mean()) if name in flags else None

    return DatasetSummary(
        path=str(store.path),
        drives=len(store.episode_ids),
        frames=len(best_rsrp),
        los_share=share("los"),
        blocked_share=share("blocked"),
        beam_histogram=histogram,
        rsrp_min_dbm=float(np.nanmin(rsrp)),  # replayed power files may hold NaN (kept, flagged)
        rsrp_max_dbm=float(np.nanmax(rsrp)),
        best_rsrp_median_dbm=float(np.median(best_rsrp)),
        snr_median_db=float(np.median(best_rsrp) - noise),
        drive_frames=(int(np.min(lengths)), int(np.median(lengths)), int(np.max(lengths))),
        sector_share=float(np.concatenate(in_sector).mean()) if in_sector else None,
        outage_share=float(np.mean((np.concatenate(true_best) if true_best else best_rsrp) < noise)),
    )


def plot_summary(store: TwinStore, summary: DatasetSummary, path: Path) -> Path:
    """Best-beam histogram, one drive's sweep over time and, when recorded, what the base station's
    camera and LiDAR saw at that drive's closest approach — in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sensors = [m for m in ("camera", "lidar") if m in store.modalities]
    fields = ["t", "rsrp_dbm", "best_beam", "los", "ue_pos", *sensors]
    if "lidar" in sensors:
        fields += ["lidar_count", "lidar_object"]  # lidar_object only in twin data
    available = {"t", "rsrp_dbm", "best_beam", *store.modalities}
    episode = store.episode(store.episode_ids[0], fields=[f for f in fields if f in available])
    columns = 2 + len(sensors)
    fig, axes = plt.subplots(1, columns, figsize=(5.5 * columns, 3.8), constrained_layout=True)
    ax_hist, ax_sweep = axes[0], axes[1]
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
    frame = _closest_approach(store, episode)
    for ax, sensor in zip(axes[2:], sensors):
        if sensor == "camera":
            ax.imshow(episode["camera"][frame])
            ax.set(title=f"BS camera at t = {t[frame]:.1f} s", xticks=[], yticks=[])
        else:
            _plot_lidar(ax, store, episode, frame)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _closest_approach(store: TwinStore, episode: Episode) -> int:
    if "ue_pos" not in episode.data:
        return len(episode["t"]) // 2
    bs = np.asarray(store.attrs["bs_position_m"])
    return int(np.argmin(np.linalg.norm(episode["ue_pos"][:, :2] - bs[:2], axis=1)))


def _plot_lidar(ax: object, store: TwinStore, episode: Episode, frame: int) -> None:
    """Bird's-eye view of one LiDAR sweep, vehicles in colour and the served one highlighted."""
    count = int(episode["lidar_count"][frame])
    origin = np.asarray(store.attrs.get("lidar_position_m", np.zeros(3)))
    points = episode["lidar"][frame, :count, :3] + origin
    labelled = "lidar_object" in episode.data
    labels = episode["lidar_object"][frame, :count] if labelled else np.full(count, -3)
    static = labels < 0
    ax.scatter(points[static, 0], points[static, 1], s=0.2, c="0.6", rasterized=True)
    vehicles = labels >= 0
    ax.scatter(
        points[vehicles, 0], points[vehicles, 1], s=0.6, c=labels[vehicles], cmap="tab10", rasterized=True
    )
    served = labels == int(episode.attrs.get("vehicle_index", -99))
    ax.scatter(points[served, 0], points[served, 1], s=1.5, c="red", label="served car")
    ax.set(xlim=(-40, 40), ylim=(-20, 20), aspect="equal", xlabel="x [m]", ylabel="y [m]",
           title=f"BS LiDAR, bird's eye, t = {episode['t'][frame]:.1f} s")  # fmt: skip
    ax.legend(loc="upper right", fontsize=8)

"""Twin versus reality: how far the twin's beam sweeps are from recorded ones.

    python -m twin.compare --real ../shared/data/deepsense6g/scenario17 --scenario urban_street
    python -m twin.compare --real <store.h5> --twin-store <store.h5> --calibrate

Both sides are reduced to the same per-frame statistics of their measured sweeps (`rsrp_dbm`, what a
power detector reports), whose distributions are compared with the two-sample Kolmogorov–Smirnov
distance D (and the 1-Wasserstein distance in the statistic's unit):

- spread_db            best-to-worst beam spread of a sweep
- snr_db               best beam's RSRP above the store's noise power (replayed DeepSense: above its
                       noise floor, by the replay calibration)
- dwell_s              how long one beam stays the best (runs of equal best beam; drive ends censor)
- beam_step            |change of the best beam| between consecutive frames, in beams
- rsrp_step_db         change of the best beam's RSRP between consecutive frames
- blockage_depth_db    depth of drop events: the best RSRP falling `drop_db` below the median of the
                       previous second and recovering later (same detector on both sides, so traced,
                       injected and real blockers are treated alike; a drop that lasts to the drive's
                       end, like a car leaving the sector, is not counted); blockage_duration_s their
                       length

Frames are autocorrelated, so the KS p-values (asymptotic) overstate significance; read D itself.
`calibrate` moves the twin's measurement model towards the recording without re-tracing: the
detector error is measured in the recording, the UE transmit power is searched on the twin's
noiseless sweeps to match the dynamic range (spread, SNR).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin.errors import ConfigError, TwinError
from twin.radio.codebook import measure_rsrp_dbm, noise_power_dbm

STATISTICS = {
    "spread_db": "best-to-worst spread [dB]",
    "snr_db": "best-beam SNR [dB]",
    "dwell_s": "best-beam dwell [s]",
    "beam_step": "best-beam step [beams]",
    "rsrp_step_db": "best-RSRP change per frame [dB]",
    "blockage_depth_db": "drop-event depth [dB]",
    "blockage_duration_s": "drop-event duration [s]",
}
# Statistics the measurement model (noise, detector error, transmit power) moves.
CALIBRATED = ("spread_db", "snr_db", "beam_step", "rsrp_step_db", "dwell_s")
EVENT_WINDOW_S = (-1.0, 3.0)  # event-aligned traces: from 1 s before a drop to 3 s after


# --- distances --------------------------------------------------------------------------------------


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


# --- statistics of sweeps ---------------------------------------------------------------------------


@dataclass
class Drive:
    t: np.ndarray  # (T,) seconds
    rsrp_dbm: np.ndarray  # (T, K) measured; NaN beams allowed


@dataclass
class SweepStats:
    label: str
    samples: dict[str, np.ndarray]
    events: np.ndarray  # (E, W) best RSRP around drop onsets, relative to the pre-event level [dB]
    event_t: np.ndarray  # (W,) seconds from onset
    drives: int = 0
    frames: int = 0


def runs(values: np.ndarray) -> np.ndarray:
    """Lengths of runs of equal consecutive values."""
    if values.size == 0:
        return np.zeros(0, int)
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1], [True]]))
    return np.diff(starts)


def drop_events(
    best_dbm: np.ndarray, frame_rate_hz: float, drop_db: float = 10.0
) -> list[tuple[int, int, float, float]]:
    """(onset, end, reference, depth) of each drop: the best RSRP falling `drop_db` below the median
    of the previous second; it lasts until the RSRP is back within drop_db / 2 of that reference.
    A drop that never recovers before the drive ends is not counted."""
    window = max(1, round(frame_rate_hz))
    events = []
    t = window
    while t < len(best_dbm):
        reference = float(np.median(best_dbm[t - window : t]))
        if best_dbm[t] <= reference - drop_db:
            end = t
            while end < len(best_dbm) and best_dbm[end] < reference - drop_db / 2:
                end += 1
            if end == len(best_dbm):  # never recovered (e.g. the car leaves the sector): not a blockage
                break
            depth = reference - float(np.min(best_dbm[t:end]))
            events.append((t, end, reference, depth))
            t = end + window  # the next reference must not include this event
        else:
            t += 1
    return events


def sweep_statistics(
    drives: Iterable[Drive], noise_power_dbm: float, frame_rate_hz: float, label: str, drop_db: float = 10.0
) -> SweepStats:
    acc: dict[str, list[np.ndarray]] = {name: [] for name in STATISTICS}
    traces = []
    before, after = (round(s * frame_rate_hz) for s in EVENT_WINDOW_S)
    count = frames = 0
    for drive in drives:
        rsrp = np.asarray(drive.rsrp_dbm, np.float64)
        rsrp = np.where(np.isfinite(rsrp), rsrp, np.nan)  # -inf (no path) and NaN beams alike
        valid = ~np.isnan(rsrp).all(axis=1)
        rsrp, t = rsrp[valid], np.asarray(drive.t, np.float64)[valid]
        if len(t) == 0:
            continue
        count, frames = count + 1, frames + len(t)
        best = np.nanmax(rsrp, axis=1)
        beam = np.nanargmax(rsrp, axis=1)
        acc["spread_db"].append(best - np.nanmin(rsrp, axis=1))
        acc["snr_db"].append(best - noise_power_dbm)
        acc["dwell_s"].append(runs(beam) / frame_rate_hz)
        acc["beam_step"].append(np.abs(np.diff(beam)).astype(float))
        acc["rsrp_step_db"].append(np.diff(best))
        for onset, end, reference, depth in drop_events(best, frame_rate_hz, drop_db):
            acc["blockage_depth_db"].append(np.array([depth]))
            acc["blockage_duration_s"].append(np.array([(end - onset) / frame_rate_hz]))
            if onset + before >= 0 and onset + after <= len(best):
                traces.append(best[onset + before : onset + after] - reference)
    samples = {k: np.concatenate(v) if v else np.zeros(0) for k, v in acc.items()}
    width = after - before
    return SweepStats(
        label=label,
        samples=samples,
        events=np.array(traces).reshape(-1, width),
        event_t=np.arange(before, after) / frame_rate_hz,
        drives=count,
        frames=frames,
    )


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


# --- the twin's measurement model, re-applied ----------------------------------------------------------


@dataclass
class NoiselessDrive:
    t: np.ndarray
    rsrp_noiseless_dbm: np.ndarray  # (T, K) at the store's transmit power


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
    the transmit power; thermal noise and detector error are drawn as twin.codebook does."""
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


# --- stores -------------------------------------------------------------------------------------------


def store_drives(path: str | Path, noiseless: bool = False) -> tuple[list, dict]:
    """The drives of a store (measured sweeps, or noiseless ones for calibration) and its attributes."""
    from twin.store import TwinStore

    with TwinStore(path) as store:
        attrs = {k: store.attrs[k] for k in store.attrs}
        if noiseless and "rsrp_noiseless_dbm" not in store.modalities:
            raise ConfigError(f"twin store {path}: has no rsrp_noiseless_dbm to calibrate against")
        drives = []
        for episode_id in store.episode_ids:
            if noiseless:
                ep = store.episode(episode_id, fields=["t", "rsrp_noiseless_dbm"])
                drives.append(NoiselessDrive(ep["t"], ep["rsrp_noiseless_dbm"].astype(np.float64)))
            else:
                ep = store.episode(episode_id, fields=["t", "rsrp_dbm"])
                drives.append(Drive(ep["t"], ep["rsrp_dbm"]))
    return drives, attrs


def store_statistics(path: str | Path, label: str = "", drop_db: float = 10.0) -> SweepStats:
    drives, attrs = store_drives(path)
    name = label or f"{attrs.get('source', '?')} {attrs.get('scenario_name', Path(path).stem)}"
    return sweep_statistics(
        drives, float(attrs["noise_power_dbm"]), float(attrs["frame_rate_hz"]), name, drop_db
    )


# --- the figure -------------------------------------------------------------------------------------------


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


# --- command line -------------------------------------------------------------------------------------


def _real_store(real: str, cache_dir: str, limit: int) -> Path:
    path = Path(real)
    if path.suffix == ".h5" and path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"--real {real!r}: expected a DeepSense scenario folder or a store (.h5)")
    from twin.replay import replay_store

    resolved = path.resolve()
    return replay_store(
        "deepsense", resolved.parent, cache_dir, scenario=resolved.name, limit=limit, modalities=[]
    )


def _twin_store(args: argparse.Namespace) -> Path:
    if args.twin_store:
        return Path(args.twin_store)
    import yaml

    from twin.cli import SCENARIO_DIR
    from twin.dataset.generation import generate
    from twin.scenario.config import scenario_from_dict

    file = SCENARIO_DIR / f"{args.scenario}.yaml"
    if not file.is_file():
        raise ConfigError(f"--scenario {args.scenario!r}: no {file}")
    data = yaml.safe_load(file.read_text()) or {}
    overrides = list(args.set)
    if not args.with_sensors:  # RF statistics only: skip rendering camera, LiDAR and radar
        overrides += [f"sensors.{s}.enabled=false" for s in ("camera", "lidar", "radar")]
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. radio.noise_figure_db=9")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    scenario = scenario_from_dict(data, source=args.scenario)
    path, stats = generate(scenario, args.cache_dir, progress=not args.quiet)
    if stats.frames:
        print(stats.describe())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m twin.compare", description="Compare the twin's beam sweeps with recorded ones."
    )
    parser.add_argument("--real", required=True, help="DeepSense scenario folder (or a replayed store .h5)")
    twin_source = parser.add_mutually_exclusive_group()
    twin_source.add_argument("--twin-store", help="a twin store (.h5) instead of generating one")
    twin_source.add_argument("--scenario", default="urban_street", help="scenarios/<name>.yaml to generate")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="scenario override, e.g. radio.noise_figure_db=9 (repeatable)")  # fmt: skip
    parser.add_argument("--with-sensors", action="store_true", help="keep camera/LiDAR/radar rendering on")
    parser.add_argument("--limit", type=int, default=0, help="real frames to convert (0: all)")
    parser.add_argument("--drop-db", type=float, default=10.0, help="drop-event threshold [dB]")
    parser.add_argument("--calibrate", action="store_true", help="search tx power and detector error")
    parser.add_argument("--cache-dir", default="outputs/cache")
    parser.add_argument("--out", default="", help="output folder (default outputs/compare/<time>)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        real_path = _real_store(args.real, args.cache_dir, args.limit)
        twin_path = _twin_store(args)
        real = store_statistics(real_path, drop_db=args.drop_db)
        twin = store_statistics(twin_path, drop_db=args.drop_db)
        distances = compare(real, twin)
        out = Path(args.out or f"outputs/compare/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
        out.mkdir(parents=True, exist_ok=True)
        print(format_table(distances, real, twin))
        report: dict = {
            "real": str(real_path),
            "twin": str(twin_path),
            "distances": [d.__dict__ for d in distances],
        }
        if args.calibrate:
            report["calibration"] = _calibration(real, real_path, twin_path, args.drop_db)
        figure = plot(real, twin, distances, out / "compare.png")
        (out / "compare.json").write_text(json.dumps(report, indent=2))
        print(f"plot           {figure}\nreport         {out / 'compare.json'}")
    except TwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _calibration(real: SweepStats, real_path: Path, twin_path: Path, drop_db: float) -> dict:
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


if __name__ == "__main__":
    sys.exit(main())

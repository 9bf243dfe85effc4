"""`twin.compare calibrate=true` on a generated twin store: the post-trace fit on its stored paths, the
traffic search on short stores, and the fidelity table after; printed and returned for the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from twin.fidelity.calibration import detector_noise_db
from twin.fidelity.distances import compare, format_table
from twin.fidelity.resweep import PostTrace, load_paths
from twin.fidelity.search import (
    TARGETS,
    PostTraceFit,
    SweepModel,
    TrafficGrid,
    fit_post_trace,
    fit_traffic,
    score,
)
from twin.fidelity.statistics import SweepStats, store_drives
from twin.store import TwinStore

POST_TRACE_KEYS = {
    "tx_power_dbm": "radio.tx_power_dbm",
    "measurement_noise_db": "radio.measurement_noise_db",
    "gain_error_db": "base_station.array.gain_error_db",
    "phase_error_deg": "base_station.array.phase_error_deg",
    "blocker_loss_db": "traffic.static_ue.blocker_loss_db",
}


def has_paths(path: Path) -> bool:
    """Whether a store keeps the path tables and scenario a post-trace fit needs (generated twin data)."""
    with TwinStore(path) as store:
        if "scenario_yaml" not in store.attrs or not store.episode_ids:
            return False
        return "paths" in store.episode(store.episode_ids[0]).groups


def _value(value: float) -> str:
    return "none" if not np.isfinite(value) else f"{value:g}"


def _print_fit(fit: PostTraceFit) -> None:
    for name, key in POST_TRACE_KEYS.items():
        before, after = getattr(fit.start, name), getattr(fit.model, name)
        note = " (measured in the recording)" if name == "measurement_noise_db" else ""
        print(f"  {key:<36}{_value(before):>8} -> {_value(after)}{note}")
    print(f"  mean KS D of {', '.join(TARGETS)}: {fit.score_before:.3f} -> {fit.score_after:.3f}")


def overrides(model: PostTrace, traffic: dict[str, Any]) -> list[str]:
    """`scenario.<key>=<value>` overrides that generate the calibrated twin."""
    out = [f"scenario.{POST_TRACE_KEYS[n]}={round(getattr(model, n), 3)}" for n in POST_TRACE_KEYS]
    if not np.isfinite(model.blocker_loss_db):
        out[-1] = f"scenario.{POST_TRACE_KEYS['blocker_loss_db']}=null"
    for key, value in traffic.items():
        text = str(value).replace(" ", "").replace("'", "")
        out.append(f"'scenario.traffic.{key}={text}'")
    return out


def twin_calibration(
    real: SweepStats,
    real_path: Path,
    twin_path: Path,
    cache_dir: str | Path,
    drop_db: float = 10.0,
    traffic: bool = True,
    traffic_drives: int = 8,
    progress: bool = False,
) -> dict[str, Any]:
    """Fit the twin at `twin_path` to the recording at `real_path`; print the steps and the table after."""
    real_drives, real_attrs = store_drives(real_path)
    sigma = detector_noise_db(real_drives, float(real_attrs["noise_power_dbm"]))
    anchor = "noise floor" in str(real_attrs.get("rsrp_calibration", ""))  # read the twin as the replay
    paths = load_paths(twin_path)
    start = paths.post_trace
    if np.isfinite(sigma):
        start = dataclasses.replace(start, measurement_noise_db=round(sigma, 3))
    sweeps = SweepModel(paths, drop_db=drop_db, anchor_floor=anchor)
    before = sweeps.statistics(paths.post_trace, "twin as generated")
    print(
        "fidelity before calibration" + (" (twin read as the replay is, floor-anchored):" if anchor else ":")
    )
    print(format_table(compare(real, before), real, before))
    print(f"mean KS D of {', '.join(TARGETS)}: {score(compare(real, before)):.3f}")
    fit = fit_post_trace(real, sweeps, start)
    fit.start = paths.post_trace
    print("calibration    post-trace parameters, on the stored paths (no re-tracing):")
    _print_fit(fit)
    report: dict[str, Any] = {
        "post_trace": {
            "before": dataclasses.asdict(paths.post_trace),
            "after": dataclasses.asdict(fit.model),
        },
        "post_trace_steps": fit.steps,
    }
    model, final_paths, chosen = fit.model, paths, {}
    if traffic:
        grid = dataclasses.replace(TrafficGrid(), drives=traffic_drives)
        count = len(grid.speed_kmh) + len(grid.mix)
        print(f"calibration    traffic: {count} short stores of {grid.drives} runs (traced once, cached):")
        result = fit_traffic(real, paths.scenario, model, cache_dir, load_paths, grid, 0, drop_db, progress)
        for values, value_score, path in result.points:
            speeds, mix = list(values["speed_kmh"]), values["mix"]
            print(f"  speed_kmh {speeds}  mix {mix}  KS D {value_score:.3f}  {path.name}")
        chosen = {
            "speed_kmh": list(result.speed_kmh),
            "mix": result.mix,
            "empty_lane_probability": round(result.empty_lane_probability, 2),
        }
        print(
            f"  chosen: speed_kmh {chosen['speed_kmh']}, mix {chosen['mix']}; empty_lane_probability "
            f"{paths.scenario.traffic.empty_lane_probability:g} -> {chosen['empty_lane_probability']:g} "
            f"(drops per second: twin {result.twin_rate:.3f}, real {result.real_rate:.3f})"
        )
        final_paths = load_paths(result.path)
        refit = fit_post_trace(real, SweepModel(final_paths, drop_db=drop_db, anchor_floor=anchor), model)
        model = refit.model
        report["traffic"] = {"chosen": chosen, "points": [(v, s, str(p)) for v, s, p in result.points]}
        print("calibration    post-trace parameters refitted on the chosen traffic's store:")
        refit.start = fit.start
        _print_fit(refit)
    after = SweepModel(final_paths, drop_db=drop_db, anchor_floor=anchor).statistics(model, "twin calibrated")
    distances = compare(real, after)
    print("fidelity after calibration:")
    print(format_table(distances, real, after))
    print(f"mean KS D of {', '.join(TARGETS)}: {score(distances):.3f}")
    print("calibrated twin: " + " ".join(overrides(model, chosen)))
    report["post_trace"]["final"] = dataclasses.asdict(model)
    report["ks_after"] = {d.statistic: d.ks for d in distances}
    return report

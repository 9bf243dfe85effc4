"""The evaluation report: results.csv, results.json, summary.md, matplotlib figures, a PyVista view.

Every number in summary.md is read from the same rows as results.json and results.csv, so the three
always agree. Figures: the CDF of SNR loss per policy, rate over time on one drive with blockage and
dropout marked, degradation versus blockage rate and dropout probability, and a 3D snapshot of the
scene with the base station, the drive's trajectory and the chosen beam's pattern.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from twin.loop.drives import load_drives
from twin.loop.evaluate import Evaluation
from twin.loop.metrics import METRICS
from twin.scenario.faults import describe
from twin.validation import to_dict

MAIN_CONDITION = "scenario"
TABLE_METRICS = (
    "effective_rate",
    "rate",
    "snr_loss_db",
    "rsrp_diff_db",
    "top1",
    "top3",
    "dba",
    "outage",
    "overhead",
)
CONDITION_METRICS = ("effective_rate", "snr_loss_db", "outage")


def fmt(value: float, digits: int) -> str:
    return (
        "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


def main_condition(evaluation: Evaluation) -> str:
    names = [c.name for c in evaluation.conditions]
    return MAIN_CONDITION if MAIN_CONDITION in names else names[0]


def write_report(evaluation: Evaluation, out_dir: str | Path, scenario: str = "") -> dict[str, Path]:
    """Write every report file into `out_dir`; returns name → path of what was written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    notes = list(evaluation.notes)
    if evaluation.config.plots:
        for name, plot in (
            ("snr_loss_cdf", plot_snr_loss_cdf),
            ("rate_over_time", plot_rate_over_time),
            ("degradation", plot_degradation),
        ):
            try:
                path = plot(evaluation, out / f"{name}.png")
            except Exception as exc:  # a figure must never cost the numbers
                notes.append(f"figure {name} not drawn: {exc}")
                continue
            if path is not None:
                files[name] = path
    if evaluation.config.snapshot:
        try:
            files["scene"] = snapshot(evaluation, out / "scene.png")
        except Exception as exc:  # e.g. no OpenGL on the machine
            notes.append(f"3D snapshot not drawn: {type(exc).__name__}: {exc}")
    files["results_csv"] = write_csv(evaluation, out / "results.csv")
    files["results_json"] = out / "results.json"
    files["summary"] = out / "summary.md"
    write_json(evaluation, files["results_json"], scenario, notes, files)
    write_summary(evaluation, files["summary"], scenario, notes, files)
    return files


# --- tables -----------------------------------------------------------------------------------------


def write_csv(evaluation: Evaluation, path: Path) -> Path:
    head = ["policy", "condition", "kind", "modality", "level", "faults", "drives", "seeds", "frames"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(head + [f"{m.name}{s}" for m in METRICS for s in ("", "_low", "_high")])
        for row in evaluation.rows:
            values = [row[k] if row[k] is not None else "" for k in head]
            for m in METRICS:
                values += [repr(row[m.name]["mean"]), repr(row[m.name]["low"]), repr(row[m.name]["high"])]
            writer.writerow(values)
    return path


def write_json(
    evaluation: Evaluation, path: Path, scenario: str, notes: list[str], files: dict[str, Path]
) -> Path:
    context = evaluation.context
    document = {
        "scenario": scenario,
        "store": {
            "path": context.path,
            "source": context.source,
            "truth": context.truth,
            "sensors": list(context.sensors),
            "num_beams": context.num_beams,
            "frame_rate_hz": context.frame_rate_hz,
            "noise_power_dbm": context.noise_power_dbm,
        },
        "drives": evaluation.drives,
        "seeds": list(evaluation.seeds),
        "policies": evaluation.policies,
        "main_condition": main_condition(evaluation),
        "conditions": [
            {
                "name": c.name,
                "kind": c.kind,
                "modality": c.modality,
                "level": None if math.isnan(c.level) else c.level,
                "faults": to_dict(c.faults),
                "label": describe(c.faults),
            }
            for c in evaluation.conditions
        ],
        "scenario_faults": to_dict(evaluation.scenario_faults),
        "evaluation": to_dict(evaluation.config),
        "metrics": {
            m.name: {"label": m.label, "unit": m.unit, "higher_is_better": m.higher_is_better}
            for m in METRICS
        },
        "rows": evaluation.rows,
        "decisions_per_s": evaluation.decisions_per_s,
        "timing": {"evaluation_s": evaluation.seconds, "env_steps": evaluation.steps},
        "timeline_drive": evaluation.timeline.drive if evaluation.timeline else None,
        "notes": notes,
        "files": {name: p.name for name, p in files.items()},
    }
    path.write_text(json.dumps(document, indent=1, allow_nan=True))
    return path


def _cell(row: dict[str, Any], name: str, with_ci: bool = True) -> str:
    digits = next(m.digits for m in METRICS if m.name == name)
    e = row[name]
    if not with_ci:
        return fmt(e["mean"], digits)
    return f"{fmt(e['mean'], digits)} [{fmt(e['low'], digits)}, {fmt(e['high'], digits)}]"


def _rows_for(evaluation: Evaluation, condition: str) -> list[dict[str, Any]]:
    return [r for r in evaluation.rows if r["condition"] == condition]


def write_summary(
    evaluation: Evaluation, path: Path, scenario: str, notes: list[str], files: dict[str, Path]
) -> Path:
    context = evaluation.context
    main = main_condition(evaluation)
    main_row = _rows_for(evaluation, main)
    frames = main_row[0]["frames"] if main_row else 0
    label = {m.name: m.label + (f" [{m.unit}]" if m.unit else "") for m in METRICS}
    lines = [
        f"# Closed-loop beam management: {scenario or Path(context.path).stem}",
        "",
        f"Store `{context.path}` ({context.source}): {len(evaluation.drives)} drives, "
        f"{context.num_beams} beams, truth from {context.truth} RSRP; seeds "
        f"{', '.join(map(str, evaluation.seeds))}; {frames} frames per policy and condition.",
        "",
        f"## Condition `{main}`: {describe(next(c.faults for c in evaluation.conditions if c.name == main))}",
        "",
        "| policy | " + " | ".join(label[m] for m in TABLE_METRICS) + " |",
        "|---" * (len(TABLE_METRICS) + 1) + "|",
    ]
    for row in main_row:
        lines.append(f"| {row['policy']} | " + " | ".join(_cell(row, m) for m in TABLE_METRICS) + " |")
    level = round(100 * evaluation.config.confidence)
    lines += [
        "",
        f"Means pooled over frames of every drive and seed; [low, high]: {level} % cluster-bootstrap "
        "interval over (drive, seed). Effective rate = rate x (1 - sweep overhead); outage: SNR < "
        f"{evaluation.config.outage_snr_db:g} dB; L1-RSRP difference on the measured sweep; DBA with "
        "Δ = 5 over the top-3.",
    ]
    by_key = {(r["policy"], r["condition"]): r for r in evaluation.rows}
    for metric in CONDITION_METRICS:
        lines += [
            "",
            f"## {label[metric]} per fault condition",
            "",
            "| condition | " + " | ".join(evaluation.policies) + " |",
            "|---" * (len(evaluation.policies) + 1) + "|",
        ]
        for c in evaluation.conditions:
            cells = [_cell(by_key[(p, c.name)], metric, False) for p in evaluation.policies]
            lines.append(f"| {c.name} | " + " | ".join(cells) + " |")
    lines += ["", "## Conditions", ""]
    lines += [f"- `{c.name}`: {describe(c.faults)}" for c in evaluation.conditions]
    lines += ["", "## Decisions per second", "", "| policy | decisions/s |", "|---|---|"]
    lines += [f"| {p} | {v:,.0f} |" for p, v in evaluation.decisions_per_s.items()]
    lines += [
        "",
        f"{evaluation.steps:,} environment steps in {evaluation.seconds:.1f} s.",
    ]
    figures = [(n, t) for n, t in FIGURE_TITLES.items() if n in files]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{title}]({files[name].name})" for name, title in figures]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in notes]
    path.write_text("\n".join(lines) + "\n")
    return path


FIGURE_TITLES = {
    "snr_loss_cdf": "CDF of SNR loss per policy",
    "rate_over_time": "Rate over time on one drive",
    "degradation": "Degradation versus fault level",
    "scene": "3D scene snapshot",
}


def format_table(evaluation: Evaluation) -> str:
    """A compact console table of the main condition."""
    main = main_condition(evaluation)
    head = (
        f"{'policy':<13}{'eff. rate':>10}{'SNR loss':>10}{'top-1':>8}{'DBA':>8}{'outage':>8}{'overhead':>10}"
    )
    lines = [
        f"closed loop    condition '{main}', {len(evaluation.drives)} drives x {len(evaluation.seeds)} seeds",
        head,
    ]
    for row in _rows_for(evaluation, main):
        lines.append(
            f"{row['policy']:<13}{row['effective_rate']['mean']:>10.2f}{row['snr_loss_db']['mean']:>10.2f}"
            f"{row['top1']['mean']:>8.3f}{row['dba']['mean']:>8.3f}{row['outage']['mean']:>8.3f}"
            f"{row['overhead']['mean']:>10.4f}"
        )
    return "\n".join(lines)


# --- figures ----------------------------------------------------------------------------------------


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(evaluation: Evaluation, policy: str) -> Any:
    """One colour per policy across every figure."""
    import matplotlib

    return matplotlib.colormaps["tab10"](evaluation.policies.index(policy) % 10)


def plot_snr_loss_cdf(evaluation: Evaluation, path: Path) -> Path:
    plt = _pyplot()
    main = main_condition(evaluation)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    top = 1.0
    for policy in evaluation.policies:
        loss = np.sort(evaluation.frames[(policy, main)]["snr_loss_db"])
        cdf = np.arange(1, len(loss) + 1) / len(loss)
        ax.step(
            np.concatenate([[0.0], loss]),
            np.concatenate([[0.0], cdf]),
            where="post",
            label=policy,
            color=_color(evaluation, policy),
        )
        top = max(top, float(np.percentile(loss, 99)))
    # Start left of 0 so the genie's step at exactly 0 dB stays visible.
    ax.set(xlabel="SNR loss [dB]", ylabel="CDF", xlim=(-0.02 * top, min(top * 1.05, 60)), ylim=(0, 1.01))
    ax.set_title(f"SNR loss per policy, condition '{main}'")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _spans(
    ax: Any, t: np.ndarray, active: np.ndarray, y: tuple[float, float], color: str, label: str
) -> None:
    """Shade the runs of `active` frames between axes fractions y."""
    if not active.any():
        return
    period = float(np.median(np.diff(t))) if len(t) > 1 else 0.1
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(int), [0]])))
    for i, (a, b) in enumerate(zip(edges[::2], edges[1::2])):
        ax.axvspan(
            t[a],
            t[b - 1] + period,
            ymin=y[0],
            ymax=y[1],
            color=color,
            alpha=0.25,
            lw=0,
            label=label if i == 0 else None,
        )


def plot_rate_over_time(evaluation: Evaluation, path: Path) -> Path | None:
    timeline = evaluation.timeline
    if timeline is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2), constrained_layout=True)
    t = timeline.t
    _spans(ax, t, timeline.physical_blocked, (0, 1), "grey", "blocked (traced)")
    _spans(ax, t, timeline.injected, (0, 1), "tab:red", "blockage (injected)")
    bands = ("tab:cyan", "tab:olive", "tab:pink", "tab:brown", "tab:gray")
    for i, (modality, active) in enumerate(timeline.dropouts.items()):
        _spans(ax, t, active, (0.05 * i, 0.05 * i + 0.05), bands[i % len(bands)], f"{modality} dropout")
    ax.plot(t, timeline.oracle_rate, "k--", lw=1.2, label="oracle (genie)")
    for policy, rate in timeline.rate.items():
        if policy != "genie":
            ax.plot(t, rate, lw=1.2, label=policy, color=_color(evaluation, policy))
    ax.set(
        xlabel="time [s]",
        ylabel="rate [bit/s/Hz]",
        title=f"Rate on drive {timeline.drive} (condition 'scenario')",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_degradation(evaluation: Evaluation, path: Path) -> Path | None:
    """Effective rate versus fault level: blockage event rate, and dropout probability per modality."""
    panels: list[tuple[str, str]] = []
    if any(c.kind == "blockage" for c in evaluation.conditions):
        panels.append(("blockage", ""))
    panels += sorted({("dropout", c.modality) for c in evaluation.conditions if c.kind == "dropout"})
    if not panels:
        return None
    plt = _pyplot()
    columns = min(3, len(panels))
    rows_count = -(-len(panels) // columns)
    fig, axes = plt.subplots(
        rows_count, columns, figsize=(4.4 * columns, 3.6 * rows_count), constrained_layout=True, squeeze=False
    )
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    clean = {r["policy"]: r for r in evaluation.rows if r["condition"] == "clean"}
    for ax, (kind, modality) in zip(axes.flat, panels):
        for policy in evaluation.policies:
            rows = [
                r
                for r in evaluation.rows
                if r["policy"] == policy and r["kind"] == kind and r["modality"] == modality
            ]
            if policy in clean:
                rows = [{**clean[policy], "level": 0.0}, *rows]
            rows.sort(key=lambda r: r["level"])
            x = [r["level"] for r in rows]
            y = np.array([r["effective_rate"]["mean"] for r in rows])
            err = np.array(
                [
                    [y[i] - r["effective_rate"]["low"], r["effective_rate"]["high"] - y[i]]
                    for i, r in enumerate(rows)
                ]
            ).T
            ax.errorbar(
                x,
                y,
                yerr=np.maximum(err, 0),
                marker="o",
                ms=3,
                capsize=2,
                label=policy,
                color=_color(evaluation, policy),
            )
        xlabel = (
            "injected blockage events per second" if kind == "blockage" else f"{modality} dropout probability"
        )
        ax.set(xlabel=xlabel, ylabel="effective rate [bit/s/Hz]")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Degradation versus fault level (mean, 95 % CI)")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def snapshot(evaluation: Evaluation, path: Path) -> Path:
    """PyVista view: street, base station, the timeline drive's trajectory, vehicles at one frame,
    and the pattern of the beam a policy serves there (with the oracle beam's pattern)."""
    import pyvista as pv
    from vtkmodules.vtkCommonCore import vtkLogger

    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)  # "bad X server connection" on headless hosts
    timeline = evaluation.timeline
    replay = load_drives(evaluation.context.path)
    context = replay.context
    drive = next(d for d in replay.drives if d.id == timeline.drive)
    if context.array is None or drive.ue_pos is None:
        raise ValueError("the store has no base-station pose or UE positions to draw")
    frame = (
        int(np.flatnonzero(timeline.injected)[len(np.flatnonzero(timeline.injected)) // 2])
        if timeline.injected.any()
        else drive.num_frames // 2
    )
    policy = next(
        (p for p in ("tracking", "hierarchical", "gps") if p in timeline.served), next(iter(timeline.served))
    )
    plotter = pv.Plotter(off_screen=True, window_size=(1200, 800))
    plotter.set_background("white")
    street = _street_size(context.scenario_yaml, drive.ue_pos)
    plotter.add_mesh(pv.Plane(center=(0, 0, -0.01), i_size=street[0], j_size=street[1] + 30), color="#d9d9d9")
    plotter.add_mesh(pv.Plane(center=(0, 0, 0), i_size=street[0], j_size=street[1]), color="#6e6e6e")
    bs = context.array.position
    plotter.add_mesh(
        pv.Cylinder(center=(bs[0], bs[1], bs[2] / 2), direction=(0, 0, 1), radius=0.12, height=bs[2]),
        color="black",
    )
    plotter.add_mesh(
        pv.Box(bounds=(bs[0] - 0.3, bs[0] + 0.3, bs[1] - 0.1, bs[1] + 0.1, bs[2] - 0.15, bs[2] + 0.15)),
        color="tab:blue",
    )
    plotter.add_mesh(
        pv.lines_from_points(drive.ue_pos.astype(float)), color="tab:green", line_width=4, label="trajectory"
    )
    ue = drive.ue_pos[frame].astype(float)
    plotter.add_mesh(pv.Sphere(radius=0.35, center=ue), color="tab:green")
    _vehicles(plotter, drive.traffic, frame, drive.attrs.get("vehicle_index"))
    reach = float(np.linalg.norm(ue - bs)) * 1.1
    for beam, color, label in (
        (int(timeline.served[policy][frame]), "tab:orange", f"{policy} beam"),
        (int(timeline.oracle[frame]), "tab:purple", "oracle beam"),
    ):
        plotter.add_mesh(_beam_lobe(context, beam, reach), color=color, opacity=0.5, label=f"{label} {beam}")
    plotter.add_legend(bcolor="white", size=(0.3, 0.15), loc="lower left")
    event = ", injected blockage: line of sight cut" if timeline.injected[frame] else ""
    plotter.add_text(f"drive {drive.id}, t = {drive.t[frame]:.1f} s{event}", font_size=10, color="black")
    focus = (bs + ue) / 2
    plotter.camera_position = [tuple(focus + np.array([-12.0, -28.0, 22.0])), tuple(focus), (0, 0, 1)]
    plotter.screenshot(str(path))
    plotter.close()
    return path


def _street_size(scenario_yaml: str, positions: np.ndarray) -> tuple[float, float]:
    try:
        street = (yaml.safe_load(scenario_yaml) or {}).get("street", {})
        return float(street["length_m"]), float(street["width_m"])
    except (yaml.YAMLError, KeyError, TypeError, AttributeError):
        span = np.ptp(positions[:, :2], axis=0)
        return float(span[0] + 20), float(max(span[1] + 6, 10))


def _vehicles(plotter: Any, traffic: dict[str, np.ndarray], frame: int, served: Any) -> None:
    import pyvista as pv

    if not traffic or "positions" not in traffic:
        return
    positions, sizes = traffic["positions"][frame], traffic["sizes"]
    yaws = traffic.get("yaws", np.zeros(len(sizes)))
    yaws = yaws[frame] if yaws.ndim == 2 else yaws
    for v, (p, s) in enumerate(zip(positions, sizes)):
        box = pv.Box(bounds=(-s[0] / 2, s[0] / 2, -s[1] / 2, s[1] / 2, 0, s[2]))
        box = box.rotate_z(float(np.rad2deg(yaws[v])), inplace=False).translate(
            (float(p[0]), float(p[1]), 0.0), inplace=False
        )
        plotter.add_mesh(
            box, color="tab:red" if served is not None and v == int(served) else "#b0b0c8", opacity=0.9
        )


def _beam_lobe(context: Any, beam: int, reach: float) -> Any:
    """The beam's horizontal gain pattern |a(φ)^H w_k|^2 / N as a filled polygon at array height."""
    import pyvista as pv

    array = context.array
    angles = np.deg2rad(np.linspace(-90, 90, 361))
    steering = array.steering(np.sin(angles)) / math.sqrt(array.num_elements)
    if context.weights is not None:
        weights = context.weights[beam]
    else:
        weights = array.steering(np.sin(np.deg2rad(context.angles_deg[beam]))) / math.sqrt(array.num_elements)
    gain = np.abs(steering.conj() @ weights) ** 2
    radius = reach * gain / max(gain.max(), 1e-12)
    directions = array.direction(angles)
    ring = array.position + radius[:, None] * directions
    points = np.vstack([array.position, ring])
    faces = np.hstack([[3, 0, i, i + 1] for i in range(1, len(ring))])
    return pv.PolyData(points, faces)

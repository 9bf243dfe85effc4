"""A 3D view of the scene (PyVista): street, base station, a drive's trajectory, the vehicles at one
frame and the pattern of the beam a policy serves there."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from twin.loop.drives import load_drives
from twin.loop.evaluate import Evaluation


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

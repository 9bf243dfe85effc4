"""A 3D view of the scene (PyVista, off-screen): the street and its buildings, the base station with
the patterns of the beam a policy serves and of the oracle beam, the UE and its trajectory, and the
vehicles at one frame with the blockers marked, framed so that all of it is in view."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from twin.errors import ConfigError
from twin.loop.drives import Drive, TwinContext, load_drives
from twin.loop.evaluate import Evaluation
from twin.scenario.config import ScenarioConfig, scenario_from_dict
from twin.trace.geometry import segments_hit_boxes
from twin.trace.scene import building_boxes

MATERIAL_COLORS = {"concrete": "#c9b99a", "glass": "#9ec9e2", "metal": "#a7adb5", "wood": "#b08a5a"}
SERVED, ORACLE, UE, BLOCKER = "#f28e2b", "#7b3fb5", "#2ca02c", "#1f1f1f"
LOBE_RANGE_DB = 20.0  # gain range a beam pattern spans, from its peak to the array's centre


def snapshot(evaluation: Evaluation, path: Path) -> Path:
    """The scene at one frame of the timeline drive (its injected-blockage frame closest to the base
    station, else its closest frame) as a PNG; a replayed store without poses raises ValueError."""
    import pyvista as pv
    from vtkmodules.vtkCommonCore import vtkLogger

    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)  # "bad X server connection" on headless hosts
    timeline = evaluation.timeline
    replay = load_drives(evaluation.context.path)
    context = replay.context
    drive = next(d for d in replay.drives if d.id == timeline.drive)
    if context.array is None or drive.ue_pos is None:
        raise ValueError("the store has no base-station pose or UE positions to draw")
    frame = _frame(drive.ue_pos, context.array.position, timeline.injected)
    policy = next(
        (p for p in ("tracking", "hierarchical", "gps") if p in timeline.served), next(iter(timeline.served))
    )
    scenario = _scenario(context.scenario_yaml)
    plotter = pv.Plotter(off_screen=True, window_size=(1600, 1000))
    plotter.set_background("white")
    plotter.enable_anti_aliasing("ssaa")
    length = _street(plotter, scenario, drive.ue_pos)
    bs, ue = context.array.position, drive.ue_pos[frame].astype(float)
    _base_station(plotter, bs)
    plotter.add_mesh(
        pv.lines_from_points(drive.ue_pos.astype(float)), color=UE, line_width=5, label="UE trajectory"
    )
    plotter.add_mesh(pv.Sphere(radius=0.5, center=ue), color=UE, label="UE")
    reach_x = max(length / 2, float(np.abs(drive.ue_pos[:, 0]).max()))
    blocked = _vehicles(plotter, drive, frame, bs, ue, reach_x)
    los_color = BLOCKER if blocked or timeline.injected[frame] else "#555555"
    plotter.add_mesh(pv.Line(bs, ue), color=los_color, line_width=2)
    if timeline.injected[frame]:
        _injected_blocker(plotter, bs, ue)
    reach = float(np.clip(1.2 * np.linalg.norm(ue - bs), 0.2 * length, 0.35 * length))
    served, oracle = int(timeline.served[policy][frame]), int(timeline.oracle[frame])
    for beam, color, label, lift in (
        (served, SERVED, f"{policy} beam {served}", 0.10),
        (oracle, ORACLE, f"oracle beam {oracle}", 0.05),
    ):
        lobe, outline = _beam_lobe(context, beam, reach, lift)
        plotter.add_mesh(lobe, color=color, opacity=0.45, label=label)
        plotter.add_mesh(outline, color=color, line_width=3)
    plotter.add_legend(bcolor="white", border=True, size=(0.17, 0.22), loc="upper right", face="rectangle")
    event = "; injected blockage: line of sight cut" if timeline.injected[frame] else ""
    cut = f"; {blocked} vehicle{'s' if blocked > 1 else ''} in the line of sight" if blocked else ""
    plotter.add_text(
        f"drive {drive.id}, t = {drive.t[frame]:.1f} s: {policy} serves beam {served}, oracle "
        f"beam {oracle}{event}{cut}",
        font_size=12,
        color="black",
    )
    _frame_everything(plotter, _bounds(scenario, length, drive.ue_pos, bs))
    plotter.screenshot(str(path))
    plotter.close()
    return path


def _frame(positions: np.ndarray, bs: np.ndarray, injected: np.ndarray) -> int:
    """The frame to draw: where an injected blocker stands and the UE is closest to the base
    station (its beams are then easiest to tell apart), else the closest frame of all."""
    distance = np.linalg.norm(positions[:, :2] - bs[:2], axis=1)
    candidates = np.flatnonzero(injected) if injected.any() else np.arange(len(positions))
    return int(candidates[np.argmin(distance[candidates])])


def _bounds(
    scenario: ScenarioConfig | None, length: float, positions: np.ndarray, bs: np.ndarray
) -> tuple[float, ...]:
    """What must be in view: the street with its buildings, the trajectory and the base station."""
    depth = 30.0
    if scenario is not None:
        street, buildings = scenario.street, scenario.buildings
        depth = street.width_m / 2 + street.sidewalk_m + buildings.setback_m + buildings.depth_m
    points = np.vstack([positions[:, :3], bs[None], [[-length / 2, -depth, 0], [length / 2, depth, 0]]])
    low, high = points.min(axis=0), points.max(axis=0)
    return (low[0], high[0], low[1], high[1], 0.0, max(high[2], 10.0))


def _scenario(text: str) -> ScenarioConfig | None:
    """The store's scenario (None for replayed recordings, which carry no scene geometry)."""
    try:
        return scenario_from_dict(yaml.safe_load(text) or {}) if text else None
    except (yaml.YAMLError, ConfigError):
        return None


def _street(plotter: Any, scenario: ScenarioConfig | None, positions: np.ndarray) -> float:
    """Ground, road, lane markings and buildings; returns the street's length."""
    import pyvista as pv

    if scenario is None:
        span = np.ptp(positions[:, :2], axis=0)
        length, width, sidewalk, lanes = float(span[0] + 20), float(max(span[1] + 6, 10)), 3.0, ()
        boxes = []
    else:
        street = scenario.street
        length, width, sidewalk, lanes = street.length_m, street.width_m, street.sidewalk_m, street.lanes
        boxes = building_boxes(scenario)
    depth = 2 * (width / 2 + sidewalk) + 4
    plotter.add_mesh(pv.Plane(center=(0, 0, -0.02), i_size=length, j_size=depth), color="#d4d4d4")
    plotter.add_mesh(pv.Plane(center=(0, 0, 0), i_size=length, j_size=width), color="#5f5f5f")
    offsets = sorted(lane.offset_m for lane in lanes)
    for a, b in itertools.pairwise(offsets):  # a dashed line between neighbouring lanes
        y = (a + b) / 2
        for x in np.arange(-length / 2, length / 2, 6.0):
            plotter.add_mesh(pv.Plane(center=(x + 1.5, y, 0.01), i_size=3.0, j_size=0.15), color="white")
    for mesh, material in boxes:
        low, high = mesh.bounds
        block = pv.Box(bounds=(low[0], high[0], low[1], high[1], low[2], high[2]))
        color = MATERIAL_COLORS.get(material, "#bbbbbb")
        if high[1] < 0:  # the base station's side, between the camera and the street: outlines only
            plotter.add_mesh(block, color=color, style="wireframe", line_width=2)
        else:
            plotter.add_mesh(block, color=color, show_edges=True, edge_color="#777777", ambient=0.45)
    return float(length)


def _base_station(plotter: Any, bs: np.ndarray) -> None:
    import pyvista as pv

    plotter.add_mesh(
        pv.Cylinder(center=(bs[0], bs[1], bs[2] / 2), direction=(0, 0, 1), radius=0.15, height=bs[2]),
        color="black",
    )
    plotter.add_mesh(
        pv.Box(bounds=(bs[0] - 0.6, bs[0] + 0.6, bs[1] - 0.2, bs[1] + 0.2, bs[2] - 0.3, bs[2] + 0.3)),
        color="#1f5fbf",
        label="base station",
    )


def _vehicles(plotter: Any, drive: Drive, frame: int, bs: np.ndarray, ue: np.ndarray, reach_x: float) -> int:
    """The vehicles at `frame` (the served car red, blockers of the line of sight black); returns
    how many block it."""
    import pyvista as pv

    traffic = drive.traffic
    if not traffic or "positions" not in traffic:
        return 0
    positions, sizes = traffic["positions"][frame].astype(float), traffic["sizes"].astype(float)
    yaws = np.asarray(traffic.get("yaws", np.zeros(len(sizes))), float)
    yaws = yaws[frame] if yaws.ndim == 2 else yaws
    served = drive.attrs.get("vehicle_index")
    centers = positions.copy()
    centers[:, 2] = sizes[:, 2] / 2
    hits = segments_hit_boxes(bs[None], ue[None], centers, sizes / 2, yaws)[0]
    labelled: set[str] = set()
    for v, (p, s) in enumerate(zip(positions, sizes)):
        mine = served is not None and v == int(served)
        if not mine and abs(p[0]) > reach_x:  # queued beyond the street's end: out of the picture
            continue
        blocker = bool(hits[v]) and not mine
        color, label = (
            ("#d62728", "served vehicle")
            if mine
            else (BLOCKER, "blocker")
            if blocker
            else (
                "#b0b0c8",
                "traffic",
            )
        )
        box = pv.Box(bounds=(-s[0] / 2, s[0] / 2, -s[1] / 2, s[1] / 2, 0, s[2]))
        box = box.rotate_z(float(np.rad2deg(yaws[v])), inplace=False).translate(
            (float(p[0]), float(p[1]), 0.03),
            inplace=False,  # just above the road: no z-fighting
        )
        plotter.add_mesh(box, color=color, ambient=0.3, label=None if label in labelled else label)
        labelled.add(label)
    return int(sum(bool(hits[v]) for v in range(len(sizes)) if served is None or v != int(served)))


def _injected_blocker(plotter: Any, bs: np.ndarray, ue: np.ndarray) -> None:
    """The virtual blocker an injected event stands for: a tall slab across the line of sight,
    a few metres in front of the UE."""
    import pyvista as pv

    direction = (ue - bs) / max(float(np.linalg.norm(ue - bs)), 1e-9)
    center = ue - 3.0 * direction
    slab = pv.Box(bounds=(-0.3, 0.3, -1.5, 1.5, 0.0, 3.5))
    slab = slab.rotate_z(float(np.rad2deg(math.atan2(direction[1], direction[0]))), inplace=False)
    slab = slab.translate((float(center[0]), float(center[1]), 0.0), inplace=False)
    plotter.add_mesh(slab, color=BLOCKER, opacity=0.35, label="injected blocker")


def _beam_lobe(context: TwinContext, beam: int, reach: float, lift: float) -> tuple[Any, Any]:
    """The beam's horizontal gain pattern |a(φ)^H w_k|^2 / N at array height, in dB over
    LOBE_RANGE_DB: a filled polygon and its outline, the main lobe reaching `reach` metres. The
    pattern is the real array's (its element errors included), as the channel sees it."""
    import pyvista as pv

    array = context.array
    angles = np.deg2rad(np.linspace(-90, 90, 721))
    steering = array.response(np.sin(angles)) / math.sqrt(array.num_elements)
    if context.weights is not None:
        weights = context.weights[beam]
    else:
        weights = array.steering(np.sin(np.deg2rad(context.angles_deg[beam]))) / math.sqrt(array.num_elements)
    gain = np.abs(steering.conj() @ weights) ** 2
    gain_db = 10 * np.log10(np.maximum(gain / max(gain.max(), 1e-12), 1e-12))
    radius = reach * np.clip(1 + gain_db / LOBE_RANGE_DB, 0, 1)  # dB scale: side lobes show too
    origin = array.position + np.array([0.0, 0.0, lift])
    ring = origin + radius[:, None] * array.direction(angles)
    points = np.vstack([origin, ring])
    faces = np.hstack([[3, 0, i, i + 1] for i in range(1, len(ring))])
    return pv.PolyData(points, faces), pv.lines_from_points(points[[0, *range(1, len(points)), 0]])


def _frame_everything(plotter: Any, bounds: tuple[float, ...]) -> None:
    """An oblique view from behind and above the base station that holds `bounds`."""
    plotter.view_vector((0.15, -0.75, 1.0), viewup=(0, 0, 1))
    plotter.reset_camera(bounds=bounds)
    plotter.camera.zoom(1.4)  # reset_camera fits the bounding sphere, looser than the box
    plotter.reset_camera_clipping_range()

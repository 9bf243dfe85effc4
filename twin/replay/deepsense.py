"""DeepSense 6G recordings → the sample schema, read from the folders exactly as DeepSense publishes them.

Layouts (found automatically in the scenario folder, or chosen with `csv`):
- **scenario CSV** (scenarios 1–9, 31–34, ...: `scenarioNN/scenarioNN_dev.csv` or `scenarioNN.csv`): one
  row per frame with `index, unit1_rgb, unit1_pwr_60ghz, unit1_lidar, unit1_radar, unit1_loc,
  unit2_loc, unit1_beam, unit1_max_pwr, time_stamp…, seq_index, …` (paths relative to the CSV).
  A drive is a run of one `seq_index` (without it: a run of consecutive `index`).
- **2022 multi-modal challenge CSV** (`ml_challenge_dev_multi_modal.csv` beside `scenario31..34/`): rows
  are 5-frame windows `unit1_rgb_1..5, unit1_lidar_1..5, unit1_radar_1..5, unit1_loc, unit2_loc_1,
  unit2_loc_2, unit1_beam, unit1_pwr_60ghz`. The labelled sweep belongs to the window's last frame,
  so each row becomes that frame (its camera, LiDAR and radar `_5`); its GPS is `unit2_loc_2`, the
  latest fix the challenge gives (3 frames old, as the challenge intends). Rows are ordered by
  scenario and the sweep file's number; a drive is a run of consecutive numbers. Unlabelled splits
  (no `unit1_pwr_60ghz`) have no sweeps and are refused.
- **wireless only** (e.g. scenario 17): no per-frame CSV, only `unit1/mmWave_data/mmWave_power_<i>.txt`;
  frames are ordered by `<i>` and a gap in the numbering ends a drive.

Conversions: power files hold 64 linear, uncalibrated received powers (beam 1..64 in angular order);
`rsrp_dbm = 10 log10(p) + offset` where the offset anchors the recording's noise floor (see
`recording.noise_floor_db`) to the thermal noise of `bandwidth_hz` and `noise_figure_db`, or is given.
NaN, infinite or non-positive powers, and powers above `MAX_RSRP_DBM` once calibrated (a number no
receiver reports, e.g. a linear 1e300), become NaN (the environment reads them as no signal); the
frame is kept, counted in `invalid_power_frames` (`implausible_power_values` counts the too-large
ones) and its label is the argmax over the usable beams. A sweep without one usable beam is a bad
file. Beams are
0-based in the store (DeepSense's `unit1_beam` − 1 is kept in `source/label_beam` for comparison).
Camera JPGs are resized to `resolution`; LiDAR PLY clouds are padded to a common size with
`lidar_count` (no per-point object labels exist: `lidar_object` is absent); radar `.npy` cubes are
stored as recorded; `unit2_loc` → `gps`; `unit1_loc` → the root attribute `bs_latlon` and the
geodetic origin (local +x east). The array's boresight is fitted from GPS bearings and best beams
when both exist, so GPS policies can aim beams; a sensor the data lacks is simply not listed.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.radio.codebook import MAX_RSRP_DBM, noise_power_dbm
from twin.replay.config import ReplayConfig
from twin.replay.formats import (
    BadFile,
    ReplayError,
    file_number,
    parse_clock,
    point_count,
    read_image,
    read_latlon,
    read_points,
    read_power,
    read_radar,
    resolve,
)
from twin.replay.recording import (
    Recording,
    Skips,
    drive_times,
    fit_yaw,
    flag_implausible,
    frame_buffer,
    nan_argmax,
    noise_floor_db,
    segments,
    select,
    to_dbm,
)
from twin.scenario.config import GeodeticOrigin
from twin.scenario.geodetic import geodetic_to_local
from twin.store import Episode
from twin.validation import to_dict

POWER_DIR = Path("unit1") / "mmWave_data"
COLUMNS = {"camera": "unit1_rgb", "lidar": "unit1_lidar", "radar": "unit1_radar", "gps": "unit2_loc"}


@dataclass
class FrameRef:
    """One frame as the recording names it, before any file is read."""

    index: int  # DeepSense sample index (or the power file's number)
    where: str  # for messages: 'scenario31_dev.csv row 12'
    power: Path
    files: dict[str, Path] = field(default_factory=dict)  # camera, lidar, radar, gps
    seq: int = -1
    clock_s: float = float("nan")
    label: int = -1  # the 0-based beam the CSV publishes (-1: none)
    group: str = ""  # scenario folder of the row (challenge CSVs mix four)
    bs_loc: Path | None = None


# --- finding the layout -----------------------------------------------------------------------------


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [h.strip() for h in next(csv.reader(f), [])]


def _kind_of(header: list[str]) -> str | None:
    if "unit1_rgb_1" in header or "unit1_lidar_1" in header or "unit1_radar_1" in header:
        return "challenge"
    if "unit1_pwr_60ghz" in header:
        return "csv"
    return None


def find_layout(root: Path, folder: Path, csv_name: str) -> tuple[str, Path]:
    """('csv' | 'challenge', the CSV) or ('files', the power folder)."""
    if csv_name:
        path = resolve(root, folder, csv_name, "replay.csv")
        if not path.is_file():
            raise ReplayError(f"replay.csv = {csv_name!r}: {path} not found")
        header = _header(path)
        kind = _kind_of(header)
        if kind is None:
            hint = ""
            if "unit1_pwr_60ghz_1" in header:  # scenario 17's future-N series: windows, not frames
                hint = " (a blockage series CSV: point replay at the scenario folder instead)"
            raise ReplayError(
                f"{path}: no unit1_pwr_60ghz or unit1_rgb_1..5 column; not a DeepSense scenario or "
                f"challenge CSV{hint}"
            )
        return kind, path
    found = [(p, _kind_of(_header(p))) for p in sorted(folder.glob("*.csv"))]
    found = [(p, k) for p, k in found if k is not None]
    if len(found) > 1:  # prefer the scenario's own CSV: scenarioNN_dev.csv, then scenarioNN.csv
        preferred = [p for p, _ in found if p.stem in (f"{folder.name}_dev", folder.name)]
        found = [(p, k) for p, k in found if p == (preferred or [None])[0]] or found
    if len(found) > 1:
        names = ", ".join(p.name for p, _ in found)
        raise ReplayError(f"{folder}: several DeepSense CSVs ({names}); choose one with replay.csv=<name>")
    if found:
        return found[0][1], found[0][0]
    if any((folder / POWER_DIR).glob("mmWave_power_*.txt")):
        return "files", folder / POWER_DIR
    raise ReplayError(
        f"{folder}: not a DeepSense scenario folder; expected a CSV with a unit1_pwr_60ghz column "
        f"(scenarioNN_dev.csv) or {POWER_DIR}/mmWave_power_<i>.txt files"
    )


# --- reading the index of frames --------------------------------------------------------------------


def _int(value: str, where: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        raise ReplayError(f"{where} = {value!r}: expected an integer") from None


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [h.strip() for h in reader.fieldnames or []]
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def _refs_from_csv(root: Path, path: Path, config: ReplayConfig) -> list[FrameRef]:
    rows = _rows(path)
    if not rows:
        raise ReplayError(f"{path}: no rows")
    header = list(rows[0])
    time_col = next((h for h in header if h.startswith(("time_stamp", "timestamp"))), None)
    refs = []
    for i, row in enumerate(rows):
        where = f"{path.name} row {i + 1}"
        ref = FrameRef(
            index=_int(row["index"], f"{where} column index") if row.get("index") else i + 1,
            where=where,
            power=resolve(root, path.parent, row["unit1_pwr_60ghz"], f"{where} column unit1_pwr_60ghz"),
        )
        if row.get("seq_index"):
            ref.seq = _int(row["seq_index"], f"{where} column seq_index")
        if time_col and row.get(time_col):
            ref.clock_s = parse_clock(row[time_col]) or float("nan")
        if row.get("unit1_beam"):
            ref.label = _int(row["unit1_beam"], f"{where} column unit1_beam") - 1  # 1-based → 0-based
        if row.get("unit1_loc"):
            ref.bs_loc = resolve(root, path.parent, row["unit1_loc"], f"{where} column unit1_loc")
        for modality, column in COLUMNS.items():
            if modality in config.modalities and column in row:
                ref.files[modality] = resolve(root, path.parent, row[column], f"{where} column {column}")
        refs.append(ref)
    return refs


def _refs_from_challenge(root: Path, path: Path, config: ReplayConfig) -> list[FrameRef]:
    rows = _rows(path)
    if not rows:
        raise ReplayError(f"{path}: no rows")
    header = list(rows[0])
    if "unit1_pwr_60ghz" not in header:
        raise ReplayError(
            f"{path}: an unlabelled challenge split (no unit1_pwr_60ghz column): it has no beam sweeps, "
            "and a store needs measured RSRP; use a labelled split"
        )
    window = max(int(m.group(1)) for h in header if (m := re.match(r"unit1_(?:rgb|lidar|radar)_(\d+)$", h)))
    gps_fixes = [int(m.group(1)) for h in header if (m := re.match(r"unit2_loc_(\d+)$", h))]
    columns = {
        "camera": f"unit1_rgb_{window}",
        "lidar": f"unit1_lidar_{window}",
        "radar": f"unit1_radar_{window}",
        "gps": f"unit2_loc_{max(gps_fixes)}" if gps_fixes else "",
    }
    refs = []
    for i, row in enumerate(rows):
        where = f"{path.name} row {i + 1}"
        value = row["unit1_pwr_60ghz"]
        group = re.search(r"scenario\d+", value)
        ref = FrameRef(
            index=file_number(value) if file_number(value) is not None else i + 1,
            where=where,
            power=resolve(root, path.parent, value, f"{where} column unit1_pwr_60ghz"),
            group=group.group(0) if group else "",
        )
        if row.get("unit1_beam"):
            ref.label = _int(row["unit1_beam"], f"{where} column unit1_beam") - 1
        if row.get("unit1_loc"):
            ref.bs_loc = resolve(root, path.parent, row["unit1_loc"], f"{where} column unit1_loc")
        for modality, column in columns.items():
            if modality in config.modalities and column in row:
                ref.files[modality] = resolve(root, path.parent, row[column], f"{where} column {column}")
        refs.append(ref)
    refs.sort(key=lambda r: (r.group, r.index))  # splits are shuffled; drives need time order
    unique = {(r.group, r.index): r for r in reversed(refs)}  # a frame labelled twice: keep the first
    return sorted(unique.values(), key=lambda r: (r.group, r.index))


def _refs_from_files(root: Path, folder: Path) -> list[FrameRef]:
    numbered = ((file_number(p), p.name) for p in folder.glob("mmWave_power_*.txt"))
    return [
        FrameRef(index=n, where=name, power=resolve(root, folder, name, name))
        for n, name in sorted((n, name) for n, name in numbered if n is not None)
    ]


# --- conversion ---------------------------------------------------------------------------------------


@dataclass
class _Frames:
    """What the small files say (sweeps, GPS, cloud sizes), bad frames already dropped; the sensor
    files are read drive by drive."""

    refs: list[FrameRef]
    power: np.ndarray  # (F, K) linear, as recorded
    gps: np.ndarray | None  # (F, 2)
    lidar_points: int
    modalities: list[str]
    rsrp: np.ndarray = field(default_factory=lambda: np.empty(0))  # (F, K) calibrated dBm, NaN kept
    best: np.ndarray = field(default_factory=lambda: np.empty(0))  # (F,) 0-based
    invalid: np.ndarray = field(default_factory=lambda: np.empty(0))  # (F, K) NaN or non-positive


def _read_small_files(
    refs: list[FrameRef], config: ReplayConfig, modalities: list[str], skips: Skips
) -> _Frames:
    kept, power, gps, points = [], [], [], 0
    for ref in refs:
        sweep = skips.attempt(lambda r=ref: read_power(r.power, config.num_beams), ref.where)
        if sweep is None:
            continue
        fix = None
        if "gps" in modalities:
            fix = skips.attempt(lambda r=ref: read_latlon(r.files["gps"]), ref.where)
            if fix is None:
                continue
        if "lidar" in modalities:  # header only: the padded cloud size must be known up front
            count = skips.attempt(lambda r=ref: point_count(r.files["lidar"]), ref.where)
            if count is None:
                continue
            points = max(points, count)
        kept.append(ref)
        power.append(sweep)
        if fix is not None:
            gps.append(fix)
    if not kept:
        raise ReplayError("no frame left to convert: every selected frame had a bad file")
    return _Frames(kept, np.array(power), np.array(gps) if gps else None, max(points, 1), modalities)


def _unusable_sweep(path: Path) -> None:
    raise BadFile(
        f"{path}: no beam power is finite, positive and plausible (at most {MAX_RSRP_DBM:g} dBm calibrated)"
    )


def _without_unusable_sweeps(
    small: _Frames, rsrp: np.ndarray, invalid: np.ndarray, skips: Skips
) -> tuple[_Frames, np.ndarray, np.ndarray]:
    """A sweep with no usable beam left is a bad file: refused, or dropped with `skip_bad_files`."""
    keep = ~invalid.all(axis=1)
    for ref in (r for r, usable in zip(small.refs, keep) if not usable):
        skips.attempt(lambda r=ref: _unusable_sweep(r.power), ref.where)
    if not keep.any():
        raise ReplayError("no frame left to convert: every selected frame had a bad file")
    if keep.all():
        return small, rsrp, invalid
    kept = _Frames(
        [r for r, usable in zip(small.refs, keep) if usable],
        small.power[keep],
        None if small.gps is None else small.gps[keep],
        small.lidar_points,
        small.modalities,
    )
    return kept, rsrp[keep], invalid[keep]


def _calibration(power_db: np.ndarray, config: ReplayConfig) -> dict[str, Any]:
    noise = noise_power_dbm(config.bandwidth_hz, config.noise_figure_db)
    floor = noise_floor_db(power_db)
    if config.calibration_offset_db is None:
        offset, how = noise - floor, "noise floor of the recording anchored to the thermal noise power"
    else:
        offset, how = config.calibration_offset_db, "configured offset"
    return {
        "rsrp_calibration_offset_db": offset,
        "rsrp_calibration": f"rsrp_dbm = 10 log10(recorded linear power) + offset; offset: {how}",
        "recorded_noise_floor_db": floor,  # 10 log10 of the recorded (uncalibrated) units
        "noise_power_dbm": noise,
    }


def _bs_location(refs: list[FrameRef], skip_bad_files: bool) -> np.ndarray | None:
    """The base station's (lat, lon) when the recording names exactly one location (a challenge CSV
    spans four scenarios: then no single origin exists and GPS policies are skipped)."""
    fixes = []
    for path in sorted({r.bs_loc for r in refs if r.bs_loc is not None}):
        try:
            fixes.append(read_latlon(path))
        except BadFile:
            if not skip_bad_files:
                raise
    distinct = {tuple(np.round(f, 9)) for f in fixes}
    return np.array(fixes[0]) if len(distinct) == 1 else None


def _pose_attrs(
    bs: np.ndarray | None, gps: np.ndarray | None, beams: np.ndarray, angles: np.ndarray, config: ReplayConfig
) -> dict[str, Any]:
    if bs is None:
        return {}
    attrs: dict[str, Any] = {
        "bs_latlon": bs,
        "geodetic_origin": np.array([bs[0], bs[1], 0.0]),
        "geodetic_heading_deg": 90.0,  # local +x east, +y north
    }
    if config.bs_yaw_deg is not None:
        yaw, how = config.bs_yaw_deg, "configured"
    elif gps is not None:
        local = geodetic_to_local(GeodeticOrigin(float(bs[0]), float(bs[1]), 0.0, 90.0), gps)
        fit = fit_yaw(local, beams, angles)
        if fit is None:
            return attrs
        yaw, how = fit[0], f"fitted to GPS bearings and best beams (median residual {fit[1]:.1f} deg)"
    else:
        return attrs
    attrs.update(bs_position_m=np.zeros(3), bs_yaw_deg=yaw, bs_yaw_source=how)
    return attrs


def load(root: Path, folder: Path, config: ReplayConfig) -> Recording:
    """Index the recording in `folder` (inside the dataset `root`), read its sweeps and GPS, and
    return a Recording whose drives read the sensor files lazily."""
    layout, source = find_layout(root, folder, config.csv)
    if layout == "csv":
        refs = _refs_from_csv(root, source, config)
    elif layout == "challenge":
        refs = _refs_from_challenge(root, source, config)
    else:
        refs = _refs_from_files(root, source)
    refs = select(refs, config.offset, config.limit, str(source))
    modalities = [m for m in COLUMNS if m in config.modalities and all(m in r.files for r in refs)]
    skips = Skips(config.skip_bad_files)
    small = _read_small_files(refs, config, modalities, skips)
    rsrp_raw, unreadable = to_dbm(small.power)
    calibration = _calibration(rsrp_raw, config)
    rsrp, invalid = flag_implausible(rsrp_raw + calibration["rsrp_calibration_offset_db"], unreadable)
    implausible = int((invalid & ~unreadable).sum())
    small, rsrp, invalid = _without_unusable_sweeps(small, rsrp, invalid, skips)
    best = nan_argmax(rsrp)
    small.rsrp, small.best, small.invalid = rsrp, best, invalid
    labels = np.array([r.label for r in small.refs], np.int16)
    clean = (labels >= 0) & ~invalid.any(axis=1)
    angles = np.linspace(*config.codebook_deg, config.num_beams)
    fields = ["t", "rsrp_dbm", "best_beam", *_fields(modalities)]
    name = folder.name
    attrs: dict[str, Any] = {
        "source": "deepsense",
        "dataset_root": str(root.resolve()),
        "scenario_name": name,
        "layout": {"csv": "scenario CSV", "challenge": "challenge CSV", "files": "power files"}[layout],
        "source_index": str(source),
        "carrier_hz": config.carrier_hz,
        "bandwidth_hz": config.bandwidth_hz,
        "noise_figure_db": config.noise_figure_db,
        "tx_power_dbm": float("nan"),  # the UE's transmit power is not published
        "frame_rate_hz": config.frame_rate_hz,
        "num_beams": config.num_beams,
        "num_antennas": config.num_elements,
        "array_spacing_wavelengths": config.spacing_wavelengths,
        "beam_indexing": "0-based here; DeepSense files and unit1_beam are 1-based",
        "codebook_note": "nominal steering angles; the real array's beam patterns are not published",
        "modalities": json.dumps([f for f in fields if f not in ("t", "rsrp_dbm", "best_beam")]),
        "invalid_power_frames": int(invalid.any(axis=1).sum()),
        "implausible_power_values": implausible,  # above MAX_RSRP_DBM once calibrated: set to NaN
        "label_mismatches": int((labels[clean] != best[clean]).sum()),
        "replay_config": json.dumps(to_dict(config)),
        **calibration,
        **_pose_attrs(_bs_location(small.refs, config.skip_bad_files), small.gps, best, angles, config),
    }
    if "camera" in modalities:
        attrs["camera_resolution"] = np.array(config.resolution)
    if "lidar" in modalities:
        attrs["lidar_frame"] = "points as recorded, in the LiDAR's own frame; no object labels"
    if config.lidar_max_points:
        small.lidar_points = config.lidar_max_points
    drives = segments(
        np.array([r.index for r in small.refs]),
        _keys(small.refs, layout),
        contiguous=layout != "csv" or all(r.seq < 0 for r in small.refs),
        max_frames=config.max_drive_frames,
    )

    def episodes() -> Iterator[Episode]:
        for k, rows in enumerate(drives):
            episode = _episode(small, rows, k, name, config, skips)
            if episode is not None:
                yield episode
        attrs.update(skips.attrs())

    attrs.update(skips.attrs())
    constants = {"codebook/angles_deg": angles}
    return Recording(name=name, attrs=attrs, constants=constants, episodes=episodes)


def _fields(modalities: list[str]) -> list[str]:
    extra = {"lidar": ["lidar", "lidar_count"], "gps": ["gps", "gps_valid"]}
    return [f for m in modalities for f in extra.get(m, [m])]


def _keys(refs: list[FrameRef], layout: str) -> np.ndarray | None:
    if layout == "challenge":
        return np.array([r.group for r in refs])
    if any(r.seq >= 0 for r in refs):
        return np.array([r.seq for r in refs])
    return None


def _episode(
    small: _Frames, rows: np.ndarray, number: int, name: str, config: ReplayConfig, skips: Skips
) -> Episode | None:
    """One drive: the sweeps of `rows` plus their sensor files (frames with a bad file dropped)."""
    modalities, lidar_points = small.modalities, small.lidar_points
    width, height = config.resolution
    shapes = {
        "camera": ((height, width, 3), np.uint8),
        "lidar": ((lidar_points, 4), np.float32),
        "radar": (tuple(config.radar_shape), np.complex64),
    }
    sensors = {
        m: frame_buffer((len(rows), *shape), dtype) for m, (shape, dtype) in shapes.items() if m in modalities
    }
    counts = np.zeros(len(rows), np.int32)

    def read_frame(j: int, ref: FrameRef) -> bool:
        if "camera" in sensors:
            sensors["camera"][j] = read_image(ref.files["camera"], config.resolution)
        if "lidar" in sensors:
            points = read_points(ref.files["lidar"])[:lidar_points]
            sensors["lidar"][j, : len(points)] = points
            counts[j] = len(points)
        if "radar" in sensors:
            sensors["radar"][j] = read_radar(ref.files["radar"], config.radar_shape)
        return True

    keep = np.array(
        [
            skips.attempt(lambda j=j, r=r: read_frame(j, small.refs[r]), small.refs[r].where) is not None
            for j, r in enumerate(rows)
        ]
    )
    if not keep.any():
        return None
    rows = rows[keep]
    refs = [small.refs[r] for r in rows]
    index = np.array([r.index for r in refs], np.int64)
    t, time_source = drive_times(np.array([r.clock_s for r in refs]), index, config.frame_rate_hz)
    data: dict[str, np.ndarray] = {"t": t, "rsrp_dbm": small.rsrp[rows], "best_beam": small.best[rows]}
    for modality, array in sensors.items():
        data[modality] = array[keep] if not keep.all() else array
    if "lidar" in sensors:
        data["lidar_count"] = counts[keep]
    if "gps" in modalities and small.gps is not None:
        data["gps"] = small.gps[rows].astype(np.float64)
        data["gps_valid"] = np.ones(len(rows), bool)
    group = refs[0].group or name
    return Episode(
        id=f"{group}-d{number:04d}",
        data=data,
        groups={
            "source": {
                "index": index,  # DeepSense sample index (or power file number) of each frame
                "label_beam": np.array([r.label for r in refs], np.int16),  # CSV unit1_beam - 1; -1: none
                "invalid_beams": small.invalid[rows].sum(axis=1).astype(np.int16),  # NaN or <= 0 powers
            }
        },
        attrs={"drive": number, "seq_index": refs[0].seq, "scenario": group, "time_source": time_source},
    )

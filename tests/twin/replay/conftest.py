"""Tiny recordings in the published DeepSense 6G layouts, written file by file (JPG, PLY, NPY, TXT, CSV)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from twin.scenario.config import GeodeticOrigin
from twin.scenario.geodetic import local_to_geodetic

BEAMS = 64
ANGLES = np.linspace(-45.0, 45.0, BEAMS)
RADAR = (4, 8, 6)  # small cubes; the real ones are 4 x 256 x 250
BS_LATLON = (33.4193, -111.9347)
ORIGIN = GeodeticOrigin(BS_LATLON[0], BS_LATLON[1], 0.0, 90.0)  # local +x east, +y north
YAW_DEG = 90.0  # the fixture's array faces north
REPO = Path(__file__).resolve().parents[3]
# ../shared beside the repository (CI, the main checkout), or beside the folder of worktrees
_SHARED = next((p / "shared" for p in (REPO.parent, REPO.parent.parent) if (p / "shared").is_dir()), None)
SHARED_DEEPSENSE = (_SHARED or REPO.parent / "shared") / "data" / "deepsense6g"


def sweep(beam: int, peak: float = 1e-2, floor: float = 1e-4) -> np.ndarray:
    """A linear power sweep peaking at 0-based `beam` (main lobe 3 beams wide) over a noise floor."""
    k = np.arange(BEAMS)
    return floor + peak * np.exp(-0.5 * ((k - beam) / 1.5) ** 2)


def beam_towards(xy: np.ndarray) -> int:
    """The 0-based beam pointing at local (x, y) from an array at the origin facing YAW_DEG."""
    bearing = np.arctan2(xy[1], xy[0])
    theta = np.rad2deg(np.arcsin(np.sin(bearing - np.deg2rad(YAW_DEG))))
    return int(np.argmin(np.abs(ANGLES - theta)))


def write_ply(path: Path, points: np.ndarray, declared: int | None = None) -> None:
    lines = [
        "ply",
        "format ascii 1.0",
        f"element vertex {len(points) if declared is None else declared}",
        "property double x",
        "property double y",
        "property double z",
        "property ushort intensity",
        "end_header",
    ]
    lines += [f"{x:.3f} {y:.3f} {z:.3f} {int(i)}" for x, y, z, i in points]
    path.write_text("\n".join(lines) + "\n")


def write_jpg(path: Path, value: int) -> None:
    Image.new("RGB", (48, 27), (value, 255 - value, 40)).save(path, quality=90)


def write_power(path: Path, values: np.ndarray) -> None:
    path.write_text("\n".join("nan" if np.isnan(v) else repr(float(v)) for v in values) + "\n")


@dataclass
class Frame:
    index: int
    seq: int
    beam: int  # 0-based; the CSV says beam + 1
    xy: np.ndarray
    files: dict[str, str] = field(default_factory=dict)  # column → './unit1/...' as in the CSV


def write_frames(folder: Path, frames: list[Frame], nan_beams: dict[int, list[int]] | None = None) -> None:
    """Every per-frame file of a DeepSense scenario folder (scenario 31-34 naming)."""
    for sub in ("camera_data", "mmWave_data", "lidar_data", "radar_data", "GPS_data"):
        (folder / "unit1" / sub).mkdir(parents=True, exist_ok=True)
    (folder / "unit2" / "GPS_data").mkdir(parents=True, exist_ok=True)
    (folder / "unit1" / "GPS_data" / "gps_location.txt").write_text(f"{BS_LATLON[0]}\n{BS_LATLON[1]}\n")
    rng = np.random.default_rng(0)
    for f in frames:
        i = f.index
        power = sweep(f.beam)
        for b in (nan_beams or {}).get(i, []):
            power[b] = np.nan
        files = {
            "unit1_rgb": f"./unit1/camera_data/image_{i}.jpg",
            "unit1_pwr_60ghz": f"./unit1/mmWave_data/mmWave_power_{i}.txt",
            "unit1_lidar": f"./unit1/lidar_data/lidar_data_{i}.ply",
            "unit1_radar": f"./unit1/radar_data/radar_data_{i}.npy",
            "unit1_loc": "./unit1/GPS_data/gps_location.txt",
            "unit2_loc": f"./unit2/GPS_data/gps_location_{i}.txt",
        }
        write_jpg(folder / files["unit1_rgb"], 10 * i % 250)
        write_power(folder / files["unit1_pwr_60ghz"], power)
        write_ply(
            folder / files["unit1_lidar"], rng.normal(size=(3 + i % 4, 4)) * [5, 5, 1, 0] + [0, 0, 0, 7]
        )
        cube = (rng.normal(size=RADAR) + 1j * rng.normal(size=RADAR)).astype(np.complex64)
        np.save(folder / files["unit1_radar"], cube)
        lat, lon = local_to_geodetic(ORIGIN, f.xy)
        (folder / files["unit2_loc"]).write_text(f"{float(lat)!r}\n{float(lon)!r}\n")
        f.files = files


def scenario_frames(count: int = 8, seq_break: int = 5) -> list[Frame]:
    """A car driving east along y = 12 m in front of the base station; seq_index 1, then 2."""
    frames = []
    for n in range(count):
        xy = np.array([-20.0 + 5.0 * n, 12.0])
        frames.append(Frame(index=100 + n, seq=1 if n < seq_break else 2, beam=beam_towards(xy), xy=xy))
    return frames


def write_scenario_csv(folder: Path, frames: list[Frame], rows: list[dict] | None = None) -> Path:
    """scenarioNN_dev.csv with the published columns (time stamps 'HH-MM-SS.fff' at ~10 Hz)."""
    columns = [
        "index", "unit1_rgb", "unit1_pwr_60ghz", "unit1_lidar", "unit1_radar", "unit1_loc", "unit2_loc",
        "unit1_beam", "unit1_max_pwr", "time_stamp[UTC]", "seq_index",
    ]  # fmt: skip
    path = folder / f"{folder.name}_dev.csv"
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        for n, f in enumerate(frames):
            row = {
                "index": f.index,
                **f.files,
                "unit1_beam": f.beam + 1,
                "unit1_max_pwr": 0.0101,
                "time_stamp[UTC]": f"['10-39-{34 + n // 10:02d}.{(n % 10) * 100 + 17:03d}']",
                "seq_index": f.seq,
            }
            row.update((rows or [{}] * len(frames))[n] if rows else {})
            writer.writerow(row)
    return path


def make_scenario(root: Path, name: str = "scenario31", **kwargs: object) -> tuple[Path, list[Frame]]:
    folder = root / name
    frames = scenario_frames()
    write_frames(folder, frames, **kwargs)
    write_scenario_csv(folder, frames)
    return folder, frames

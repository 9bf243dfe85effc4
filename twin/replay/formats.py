"""Readers for the files recordings are published in, each failing with one line naming the file.

Every reader raises `BadFile` for a missing, truncated or wrongly shaped file: the loaders either stop
with it or, with `skip_bad_files`, drop the frame and count it. `resolve` keeps every path a CSV
names inside the dataset root.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from twin.errors import TwinError


class ReplayError(TwinError):
    """A recording folder, CSV or file cannot be converted into the sample schema."""


class BadFile(ReplayError):
    """One referenced file is missing, unreadable, truncated or wrongly shaped (skippable)."""


def resolve(root: Path, base: Path, value: str, where: str) -> Path:
    """`value` (a path as a CSV writes it, e.g. './unit1/x.txt') relative to `base`, checked to stay
    inside `root` (a '../' or an absolute path must not read files outside the dataset)."""
    text = value.strip()
    if not text:
        raise ReplayError(f"{where}: empty path")
    if Path(text).is_absolute() or re.match(r"^[A-Za-z]:[\\/]", text):
        raise ReplayError(f"{where} = {text!r}: absolute path; expected a path relative to {base}")
    path = (base / text.replace("\\", "/")).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ReplayError(f"{where} = {text!r}: path leaves the dataset root {root}")
    return path


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="strict")
    except FileNotFoundError:
        raise BadFile(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadFile(f"{path}: not readable as text ({exc})") from None


def _floats(path: Path) -> np.ndarray:
    try:
        return np.array(re.split(r"[\s,;]+", _text(path).strip()), dtype=np.float64)
    except ValueError as exc:
        raise BadFile(f"{path}: expected numbers ({exc})") from None


def read_power(path: Path, beams: int) -> np.ndarray:
    """A DeepSense beam sweep: `beams` linear powers, one per line (NaN allowed, flagged later)."""
    values = _floats(path)
    if values.size != beams:
        raise BadFile(f"{path}: expected {beams} power values (one per beam), found {values.size}")
    if np.isnan(values).all():
        raise BadFile(f"{path}: every power value is NaN")
    return values


def read_latlon(path: Path) -> np.ndarray:
    """A DeepSense GPS file: latitude and longitude in degrees (one per line)."""
    values = _floats(path)
    if values.size < 2:
        raise BadFile(f"{path}: expected latitude and longitude, found {values.size} value(s)")
    lat, lon = values[:2]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadFile(f"{path}: latitude {lat}, longitude {lon} out of range")
    return values[:2]


def read_image(path: Path, resolution: tuple[int, int]) -> np.ndarray:
    """An RGB image resized to `resolution` (width, height): (H, W, 3) uint8."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise BadFile(f"{path}: file not found")
    try:
        with Image.open(path) as image:
            image.load()  # truncated JPEGs fail here, not later
            rgb = image.convert("RGB")
            if rgb.size != tuple(resolution):
                rgb = rgb.resize(tuple(resolution), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise BadFile(f"{path}: not a readable image ({exc})") from None


def read_radar(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A radar cube (.npy, complex): RX x samples x chirps, checked against `shape`."""
    if not path.is_file():
        raise BadFile(f"{path}: file not found")
    try:
        cube = np.load(path, allow_pickle=False)  # never unpickle: it could execute code
    except (OSError, ValueError, EOFError) as exc:
        raise BadFile(f"{path}: not a readable .npy array ({exc})") from None
    if tuple(cube.shape) != tuple(shape):
        raise BadFile(f"{path}: radar cube has shape {tuple(cube.shape)}, expected {tuple(shape)}")
    if not np.iscomplexobj(cube):
        raise BadFile(f"{path}: radar cube has dtype {cube.dtype}, expected complex")
    return cube.astype(np.complex64)


# --- point clouds -----------------------------------------------------------------------------------

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def _ply_header(path: Path) -> tuple[str, int, list[tuple[str, str]], int]:
    """(format, vertex count, vertex properties [(name, type)], header length in bytes)."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise BadFile(f"{path}: file not found") from None
    except OSError as exc:
        raise BadFile(f"{path}: not readable ({exc})") from None
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise BadFile(f"{path}: not a PLY file (no 'ply' ... 'end_header' header)")
    length = head.index(b"\n", end) + 1
    fmt, count, props, element = "", -1, [], ""
    for line in head[:end].decode("ascii", "replace").splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            element = words[1]
            if element == "vertex":
                count = int(words[2])
        elif words[0] == "property" and element == "vertex":
            if words[1] == "list" or words[1] not in _PLY_TYPES:
                raise BadFile(f"{path}: vertex property {' '.join(words[1:])!r} not supported")
            props.append((words[2], _PLY_TYPES[words[1]]))
    if count < 0 or not {"x", "y", "z"} <= {name for name, _ in props}:
        raise BadFile(f"{path}: PLY header lacks a vertex element with x, y, z")
    return fmt, count, props, length


def ply_vertex_count(path: Path) -> int:
    return _ply_header(path)[1]


def read_ply(path: Path) -> np.ndarray:
    """A PLY point cloud (ASCII or binary little-endian vertices) → (P, 4) float32 x, y, z, intensity
    (intensity 0 where the file has none)."""
    fmt, count, props, length = _ply_header(path)
    raw = path.read_bytes()[length:]
    names = [name for name, _ in props]
    if fmt == "ascii":
        try:
            values = np.array(raw.split()[: count * len(props)], dtype=np.float64)
        except ValueError as exc:
            raise BadFile(f"{path}: PLY body is not numeric ({exc})") from None
        if values.size < count * len(props):
            raise BadFile(
                f"{path}: truncated: header says {count} vertices x {len(props)} properties, "
                f"found {values.size} values"
            )
        table = values.reshape(count, len(props))
        column = {name: table[:, i] for i, name in enumerate(names)}
    elif fmt == "binary_little_endian":
        dtype = np.dtype([(name, "<" + t) for name, t in props])
        if len(raw) < count * dtype.itemsize:
            raise BadFile(f"{path}: truncated: header says {count} vertices, body holds fewer")
        records = np.frombuffer(raw, dtype, count)
        column = {name: records[name] for name in names}
    else:
        raise BadFile(f"{path}: PLY format {fmt!r} not supported; expected ascii or binary_little_endian")
    intensity = column.get("intensity", column.get("reflectivity", np.zeros(count)))
    return np.stack([column["x"], column["y"], column["z"], intensity], axis=1).astype(np.float32)


def read_pcd(path: Path) -> np.ndarray:
    """An ASCII PCD point cloud → (P, 4) float32 x, y, z, intensity (0 where absent)."""
    lines = _text(path).splitlines()
    fields: list[str] = []
    for i, line in enumerate(lines):
        words = line.split()
        if words and words[0] == "FIELDS":
            fields = words[1:]
        if words and words[0] == "DATA":
            if words[1:2] != ["ascii"]:
                raise BadFile(f"{path}: PCD data {' '.join(words[1:])!r} not supported; expected ascii")
            body = lines[i + 1 :]
            break
    else:
        raise BadFile(f"{path}: not a PCD file (no DATA line)")
    if not {"x", "y", "z"} <= set(fields):
        raise BadFile(f"{path}: PCD fields {fields} lack x, y, z")
    try:
        table = np.array([row.split() for row in body if row.strip()], dtype=np.float64)
    except ValueError:
        raise BadFile(f"{path}: PCD rows are ragged or not numeric") from None
    table = table.reshape(-1, len(fields))
    col = {name: table[:, i] for i, name in enumerate(fields)}
    intensity = col.get("intensity", np.zeros(len(table)))
    return np.stack([col["x"], col["y"], col["z"], intensity], axis=1).astype(np.float32)


def point_count(path: Path) -> int:
    """Points in a cloud, from its header only (PLY 'element vertex', PCD 'POINTS')."""
    if path.suffix.lower() != ".pcd":
        return ply_vertex_count(path)
    for line in _text(path).splitlines()[:20]:
        words = line.split()
        if words[:1] == ["POINTS"] and len(words) > 1 and words[1].isdigit():
            return int(words[1])
    raise BadFile(f"{path}: PCD header has no POINTS line")


def read_points(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".pcd":
        return read_pcd(path)
    return read_ply(path)


def pad_points(points: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """(size, 4) zero-padded (or truncated) cloud and the number of real points kept."""
    out = np.zeros((size, 4), np.float32)
    kept = min(len(points), size)
    out[:kept] = points[:kept]
    return out, kept


_TIME = re.compile(r"(\d{1,2})[:\-_](\d{2})[:\-_](\d{2})(?:\.(\d+))?(?:-(\d+))?")


def parse_clock(text: str) -> float | None:
    """Seconds since midnight of a DeepSense time stamp ('HH:MM:SS-micro', 'HH-MM-SS.fff', ...)."""
    match = _TIME.search(text)
    if match is None:
        return None
    hours, minutes, seconds, fraction, micro = match.groups()
    value = int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    if fraction:
        value += float("0." + fraction)
    elif micro:
        value += int(micro) * 1e-6
    return float(value)


_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def file_number(path: str | Path) -> int | None:
    """The last integer in a file name ('mmWave_power_123.txt' → 123)."""
    match = _NUMBER.search(Path(path).stem)
    return int(match.group(1)) if match else None

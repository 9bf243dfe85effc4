"""What a store's arrays must satisfy beyond their names: shapes, the codebook, path tables, values.

Each check raises one StoreError line naming the file, the episode and the dataset, so a damaged or
hand-edited store is refused when opened instead of failing later with a numpy traceback (or
silently running another blockage model).
"""

from __future__ import annotations

from collections.abc import Mapping

import h5py
import numpy as np

from twin.errors import StoreError
from twin.radio.codebook import MAX_RSRP_DBM
from twin.store.schema import FIELDS_BY_NAME, PATH_FIELDS, REQUIRED_FIELDS, SCHEMA_VERSION, Field

# The path-table fields injected blockage cuts with; the others are optional (replayed tables).
PATH_FIELDS_NEEDED = ("gain", "departure", "is_los", "valid")
_PATH_FIELDS = {f.name: f for f in PATH_FIELDS}


def _shape_matches(actual: tuple[int, ...], spec: tuple[str | int, ...], sizes: dict[str, int]) -> bool:
    """Letters take the size fixed for the dataset, or the first size they meet (then it must repeat)."""
    if len(actual) != len(spec):
        return False
    for size, dim in zip(actual, spec):
        expected = sizes.setdefault(dim, size) if isinstance(dim, str) else dim
        if expected != size:
            return False
    return True


def _describe(spec: tuple[str | int, ...], sizes: Mapping[str, int]) -> str:
    return "(" + ", ".join(f"{d}={sizes[d]}" if d in sizes else str(d) for d in spec) + ")"


def check_codebook(path: object, file: h5py.File, num_beams: int, num_antennas: int | None) -> None:
    """`codebook/angles_deg` (K,) finite and `codebook/weights` (K, N) complex, when present."""
    if "codebook/angles_deg" in file:
        angles = file["codebook/angles_deg"]
        if angles.shape != (num_beams,):
            raise StoreError(
                f"{path}: dataset 'codebook/angles_deg' has shape {angles.shape}, expected ({num_beams},) "
                f"(num_beams = {num_beams})"
            )
        if not np.isfinite(angles[()]).all():
            raise StoreError(f"{path}: dataset 'codebook/angles_deg' holds non-finite angles")
    if "codebook/weights" in file:
        weights = file["codebook/weights"]
        expected = (num_beams, num_antennas) if num_antennas else (num_beams, weights.shape[-1])
        if weights.ndim != 2 or weights.shape != expected:
            wanted = f"({num_beams}, {num_antennas or 'N'})"
            raise StoreError(
                f"{path}: dataset 'codebook/weights' has shape {weights.shape}, expected {wanted} "
                "(num_beams x num_antennas)"
            )
        if not np.iscomplexobj(weights[()][:0]) or not np.isfinite(weights[()]).all():
            raise StoreError(f"{path}: dataset 'codebook/weights' must hold finite complex weights")


def check_fields(where: str, group: h5py.Group, names: tuple[str, ...], sizes: dict[str, int]) -> int:
    """Every schema field in `names` present, with the episode's frame count, shape and dtype."""
    for name in names:
        if name not in group:
            raise StoreError(f"{where}: missing dataset {name!r} (sample schema v{SCHEMA_VERSION})")
    frames = group["t"].shape[0]
    for name in names:
        _check_dataset(where, name, group[name], FIELDS_BY_NAME[name], frames, sizes)
    return frames


def _check_dataset(
    where: str, name: str, data: h5py.Dataset, spec: Field, frames: int, sizes: dict[str, int]
) -> None:
    if data.shape[:1] != (frames,):
        count = data.shape[0] if data.ndim else "no"
        raise StoreError(f"{where}: dataset {name!r} has {count} frames, 't' has {frames}")
    if not _shape_matches(data.shape[1:], spec.shape, dict(sizes)):
        expected = _describe(spec.shape, sizes)
        shape = data.shape[1:]
        raise StoreError(f"{where}: dataset {name!r} has per-frame shape {shape}, expected {expected}")
    if np.dtype(data.dtype) != np.dtype(spec.dtype):
        raise StoreError(f"{where}: dataset {name!r} has dtype {data.dtype}, expected {spec.dtype}")


def check_paths(where: str, group: h5py.Group, frames: int) -> None:
    """A `paths/` table: the fields blockage needs, every field (T, L, ...) with one L and D."""
    if "paths" not in group:
        return
    table = group["paths"]
    missing = [name for name in PATH_FIELDS_NEEDED if name not in table]
    if missing:
        raise StoreError(f"{where}: path table 'paths/' lacks {missing}; expected {list(PATH_FIELDS_NEEDED)}")
    sizes: dict[str, int] = {}
    for name in table:
        spec = _PATH_FIELDS.get(name)
        if spec is None or not isinstance(table[name], h5py.Dataset):
            raise StoreError(f"{where}: unknown entry 'paths/{name}'; expected {', '.join(_PATH_FIELDS)}")
        data = table[name]
        if data.shape[:1] != (frames,) or not _shape_matches(data.shape[1:], spec.shape, sizes):
            raise StoreError(
                f"{where}: dataset 'paths/{name}' has shape {data.shape}, expected "
                f"(T={frames}, {_describe(spec.shape, sizes)[1:]}"
            )
        if np.dtype(data.dtype) != np.dtype(spec.dtype):
            raise StoreError(f"{where}: dataset 'paths/{name}' has dtype {data.dtype}, expected {spec.dtype}")


def check_values(where: str, group: h5py.Group, num_beams: int, modalities: list[str]) -> None:
    """Labels inside the codebook, time finite and never running backwards, powers a receiver can
    report (NaN marks a flagged beam; -inf a frame without any path, in the noiseless truth only)."""
    t = group["t"][()]
    if not np.isfinite(t).all() or (np.diff(t) < 0).any():
        raise StoreError(f"{where}: dataset 't' must hold finite seconds that never decrease")
    best = group["best_beam"][()]
    outside = (best < 0) | (best >= num_beams)
    if outside.any():
        frame = int(np.flatnonzero(outside)[0])
        raise StoreError(
            f"{where}: dataset 'best_beam' = {int(best[frame])} at frame {frame}: expected a beam in "
            f"[0, {num_beams - 1}]"
        )
    for name in ("rsrp_dbm", "rsrp_noiseless_dbm"):
        if name not in group or (name not in REQUIRED_FIELDS and name not in modalities):
            continue
        values = group[name][()]
        bad = values > MAX_RSRP_DBM
        bad |= np.isneginf(values) if name == "rsrp_dbm" else np.isnan(values)
        if bad.any():
            frame, beam = (int(i[0]) for i in np.nonzero(bad))
            raise StoreError(
                f"{where}: dataset {name!r} = {values[frame, beam]} dBm at frame {frame}, beam {beam}: "
                f"expected a power <= {MAX_RSRP_DBM:g} dBm"
                + (" or NaN (flagged)" if name == "rsrp_dbm" else " or -inf (no path)")
            )

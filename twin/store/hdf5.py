"""The HDF5 episode store: atomic writing with resume, and validated reading.

Writing: each finished run goes to its own part file (`<store>.parts/run-<r>.h5`), written under a
temporary name and renamed, so a killed generation leaves only whole runs behind; resuming skips them.
When every run is there the parts are merged into `<store>.h5` (again via a temporary name) and the
parts are removed. A file without `complete = True` is never read as a dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from twin.errors import StoreError
from twin.store.integrity import check_codebook, check_fields, check_paths, check_values
from twin.store.schema import (
    EPISODE_FIELDS,
    FIELDS_BY_NAME,
    FORMAT_NAME,
    REQUIRED_FIELDS,
    REQUIRED_ROOT_ATTRS,
    SCHEMA_VERSION,
)


@dataclass
class Episode:
    """One drive: per-frame arrays keyed by schema field name, plus groups and attributes."""

    id: str
    data: dict[str, np.ndarray]
    groups: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # e.g. paths/, traffic/
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.data["t"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]


def _create(group: h5py.Group, name: str, array: np.ndarray) -> None:
    """Per-frame chunks; sensor data (images, point clouds, radar cubes) also LZF-compressed."""
    array = np.asarray(array)
    if array.ndim >= 2 and array.nbytes > 1 << 16:
        chunks = (1, *array.shape[1:])
        group.create_dataset(name, data=array, chunks=chunks, compression="lzf")
    else:
        group.create_dataset(name, data=array)


def _write_episode(group: h5py.Group, episode: Episode, shared: Mapping[str, str]) -> None:
    for name, array in episode.data.items():
        _create(group, name, array)
    for name, target in shared.items():  # run-level sensor data, stored once for all of its drives
        group[name] = h5py.SoftLink(target)
    for group_name, arrays in episode.groups.items():
        sub = group.create_group(group_name)
        for name, array in arrays.items():
            sub.create_dataset(name, data=array)
    for key, value in episode.attrs.items():
        group.attrs[key] = value


def _atomic_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def parts_folder(path: Path) -> Path:
    """Where the part files of the store at `path` are written until the merge."""
    return path.with_name(path.name + ".parts")


def part_path(parts: Path, run: int) -> Path:
    return parts / f"run-{run:06d}.h5"


def write_part(
    parts: Path, run: int, episodes: list[Episode], shared: Mapping[str, np.ndarray] | None = None
) -> Path:
    """Write a run's part file atomically (any process, any host sharing `parts`): `shared` arrays
    (base-station sensors) are stored once under `/runs/<run>/` and every episode links to them. The
    temporary name is this attempt's own, so a retried attempt never writes into another's file."""
    final = part_path(parts, run)
    tmp = final.with_name(f"{final.name}.{uuid.uuid4().hex[:12]}.tmp")
    with h5py.File(tmp, "w") as f:
        links = {}
        if shared:
            run_group = f.create_group(f"runs/run{run:05d}")
            for name, array in shared.items():
                _create(run_group, name, array)
                links[name] = f"{run_group.name}/{name}"
        group = f.create_group("episodes")
        for episode in episodes:
            _write_episode(group.create_group(episode.id), episode, links)
        f.attrs["complete"] = True
    os.replace(tmp, final)
    return final


class StoreWriter:
    """Writes a dataset run by run; safe to kill at any moment and to resume."""

    def __init__(self, path: Path, root_attrs: Mapping[str, Any], constants: Mapping[str, np.ndarray]):
        self.path = Path(path)
        self.parts = parts_folder(self.path)
        self.root_attrs = dict(root_attrs)
        self.constants = dict(constants)  # dataset-wide arrays, e.g. codebook/weights
        self.parts.mkdir(parents=True, exist_ok=True)
        for leftover in self.parts.glob("*.tmp"):  # a run killed while being written
            leftover.unlink()

    def _part(self, run: int) -> Path:
        return part_path(self.parts, run)

    def completed_runs(self) -> set[int]:
        done = set()
        for part in self.parts.glob("run-*.h5"):
            try:
                with h5py.File(part, "r") as f:
                    if f.attrs.get("complete", False):
                        done.add(int(part.stem.split("-")[1]))
            except OSError:
                part.unlink()  # unreadable: regenerate it
        return done

    def write_run(
        self, run: int, episodes: list[Episode], shared: Mapping[str, np.ndarray] | None = None
    ) -> None:
        """Write a run's episodes (twin.store.hdf5.write_part)."""
        write_part(self.parts, run, episodes, shared)

    def finalize(self, runs: int | Sequence[int]) -> Path:
        """Merge all run parts (`runs`: their indices, or their count from 0) into the dataset file;
        the parts folder is removed afterwards."""
        runs = list(range(runs)) if isinstance(runs, int) else list(runs)
        missing = sorted(set(runs) - self.completed_runs())
        if missing:
            raise StoreError(f"{self.path}: cannot finalize, runs {missing[:5]} are not written yet")
        tmp = _atomic_path(self.path)
        with h5py.File(tmp, "w") as out:
            for key, value in self.root_attrs.items():
                out.attrs[key] = value
            out.attrs["format"] = FORMAT_NAME
            out.attrs["schema_version"] = SCHEMA_VERSION
            for name, array in self.constants.items():
                out.create_dataset(name, data=array)
            episodes = out.create_group("episodes")
            for run in runs:
                with h5py.File(self._part(run), "r") as part:
                    for run_name in part.get("runs", {}):
                        part.copy(part["runs"][run_name], out.require_group("runs"), name=run_name)
                    for episode_id in sorted(part["episodes"]):
                        # Soft links to /runs/... are copied as links, so sensor data stays single.
                        part.copy(part["episodes"][episode_id], episodes, name=episode_id)
            out.attrs["complete"] = True
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts)
        return self.path


def write_store(
    path: Path, root_attrs: Mapping[str, Any], constants: Mapping[str, np.ndarray], episodes: list[Episode]
) -> Path:
    """Write a whole dataset at once (replay conversion, tests), atomically."""
    writer = StoreWriter(path, root_attrs, constants)
    writer.write_run(0, episodes)
    return writer.finalize(1)


def discard_damaged(path: Path) -> str | None:
    """A cached store that fails validation (truncated, incomplete, not the schema) is deleted so it
    can be built again; returns why, or None when the file is whole. Only for files the cache owns."""
    try:
        TwinStore(path).close()
    except StoreError as exc:
        path.unlink(missing_ok=True)
        return str(exc).removeprefix(f"{path}: ")
    return None


_VALIDATED: set[tuple[str, int, int]] = set()  # (path, mtime, size) of files that passed validation


class TwinStore:
    """Read-only view of a complete, schema-valid store. Use as a context manager or call close()."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"{self.path}: store not found")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(f"{self.path}: not a readable HDF5 file ({exc})") from exc
        stat = self.path.stat()
        identity = (str(self.path.resolve()), stat.st_mtime_ns, stat.st_size)
        if identity in _VALIDATED:  # this very file was validated in this process: do not again
            return
        try:
            self._validate()
        except StoreError:
            self._file.close()
            raise
        _VALIDATED.add(identity)

    def _validate(self) -> None:
        attrs = self._file.attrs
        if attrs.get("format") != FORMAT_NAME:
            raise StoreError(
                f"{self.path}: not a {FORMAT_NAME} file (attribute 'format' is {attrs.get('format')!r})"
            )
        if not attrs.get("complete", False):
            raise StoreError(
                f"{self.path}: store was not completely written; delete it or rerun generation to resume"
            )
        version = int(attrs.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema_version {version}, this code reads version {SCHEMA_VERSION}"
            )
        for key in REQUIRED_ROOT_ATTRS:
            if key not in attrs:
                raise StoreError(f"{self.path}: missing root attribute {key!r}")
        if "episodes" not in self._file or len(self._file["episodes"]) == 0:
            raise StoreError(f"{self.path}: no episodes in group '/episodes'")
        modalities = self.modalities
        unknown = [m for m in modalities if m not in FIELDS_BY_NAME]
        if unknown:
            raise StoreError(f"{self.path}: attribute 'modalities' names unknown fields {unknown}")
        sizes = {"K": int(attrs["num_beams"])}
        if "num_antennas" in attrs:
            sizes["N"] = int(attrs["num_antennas"])
        check_codebook(self.path, self._file, sizes["K"], sizes.get("N"))
        for episode_id, group in self._file["episodes"].items():
            where = f"{self.path}: episode {episode_id!r}"
            frames = check_fields(where, group, (*REQUIRED_FIELDS, *modalities), sizes)
            check_paths(where, group, frames)
            check_values(where, group, sizes["K"], modalities)

    @property
    def attrs(self) -> h5py.AttributeManager:
        return self._file.attrs

    @property
    def modalities(self) -> list[str]:
        return list(json.loads(self._file.attrs["modalities"]))

    @property
    def episode_ids(self) -> list[str]:
        return sorted(self._file["episodes"])

    def constant(self, name: str) -> np.ndarray:
        if name not in self._file:
            raise StoreError(f"{self.path}: missing dataset {name!r}")
        return self._file[name][()]

    def episode(self, episode_id: str, fields: list[str] | None = None) -> Episode:
        if episode_id not in self._file["episodes"]:
            raise StoreError(f"{self.path}: no episode {episode_id!r}")
        group = self._file["episodes"][episode_id]
        names = fields or [f.name for f in EPISODE_FIELDS if f.name in group]
        data = {name: group[name][()] for name in names}
        groups = {
            name: {k: v[()] for k, v in sub.items()}
            for name, sub in group.items()
            if isinstance(sub, h5py.Group) and fields is None
        }
        return Episode(id=episode_id, data=data, groups=groups, attrs=dict(group.attrs))

    def episodes(self) -> Iterator[Episode]:
        for episode_id in self.episode_ids:
            yield self.episode(episode_id)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TwinStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

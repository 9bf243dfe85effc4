"""Sensor observations read from a store, one way for the environment and for training.

A modality's stored field (twin.observations.observed_field: the channel is the episode's csi where
it has one, else h) becomes the observation array the environment's spaces declare: radar cubes and
the channel, complex64, as float32 (..., 2) real/imaginary parts, GPS
with NaN before the first fix zeroed and flagged unusable, LiDAR padding finite. Arrays a run's drives
share (soft links to `/runs/<run>/<field>`) are read and converted once and come back as the same
read-only objects, with the link as their `key`, so a reader downstream can also do its own work
on them once (learners preprocess a run's camera frames once for all of its drives).
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from twin.observations import observed_field


@dataclass(frozen=True)
class SensorArray:
    data: np.ndarray  # (T, ...) observation arrays, read-only
    usable: np.ndarray  # (T,) bool: the stored sample can be used (GPS: a fix exists)
    key: str | None  # the shared link target (`/runs/<run>/<field>`), None when the drive owns the data


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def observation_array(modality: str, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Store field → (observation array, per-frame usable flag), in the dtypes the spaces declare."""
    usable = np.ones(raw.shape[0], bool)
    if modality in ("radar", "channel"):  # complex64 → float32 (..., 2) real/imag (Box spaces are real)
        data = np.ascontiguousarray(raw, np.complex64).view(np.float32).reshape(*raw.shape, 2)
    elif modality == "gps":  # NaN before the first fix: not usable yet
        usable = ~np.isnan(raw).any(axis=1)
        data = np.where(usable[:, None], raw, 0.0).astype(np.float64)
    elif modality == "lidar":
        data = np.nan_to_num(raw.astype(np.float32, copy=False))
    elif modality == "position":
        data = raw.astype(np.float32, copy=False)
    else:
        data = raw
    return _readonly(data), _readonly(usable)


class SensorReader:
    """Observation arrays of the episodes of an open store file, shared arrays converted once."""

    def __init__(self, file: h5py.File):
        self.file = file
        self._shared: dict[tuple[str, str], SensorArray] = {}
        self._counts: dict[str, np.ndarray] = {}

    def _link(self, group: h5py.Group, name: str) -> str | None:
        link = group.get(name, getlink=True)
        return link.path if isinstance(link, h5py.SoftLink) else None

    def read(self, episode_id: str, modality: str, field: str | None = None) -> SensorArray:
        """The modality's observation array, from its field in this episode (or from `field`: a
        learner may read the narrowband h where the store also has csi)."""
        group = self.file["episodes"][episode_id]
        name = field or observed_field(modality, group)
        key = self._link(group, name)
        if key is not None and (modality, key) in self._shared:
            return self._shared[(modality, key)]
        data, usable = observation_array(modality, group[name][()])
        array = SensorArray(data, usable, key)
        if key is not None:
            self._shared[(modality, key)] = array
        return array

    def lidar_count(self, episode_id: str, points: np.ndarray) -> np.ndarray:
        """(T,) LiDAR points in use: the stored count, else the rows that are not zero padding."""
        group = self.file["episodes"][episode_id]
        if "lidar_count" not in group:
            return _readonly(np.count_nonzero(np.any(points != 0, axis=2), axis=1).astype(np.int64))
        key = self._link(group, "lidar_count")
        if key is not None and key in self._counts:
            return self._counts[key]
        count = _readonly(group["lidar_count"][()].astype(np.int64))
        if key is not None:
            self._counts[key] = count
        return count

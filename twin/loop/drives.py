"""A store's drives preloaded into read-only numpy arrays, so replay never reads HDF5 per step.

Works on whatever a store holds: twin stores (channels, path tables, sensors), replayed recordings
without h or paths (the truth then falls back to the measured sweep) and anything in between.
Base-station sensor arrays that several drives share (`/runs/<run>/<field>`, linked from each
episode) are read once. Loaded sets are cached per file and process, and sensor modalities are
loaded on first request, so many environments and policies over one store cost one read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from twin.errors import ConfigError
from twin.observations import OBSERVED_MODALITIES as SENSOR_MODALITIES
from twin.observations import observed_field
from twin.radio.codebook import Codebook, UniformLinearArray
from twin.scenario.config import GeodeticOrigin
from twin.store import TwinStore
from twin.store.deployment import Deployment, codebook_weights, read_deployment
from twin.store.sensors import SensorReader

RSRP_FLOOR_DBM = -300.0  # stands for "no signal" (a frame without paths has RSRP -inf)


@dataclass(frozen=True)
class TwinContext:
    """What a policy may know about the deployment: codebook, base-station pose, radio constants."""

    path: str
    source: str
    num_beams: int
    angles_deg: np.ndarray  # (K,) beam steering angles, angular order
    frame_rate_hz: float
    noise_power_dbm: float
    tx_power_dbm: float
    measurement_noise_db: float
    truth: str  # where true RSRP comes from: "noiseless" (stored), "channel" (from h), "measured"
    sensors: tuple[str, ...]  # observable sensor modalities the store has
    fields: tuple[str, ...]  # every per-frame field the store has
    array: UniformLinearArray | None = None  # None when the store lacks the base-station pose
    weights: np.ndarray | None = None  # (K, N) codebook weights
    geodetic_origin: GeodeticOrigin | None = None
    scenario_yaml: str = ""
    deployment: Deployment | None = None  # the store's root attributes as read (twin.store.deployment)

    @property
    def frame_period_s(self) -> float:
        return 1.0 / self.frame_rate_hz


@dataclass
class Paths:
    """The part of a drive's path table that blockage injection needs."""

    gain: np.ndarray  # (T, L) complex64
    departure: np.ndarray  # (T, L, 3) float32 unit vectors
    is_los: np.ndarray  # (T, L) bool, only valid paths
    valid: np.ndarray  # (T, L) bool


@dataclass
class Drive:
    id: str
    index: int
    t: np.ndarray  # (T,)
    measured_dbm: np.ndarray  # (T, K) what the power detector reported
    true_dbm: np.ndarray  # (T, K) noiseless RSRP (or the measured one when nothing better exists)
    blocked: np.ndarray  # (T,) a traced blocker cuts the line of sight
    h: np.ndarray | None = None  # (T, N)
    paths: Paths | None = None
    ue_pos: np.ndarray | None = None  # (T, 3) local metres
    sensors: dict[str, np.ndarray] = field(default_factory=dict)  # modality → (T, ...) observation arrays
    sensor_ok: dict[str, np.ndarray] = field(default_factory=dict)  # modality → (T,) stored sample usable
    lidar_count: np.ndarray | None = None  # (T,) LiDAR points in use (packed first, zero padding after)
    traffic: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.t)


@dataclass
class ReplaySet:
    context: TwinContext
    drives: list[Drive]

    def ensure(self, modalities: Iterable[str]) -> None:
        """Load the sensor arrays of `modalities` (once) into every drive."""
        missing = [m for m in modalities if m not in self.drives[0].sensors]
        unknown = [m for m in missing if m not in self.context.sensors]
        if unknown:
            raise ConfigError(
                f"modalities = {unknown}: not in store {self.context.path}; it has "
                f"{', '.join(self.context.sensors) or 'no sensor modalities'}"
            )
        if missing:
            _load_sensors(self, missing)


_CACHE: dict[tuple[str, int, int], ReplaySet] = {}


def load_drives(path: str | Path, modalities: Iterable[str] = ()) -> ReplaySet:
    """The drives of a store, cached per file; `modalities` are sensor arrays to load as well."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"store = {str(path)!r}: file not found")
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        _CACHE[key] = _load(path)
    replay = _CACHE[key]
    replay.ensure(modalities)
    return replay


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _context(store: TwinStore) -> TwinContext:
    deployment = read_deployment(store)
    weights = codebook_weights(store)
    fields = tuple(store.modalities)
    if "rsrp_noiseless_dbm" in fields:
        truth = "noiseless"
    elif "h" in fields and weights is not None:
        truth = "channel"
    else:
        truth = "measured"
    return TwinContext(
        path=str(store.path),
        source=str(store.attrs["source"]),
        num_beams=deployment.num_beams,
        angles_deg=_readonly(deployment.angles),
        frame_rate_hz=deployment.frame_rate_hz,
        noise_power_dbm=deployment.noise_power_dbm,
        tx_power_dbm=deployment.tx_power_dbm,
        measurement_noise_db=deployment.measurement_noise_db,
        truth=truth,
        sensors=tuple(m for m in SENSOR_MODALITIES if observed_field(m, fields) in fields),
        fields=fields,
        array=deployment.array,
        weights=weights,
        geodetic_origin=deployment.origin,
        scenario_yaml=str(store.attrs.get("scenario_yaml", "")),
        deployment=deployment,
    )


def _load(path: Path) -> ReplaySet:
    with TwinStore(path) as store:  # validates the schema; refuses half-written files
        context = _context(store)
        ids = store.episode_ids
    drives = []
    with h5py.File(path, "r") as f:
        for index, episode_id in enumerate(ids):
            drives.append(_drive(f["episodes"][episode_id], episode_id, index, context))
    return ReplaySet(context, drives)


def _drive(group: h5py.Group, episode_id: str, index: int, context: TwinContext) -> Drive:
    def read(name: str) -> np.ndarray | None:
        return _readonly(group[name][()]) if name in context.fields or name in group else None

    measured = read("rsrp_dbm")
    h = read("h") if "h" in context.fields else None
    if context.truth == "noiseless":
        true = read("rsrp_noiseless_dbm")
    elif context.truth == "channel":
        true = _readonly(Codebook(np.deg2rad(context.angles_deg), context.weights).beamforming_gain(h))
        true = _readonly((context.tx_power_dbm + 10 * np.log10(np.maximum(true, 1e-30))).astype(np.float32))
    else:
        true = measured
    if not np.isfinite(true).all():  # a frame without any path has RSRP -inf: floor it
        true = _readonly(
            np.maximum(np.nan_to_num(true, nan=RSRP_FLOOR_DBM), RSRP_FLOOR_DBM).astype(np.float32)
        )
    frames = len(group["t"])
    blocked = read("blocked") if "blocked" in context.fields else np.zeros(frames, bool)
    paths = None
    if "paths" in group:
        p = group["paths"]
        valid = p["valid"][()]
        paths = Paths(
            gain=_readonly(np.where(valid, p["gain"][()], 0).astype(np.complex64)),
            departure=_readonly(p["departure"][()].astype(np.float32)),
            is_los=_readonly(p["is_los"][()] & valid),
            valid=_readonly(valid),
        )
    traffic = {k: v[()] for k, v in group["traffic"].items()} if "traffic" in group else {}
    return Drive(
        id=episode_id,
        index=index,
        t=read("t"),
        measured_dbm=measured,
        true_dbm=true,
        blocked=_readonly(np.asarray(blocked, bool)),
        h=h,
        paths=paths,
        ue_pos=read("ue_pos") if "ue_pos" in context.fields else None,
        traffic=traffic,
        attrs=dict(group.attrs),
    )


def _load_sensors(replay: ReplaySet, modalities: list[str]) -> None:
    with h5py.File(replay.context.path, "r") as f:
        reader = SensorReader(f)
        for drive in replay.drives:
            for modality in modalities:
                array = reader.read(drive.id, modality)
                drive.sensors[modality], drive.sensor_ok[modality] = array.data, array.usable
                if modality == "lidar":
                    drive.lidar_count = reader.lidar_count(drive.id, array.data)

"""Windows of frames from a store as torch tensors with per-modality masks.

A sample is anchored at frame t of a drive, the frame whose beam is served, and mirrors what a policy
sees in the environment at that frame:
- sensor inputs (camera, LiDAR, radar, GPS) of frames t−H+1 … t; with `future_sensors` also those
  of frames t+1 … t+F−1, apart (`future_inputs`, `future_masks`), as targets for models that predict
  future representations: a deployed policy never sees them;
- the RF history of frames t−H … t−1 (the feedback lags one frame): `beams`, the beam served, and
  `beam_rsrp`, its normalised RSRP. Offline the served beam is the frame's best beam, perturbed at
  random while training (`served_noise`) so that a model also learns from feedback on a wrong beam,
  as it will get in closed loop;
- targets: the best beams of frames t … t+F−1, their masks (frames past the drive's end are masked)
  and the normalised RSRP sweeps of those frames; `labels` of those frames for task heads (WMFM):
  `los` (LoS path present), `x` (the UE's position along the street, m), `lane` (its lane index)
  and `kind` (index of its vehicle kind in VEHICLE_KINDS, −1 when unknown).
Frames before the drive's start are zero with mask 0, so windows exist from the first frame on.

Sample layout (batched by the default collate into (B, ...) tensors):
    {"inputs": {name: (H, ...) float32 | (H,) int64}, "masks": {name: (H,) bool},
     "target": (F,) int64, "target_mask": (F,) bool, "target_rsrp": (F, K) float32,
     "labels": {name: (F,)}, "drive": int, "frame": int[, "future_inputs": {name: (F−1, ...)},
     "future_masks": {...}]}

Drives are split into training and validation by *run* (drives of a twin run share the base
station's camera, LiDAR and radar frames, so splitting them would leak scenes) or by drive; never by
frame, since neighbouring frames are nearly identical.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from learners.preprocess import (
    SENSOR_INPUTS,
    PreprocessConfig,
    Preprocessor,
    input_source,
    rsrp_normalised,
)
from twin.errors import ConfigError
from twin.observations import CHANNEL, OBSERVED_FIELD, observed_field
from twin.store import TwinStore
from twin.store.deployment import Deployment, read_deployment
from twin.store.sensors import SensorReader
from twin.validation import between, build, one_of, spec, to_dict

VEHICLE_KINDS = ("car", "van", "bus")  # the twin's vehicle kinds (twin.scenario.config), class order
RF_INPUT = "beams"  # the RF history input; its values ride along as inputs["beam_rsrp"]
INPUTS = (*SENSOR_INPUTS, RF_INPUT)


@dataclass(frozen=True)
class DataConfig:
    history: int = spec(5, check=between(1, 1000))  # H frames of inputs (DeepSense challenge: 5)
    future: int = spec(1, check=between(1, 1000))  # F target frames from the anchor on (1: current)
    future_sensors: bool = spec(False)  # also return sensor inputs of the future frames
    stride: int = spec(1, check=between(1, 1000))  # anchors every `stride` frames
    label: str = spec("true", check=one_of("true", "measured"))  # argmax of noiseless or measured RSRP
    split_by: str = spec("run", check=one_of("run", "drive"))
    val_fraction: float = spec(0.2, check=between(0, 0.9))
    served_noise: float = spec(0.3, check=between(0, 1))  # training: share of history beams perturbed
    served_noise_beams: int = spec(3, check=between(0, 1000))  # perturbation up to ± this many beams

    def to_json(self) -> dict[str, Any]:
        return to_dict(self)


def data_config(data: dict[str, Any] | DataConfig | None, prefix: str = "data") -> DataConfig:
    if isinstance(data, DataConfig):
        return data
    return build(DataConfig, dict(data or {}), prefix)


@dataclass
class DriveFrames:
    """One drive, preprocessed: per-frame inputs and masks (shared arrays reused across a run)."""

    id: str
    group: str  # split unit: the run (drives sharing sensor frames) or the drive itself
    inputs: dict[str, np.ndarray]  # name → (T, ...) float32
    masks: dict[str, np.ndarray]  # name → (T,) bool
    best: np.ndarray  # (T,) int64 label beam
    rsrp: np.ndarray  # (T, K) float32 normalised measured RSRP (feedback of any beam)
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # per frame: los, x, lane, kind

    @property
    def num_frames(self) -> int:
        return len(self.best)


@dataclass
class FrameSet:
    """A store's drives, preprocessed for a set of model inputs."""

    path: str
    deployment: Deployment
    drives: list[DriveFrames]
    inputs: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def split(self, config: DataConfig, seed: int) -> tuple[list[int], list[int]]:
        return split_drives(self.drives, config.val_fraction, seed, config.split_by)


def _labels(rsrp_true: np.ndarray, rsrp_measured: np.ndarray) -> np.ndarray:
    """argmax per frame; frames without any finite truth (no path at all) fall back to the measurement."""
    finite = np.isfinite(rsrp_true).any(axis=1)
    truth = np.where(np.isfinite(rsrp_true), rsrp_true, -np.inf)
    return np.where(finite, np.argmax(truth, axis=1), np.argmax(rsrp_measured, axis=1)).astype(np.int64)


def load_frames(
    path: str | Path, inputs: Sequence[str], preprocess: PreprocessConfig, label: str = "true"
) -> FrameSet:
    """Read and preprocess every drive of a store for `inputs` (sensor arrays a run shares are read
    and preprocessed once)."""
    unknown = [name for name in inputs if name not in INPUTS]
    if unknown:
        raise ConfigError(f"model inputs {unknown}: unknown; available: {', '.join(INPUTS)}")
    with TwinStore(path) as store:  # validates the schema; refuses half-written files
        deployment = read_deployment(store)
        fields = set(store.modalities)
        ids = store.episode_ids
    preprocessor = Preprocessor(preprocess, deployment)
    sources = input_fields(inputs, preprocess, fields)
    missing = [f"{n} (field {s!r})" for n, s in sources.items() if s not in fields]
    if missing:
        raise ConfigError(
            f"store {path}: has no {', '.join(missing)}; its fields: {', '.join(sorted(fields))}"
        )
    truth = "rsrp_noiseless_dbm" if label == "true" and "rsrp_noiseless_dbm" in fields else "rsrp_dbm"
    drives = []
    with h5py.File(path, "r") as f:
        reader = _SensorReader(f, preprocessor, sources)
        for episode_id in ids:
            group = f["episodes"][episode_id]
            measured = group["rsrp_dbm"][()]
            run = group.attrs.get("run")
            arrays, masks = reader(episode_id)
            drives.append(
                DriveFrames(
                    id=episode_id,
                    group=f"run{int(run)}" if run is not None else episode_id,
                    inputs=arrays,
                    masks=masks,
                    best=_labels(group[truth][()], measured),
                    rsrp=rsrp_normalised(measured, deployment.noise_power_dbm, preprocess),
                    labels=_task_labels(group, len(measured)),
                )
            )
    shapes = {name: preprocessor.shape(name) for name in sources}
    return FrameSet(str(path), deployment, drives, tuple(inputs), shapes)


def _task_labels(group: h5py.Group, frames: int) -> dict[str, np.ndarray]:
    """Per-frame labels of the task heads, those the episode has (twin stores have all four)."""
    out: dict[str, np.ndarray] = {}
    if "los" in group:
        out["los"] = group["los"][()].astype(np.int64)
    if "ue_pos" in group:
        out["x"] = group["ue_pos"][:, 0].astype(np.float32)
    if "lane" in group.attrs:
        out["lane"] = np.full(frames, int(group.attrs["lane"]), np.int64)
    if "kind" in group.attrs:
        kind = str(group.attrs["kind"])
        out["kind"] = np.full(frames, VEHICLE_KINDS.index(kind) if kind in VEHICLE_KINDS else -1, np.int64)
    return out


def input_fields(
    inputs: Sequence[str], preprocess: PreprocessConfig, fields: Container[str] = ()
) -> dict[str, str]:
    """Sensor input → the store field it is computed from in a store holding `fields` (the
    environment reads the same ones): the channel is the csi where there is one, unless
    `channel_field=h`."""
    out = {}
    for name in inputs:
        if name not in SENSOR_INPUTS:
            continue
        source = input_source(name, preprocess)
        narrowband = source == CHANNEL and preprocess.channel_field == "h"
        out[name] = OBSERVED_FIELD[source] if narrowband else observed_field(source, fields)
    return out


class _SensorReader:
    """Preprocessed sensor inputs of one episode, from the observation arrays the environment reads
    (twin.store.sensors); arrays linked from a run are preprocessed once."""

    def __init__(self, file: h5py.File, preprocessor: Preprocessor, fields: dict[str, str]):
        self.observations = SensorReader(file)
        self.preprocessor = preprocessor
        self.fields = fields  # input → the store field it is read from
        self.shared: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, episode_id: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        arrays, masks = {}, {}
        for name, field_name in self.fields.items():
            observed = self.observations.read(episode_id, self.preprocessor.source(name), field_name)
            key = None if observed.key is None else (name, observed.key)
            if key is None or key not in self.shared:
                frames = self.preprocessor.frames(name, observed.data)
                frames[~observed.usable] = 0  # e.g. GPS before the first fix: zeros, mask 0
                if key is None:
                    arrays[name], masks[name] = frames, observed.usable
                    continue
                self.shared[key] = (frames, observed.usable)
            arrays[name], masks[name] = self.shared[key]
        return arrays, masks


def split_drives(
    drives: Sequence[DriveFrames], val_fraction: float, seed: int, by: str = "run"
) -> tuple[list[int], list[int]]:
    """Indices of training and validation drives; whole groups (runs or drives) go to one side."""
    groups = sorted({d.group if by == "run" else d.id for d in drives})
    order = np.random.default_rng(seed).permutation(len(groups))
    count = math.ceil(val_fraction * len(groups)) if val_fraction > 0 and len(groups) > 1 else 0
    count = min(count, len(groups) - 1)
    held_out = {groups[i] for i in order[:count]}
    key = (lambda d: d.group) if by == "run" else (lambda d: d.id)
    train = [i for i, d in enumerate(drives) if key(d) not in held_out]
    val = [i for i, d in enumerate(drives) if key(d) in held_out]
    return train, val


def _frames(anchor: int, start: int, count: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices anchor+start … anchor+start+count−1, clipped into the drive, and which are real."""
    index = np.arange(anchor + start, anchor + start + count)
    valid = (index >= 0) & (index < length)
    return np.clip(index, 0, length - 1), valid


class WindowDataset(Dataset):
    """Every (drive, anchor frame) window of the chosen drives."""

    def __init__(
        self,
        frames: FrameSet,
        drives: Sequence[int],
        config: DataConfig,
        training: bool = False,
        seed: int = 0,
        share: float = 1.0,
    ):
        self.frames = frames
        self.config = config
        self.training = training
        self.rng = np.random.default_rng(seed)
        self.items = [(d, t) for d in drives for t in range(0, frames.drives[d].num_frames, config.stride)]
        if share < 1:  # a seeded subset of the windows, e.g. the labelled share of a label-efficiency run
            count = max(1, math.ceil(share * len(self.items)))
            keep = np.random.default_rng([seed, 31]).permutation(len(self.items))[:count]
            self.items = [self.items[i] for i in sorted(keep.tolist())]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        d, t = self.items[i]
        drive = self.frames.drives[d]
        c, length = self.config, drive.num_frames
        inputs, masks = self.sensor_window(drive, t + 1 - c.history, c.history)
        sample: dict[str, Any] = {}
        if c.future_sensors:  # frames t+1 … t+F−1, kept apart so no model reads them as inputs
            sample["future_inputs"], sample["future_masks"] = self.sensor_window(drive, t + 1, c.future - 1)
        if RF_INPUT in self.frames.inputs:
            beams, beam_rsrp, mask = self.rf_history(drive, t)
            inputs[RF_INPUT] = torch.from_numpy(beams)
            inputs["beam_rsrp"] = torch.from_numpy(beam_rsrp)
            masks[RF_INPUT] = torch.from_numpy(mask)
        target_index, target_valid = _frames(t, 0, c.future, length)
        labels = {k: torch.from_numpy(v[target_index]) for k, v in drive.labels.items()}
        return {
            **sample,
            "inputs": inputs,
            "masks": masks,
            "target": torch.from_numpy(drive.best[target_index]),
            "target_mask": torch.from_numpy(target_valid),
            "target_rsrp": torch.from_numpy(drive.rsrp[target_index]),
            **({"labels": labels} if labels else {}),
            "drive": d,
            "frame": t,
        }

    def sensor_window(
        self, drive: DriveFrames, first: int, count: int, names: Sequence[str] | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Sensor inputs (all, or `names`) of frames first … first+count−1 (zeros, mask 0, outside the
        drive)."""
        index, valid = _frames(first, 0, count, drive.num_frames)
        inputs, masks = {}, {}
        for name in self.frames.inputs if names is None else names:
            if name == RF_INPUT:
                continue
            mask = valid & drive.masks[name][index]
            values = drive.inputs[name][index] * mask.reshape(-1, *[1] * (drive.inputs[name].ndim - 1))
            inputs[name] = torch.from_numpy(values.astype(np.float32, copy=False))
            masks[name] = torch.from_numpy(mask)
        return inputs, masks

    def rf_history(self, drive: DriveFrames, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beams served in frames t−H … t−1 and their normalised RSRP feedback, with masks."""
        c = self.config
        index, valid = _frames(t, -c.history, c.history, drive.num_frames)
        beams = drive.best[index].copy()
        if self.training and c.served_noise > 0 and c.served_noise_beams > 0:
            perturb = self.rng.random(len(beams)) < c.served_noise
            offsets = self.rng.integers(-c.served_noise_beams, c.served_noise_beams + 1, len(beams))
            beams = np.where(perturb, np.clip(beams + offsets, 0, drive.rsrp.shape[1] - 1), beams)
        beam_rsrp = drive.rsrp[index, beams]
        return (
            np.where(valid, beams, 0).astype(np.int64),
            np.where(valid, beam_rsrp, 0).astype(np.float32),
            valid,
        )


class UnpairedWindowDataset(WindowDataset):
    """Windows whose sensor inputs are never aligned: sample i takes each sensor input from another
    window (`sources[name][i]`), the k-th input from position (j + k·n/M) mod n of one seeded
    permutation, so no two inputs of a sample share a window. It stands in for unimodal data
    recorded apart (VI-PoE's Stage I); it carries no targets and no RF history."""

    def __init__(self, frames: FrameSet, drives: Sequence[int], config: DataConfig, seed: int = 0):
        super().__init__(frames, drives, config, training=False, seed=seed)
        sensors = [n for n in frames.inputs if n != RF_INPUT]
        n = len(self.items)
        order = np.random.default_rng(seed).permutation(n)
        shift = max(n // max(len(sensors), 1), 1)
        self.sources = {
            name: order[(np.arange(n) + k * shift) % n] if n else order for k, name in enumerate(sensors)
        }

    def __getitem__(self, i: int) -> dict[str, Any]:
        inputs, masks = {}, {}
        for name, source in self.sources.items():
            d, t = self.items[int(source[i])]
            history = self.config.history
            window, window_masks = self.sensor_window(self.frames.drives[d], t + 1 - history, history, [name])
            inputs[name], masks[name] = window[name], window_masks[name]
        return {"inputs": inputs, "masks": masks, "source": {n: int(s[i]) for n, s in self.sources.items()}}

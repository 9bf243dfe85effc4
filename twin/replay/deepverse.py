"""DeepVerse 6G scenario folders → the sample schema: ray-traced paths → channel → codebook RSRP.

Supported layout: the one the `deepverse` Python package (DeepVerse6G-python, 2024–25, whose
`ScenarioManager` reads `scenario.yaml` and whose `RayTracingLoader` reads `wireless/`) expects under
`<dataset_folder>/<scenario>/`:

    scenario.yaml  (or param/scenario.yaml)   modalities: [{name, path, sensors: [{id, ...}]}, ...]
    wireless/params.mat                       carrier_freq [Hz], transmit_power [dBm], ...
    wireless/scene_<s>/BS<b>_UE_<first>-<last>.mat
        channels  1 x U cell, each a struct whose first field is the 8 (or 10) x L path matrix:
                  phase [deg], ToA [s], received power [dBm], DoA phi, DoA theta, DoD phi, DoD theta
                  [deg; theta from the zenith], LoS flag (, Doppler velocity, acceleration)
        rx_locs   U x 5: x, y, z [m], distance, path loss;   tx_loc  (3,) (else from BS<b>_BS.mat)
    <camera path>/<sensor id>/<s>.jpg|png, <LiDAR path>/<sensor id>/<s>.ply|pcd (optional)

Not supported: the MATLAB generator's older `.params.mat` + `DoD/DoA/CIR.mat` layout, radar (DeepVerse
synthesises it in its generator from radar ray tracing) and mobility `.mat` files.

Conversion: frame s of UE u is scene s (scenes at `frame_rate_hz`); a drive is one UE index over
consecutive scenes (DeepVerse keeps a UE's index across the scenes of a dynamic scenario). Path
gains sqrt(10^((P_l − P_tx)/10))·e^{jφ_l} feed the base station's ULA (`num_elements`,
`spacing_wavelengths`, boresight `bs_yaw_deg`, or aimed at the UEs' mean bearing) along the DoD,
so `RSRP_k = P_tx + 10 log10 |hᴴ w_k|²` exactly as in the twin (`twin.radio.codebook`), with the same
thermal noise and detector error for `rsrp_dbm`. The path table is stored, so injected blockage
cuts paths as on twin data. Camera and LiDAR files of the first sensor listed are read per scene.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from twin.radio.codebook import (
    Codebook,
    UniformLinearArray,
    measure_rsrp_dbm,
    noise_power_dbm,
    rsrp_noiseless_dbm,
)
from twin.replay.config import ReplayConfig
from twin.replay.formats import (
    BadFile,
    ReplayError,
    file_number,
    point_count,
    read_image,
    read_points,
    resolve,
)
from twin.replay.recording import Recording, Skips, frame_buffer, segments, select
from twin.store import Episode
from twin.validation import to_dict

PATH_ROWS = (8, 10)  # without / with Doppler rows


def _loadmat(path: Path) -> dict[str, Any]:
    try:
        from scipy.io import loadmat  # scipy comes with sionna-rt
        from scipy.io.matlab import MatReadError
    except ImportError:  # pragma: no cover - sionna-rt depends on scipy
        raise ReplayError(f"{path}: reading DeepVerse .mat files needs scipy (pip install scipy)") from None
    if not path.is_file():
        raise BadFile(f"{path}: file not found")
    try:
        return loadmat(path)
    except (MatReadError, OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise BadFile(f"{path}: not a readable MATLAB file ({exc})") from None


def _unwrap(value: Any) -> np.ndarray:
    """The numeric matrix inside MATLAB cell/struct wrappers (first field, first element)."""
    for _ in range(10):
        if isinstance(value, np.void):
            value = value[0]
            continue
        array = np.asarray(value)
        if array.dtype.names:
            value = array.reshape(-1)[0]
        elif array.dtype == object:
            value = array.reshape(-1)[0] if array.size else np.zeros((PATH_ROWS[0], 0))
        else:
            return array.astype(np.float64)
    raise ValueError("nested too deeply")


def _scenario_yaml(folder: Path) -> dict[str, Any]:
    for candidate in (folder / "scenario.yaml", folder / "param" / "scenario.yaml"):
        if candidate.is_file():
            try:
                data = yaml.safe_load(candidate.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ReplayError(f"{candidate}: not valid YAML ({exc})") from None
            if not isinstance(data, dict) or not isinstance(data.get("modalities", []), list):
                raise ReplayError(f"{candidate}: expected a mapping with a list 'modalities'")
            return data
    raise ReplayError(
        f"{folder}: not a DeepVerse scenario folder; expected scenario.yaml (or param/scenario.yaml)"
    )


def _sensor_files(root: Path, folder: Path, meta: dict[str, Any], names: tuple[str, ...]) -> dict[int, Path]:
    """Scene number → file of the first sensor of the first modality called one of `names`."""
    for i, modality in enumerate(meta.get("modalities", [])):
        if str(modality.get("name", "")).lower() not in names:
            continue
        sensors = modality.get("sensors") or []
        if not sensors or "path" not in modality:
            return {}
        where = f"scenario.yaml modalities[{i}]"
        directory = resolve(root, folder, f"{modality['path']}/{sensors[0]['id']}", where)
        if not directory.is_dir():
            return {}
        files = {}
        inside = root.resolve()
        for path in sorted(directory.rglob("*")):
            number = file_number(path)
            if number is not None and path.is_file() and path.resolve().is_relative_to(inside):
                files.setdefault(number, path)
        return files
    return {}


@dataclass
class _Scene:
    number: int
    gains: list[np.ndarray]  # per UE (L,) complex, relative to the transmit power
    delays: list[np.ndarray]
    departures: list[np.ndarray]  # per UE (L, 3)
    los: list[np.ndarray]  # per UE (L,) bool
    ue_pos: np.ndarray  # (U, 3)
    ue_ids: np.ndarray  # (U,) global UE index
    tx_pos: np.ndarray  # (3,)


def _read_scene(folder: Path, number: int, basestation: int, tx_power_dbm: float) -> _Scene:
    pattern = re.compile(rf"^BS{basestation}_UE_(\d+)-(\d+)\.mat$")
    files = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name)))
    if not files:
        raise BadFile(f"{folder}: no BS{basestation}_UE_<first>-<last>.mat file")
    scene = _Scene(number, [], [], [], [], np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(3))
    positions, ids, tx = [], [], None
    for first, path in files:
        data = _loadmat(path)
        if "channels" not in data or "rx_locs" not in data:
            raise BadFile(f"{path}: expected variables 'channels' and 'rx_locs'")
        cells = np.asarray(data["channels"], dtype=object).reshape(-1)
        locs = np.asarray(data["rx_locs"], np.float64).reshape(len(cells), -1)
        for u, cell in enumerate(cells):
            try:
                matrix = _unwrap(cell)
            except ValueError:
                raise BadFile(f"{path}: channels[{u}] holds no path matrix") from None
            if matrix.size == 0:
                matrix = np.zeros((PATH_ROWS[0], 0))
            if matrix.ndim != 2 or matrix.shape[0] not in PATH_ROWS:
                raise BadFile(f"{path}: channels[{u}] has shape {matrix.shape}, expected (8 or 10, paths)")
            phase, toa, power, _, _, phi, theta, los = matrix[:8]
            amplitude = np.sqrt(10 ** ((power - tx_power_dbm) / 10))
            scene.gains.append(amplitude * np.exp(1j * np.deg2rad(phase)))
            scene.delays.append(toa)
            phi, theta = np.deg2rad(phi), np.deg2rad(theta)
            scene.departures.append(
                np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
            )
            scene.los.append(los > 0.5)
        positions.append(locs[:, :3])
        ids.append(first + np.arange(len(cells)))
        if tx is None and "tx_loc" in data:
            tx = np.asarray(data["tx_loc"], np.float64).reshape(-1)[:3]
    if tx is None:
        bs = _loadmat(folder / f"BS{basestation}_BS.mat")
        tx = np.asarray(bs["rx_locs"], np.float64)[basestation - 1, :3]
    scene.ue_pos, scene.ue_ids, scene.tx_pos = np.concatenate(positions), np.concatenate(ids), tx
    return scene


def load(root: Path, folder: Path, config: ReplayConfig) -> Recording:
    meta = _scenario_yaml(folder)
    wireless = folder / "wireless"
    params = _loadmat(wireless / "params.mat")
    try:
        carrier = float(np.asarray(params["carrier_freq"]).reshape(-1)[0])
        tx_power = float(np.asarray(params["transmit_power"]).reshape(-1)[0])
    except (KeyError, IndexError):
        raise ReplayError(
            f"{wireless / 'params.mat'}: expected 'carrier_freq' and 'transmit_power'"
        ) from None
    numbered = [(int(p.name.split("_")[1]), p) for p in wireless.glob("scene_*") if p.name[6:].isdigit()]
    if not numbered:
        raise ReplayError(f"{wireless}: no scene_<s> folders")
    numbered = select(sorted(numbered), config.offset, config.limit, str(wireless))
    skips = Skips(config.skip_bad_files)
    scenes = [
        s
        for n, p in numbered
        if (s := skips.attempt(lambda n=n, p=p: _read_scene(p, n, config.basestation, tx_power)))
    ]
    if not scenes:
        raise ReplayError(f"{wireless}: no scene left to convert")
    sensor_files = {
        "camera": _sensor_files(root, folder, meta, ("camera", "rgb", "rgb_images")),
        "lidar": _sensor_files(root, folder, meta, ("lidar",)),
    }
    modalities = [
        m
        for m, files in sensor_files.items()
        if m in config.modalities and all(s.number in files for s in scenes)
    ]
    tx_pos = scenes[0].tx_pos
    yaw = config.bs_yaw_deg
    if yaw is None:  # aim the sector at the UEs: the mean bearing of every UE position seen
        d = np.concatenate([s.ue_pos for s in scenes])[:, :2] - tx_pos[:2]
        yaw = float(np.rad2deg(np.angle(np.exp(1j * np.arctan2(d[:, 1], d[:, 0])).mean()))) if len(d) else 0.0
    array = UniformLinearArray(
        config.num_elements, config.spacing_wavelengths, tx_pos, float(np.deg2rad(yaw))
    )
    codebook = Codebook.steering(array, config.num_beams, *config.codebook_deg)
    noise = noise_power_dbm(config.bandwidth_hz, config.noise_figure_db)
    fields = ["ue_pos", "h", "rsrp_noiseless_dbm", "los", *modalities]
    lidar_points = config.lidar_max_points
    if "lidar" in modalities:  # one cloud size for the whole store (the environment's space is fixed)
        fields.append("lidar_count")
        if not lidar_points:
            counts = [skips.attempt(lambda s=s: point_count(sensor_files["lidar"][s.number])) for s in scenes]
            lidar_points = max([c for c in counts if c is not None], default=1)
    attrs: dict[str, Any] = {
        "source": "deepverse",
        "dataset_root": str(root.resolve()),
        "scenario_name": folder.name,
        "carrier_hz": carrier,
        "bandwidth_hz": config.bandwidth_hz,
        "noise_figure_db": config.noise_figure_db,
        "noise_power_dbm": noise,
        "tx_power_dbm": tx_power,
        "measurement_noise_db": config.measurement_noise_db,
        "frame_rate_hz": config.frame_rate_hz,
        "num_beams": config.num_beams,
        "num_antennas": config.num_elements,
        "array_spacing_wavelengths": config.spacing_wavelengths,
        "array_pattern": "iso",
        "bs_position_m": tx_pos,
        "bs_yaw_deg": yaw,
        "bs_yaw_source": "configured" if config.bs_yaw_deg is not None else "aimed at the UEs' mean bearing",
        "h_convention": "uplink UE->BS element n (reciprocal); RSRP_k = P_tx + 10 log10 |h^H w_k|^2",
        "modalities": json.dumps(fields),
        "replay_config": json.dumps(to_dict(config)),
    }
    if "camera" in modalities:
        attrs["camera_resolution"] = np.array(config.resolution)
    constants = {"codebook/angles_deg": np.rad2deg(codebook.angles_rad), "codebook/weights": codebook.weights}
    drives = _drives(scenes, config.max_drive_frames)
    context = _Context(
        config, array, codebook, noise, tx_power, sensor_files, modalities, lidar_points, skips
    )

    def episodes() -> Iterator[Episode]:
        for k, (ue, frames) in enumerate(drives):
            episode = context.episode(k, ue, [scenes[i] for i in frames])
            if episode is not None:
                yield episode
        attrs.update(skips.attrs())

    attrs.update(skips.attrs())
    return Recording(name=folder.name, attrs=attrs, constants=constants, episodes=episodes)


def _drives(scenes: list[_Scene], max_frames: int) -> list[tuple[int, np.ndarray]]:
    """(UE index, positions in `scenes`) per drive: a UE over consecutive scene numbers."""
    ues = sorted({int(u) for s in scenes for u in s.ue_ids})
    out = []
    for ue in ues:
        present = np.array([i for i, s in enumerate(scenes) if ue in s.ue_ids])
        numbers = np.array([scenes[i].number for i in present])
        out += [(ue, present[rows]) for rows in segments(numbers, None, True, max_frames)]
    return out


@dataclass
class _Context:
    config: ReplayConfig
    array: UniformLinearArray
    codebook: Codebook
    noise_dbm: float
    tx_power_dbm: float
    sensor_files: dict[str, dict[int, Path]]
    modalities: list[str]
    lidar_points: int
    skips: Skips

    def episode(self, number: int, ue: int, scenes: list[_Scene]) -> Episode | None:
        cfg = self.config
        slots = [int(np.flatnonzero(s.ue_ids == ue)[0]) for s in scenes]
        width = max(1, *(len(s.gains[j]) for s, j in zip(scenes, slots)))
        frames = len(scenes)
        gain = np.zeros((frames, width), np.complex64)
        delay = np.zeros((frames, width), np.float32)
        departure = np.zeros((frames, width, 3), np.float32)
        is_los = np.zeros((frames, width), bool)
        valid = np.zeros((frames, width), bool)
        for f, (s, j) in enumerate(zip(scenes, slots)):
            n = len(s.gains[j])
            gain[f, :n], delay[f, :n], departure[f, :n] = s.gains[j], s.delays[j], s.departures[j]
            is_los[f, :n], valid[f, :n] = s.los[j], True
        steering = self.array.steering(self.array.sin_angle(departure.astype(np.float64)))
        h = np.einsum("fl,fln->fn", gain.astype(np.complex128), steering).astype(np.complex64)
        true = rsrp_noiseless_dbm(h, self.codebook, self.tx_power_dbm)
        rng = np.random.default_rng([cfg.seed, ue, number, 1])
        measured = measure_rsrp_dbm(true, self.noise_dbm, cfg.measurement_noise_db, rng)
        data = {
            "t": np.array([s.number - scenes[0].number for s in scenes], np.float64) / cfg.frame_rate_hz,
            "ue_pos": np.array([s.ue_pos[j] for s, j in zip(scenes, slots)], np.float32),
            "h": h,
            "rsrp_dbm": measured.astype(np.float32),
            "rsrp_noiseless_dbm": true.astype(np.float32),
            "best_beam": np.argmax(measured, axis=-1).astype(np.int16),
            "los": (is_los & valid).any(axis=1),
        }
        keep = np.ones(frames, bool)
        if "camera" in self.modalities:
            width_px, height_px = cfg.resolution
            camera = frame_buffer((frames, height_px, width_px, 3), np.uint8)
            for f, s in enumerate(scenes):
                image = self.skips.attempt(
                    lambda s=s: read_image(self.sensor_files["camera"][s.number], cfg.resolution)
                )
                keep[f] &= image is not None
                if image is not None:
                    camera[f] = image
            data["camera"] = camera
        if "lidar" in self.modalities:
            clouds = [
                self.skips.attempt(lambda s=s: read_points(self.sensor_files["lidar"][s.number]))
                for s in scenes
            ]
            keep &= np.array([c is not None for c in clouds])
            size = self.lidar_points
            lidar = np.zeros((frames, size, 4), np.float32)
            count = np.zeros(frames, np.int32)
            for f, cloud in enumerate(clouds):
                if cloud is not None:
                    count[f] = min(len(cloud), size)
                    lidar[f, : count[f]] = cloud[:size]
            data["lidar"], data["lidar_count"] = lidar, count
        if not keep.any():
            return None
        data = {k: v[keep] for k, v in data.items()}
        data["t"] = data["t"] - data["t"][0]
        paths = {"gain": gain, "delay_s": delay, "departure": departure, "is_los": is_los, "valid": valid}
        return Episode(
            id=f"ue{ue:04d}-d{number:04d}",
            data=data,
            groups={"paths": {k: v[keep] for k, v in paths.items()}},
            attrs={"ue": ue, "first_scene": scenes[0].number, "drive": number},
        )

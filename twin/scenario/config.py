"""Typed scenario configuration: what a scenario YAML may say, with defaults and validated ranges.

Coordinates are local metres: x along the street, y across it, z up; the origin is the street centre
below the base station, tied to the world through `geodetic_origin`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from twin.errors import ConfigError
from twin.scenario.faults import FaultsConfig
from twin.scenario.materials import check_material
from twin.validation import (
    at_least,
    between,
    build,
    each_between,
    file_name,
    one_of,
    ordered_pair,
    spec,
    to_dict,
)

ANTENNA_PATTERNS = ("iso", "dipole", "hw_dipole", "tr38901")


@dataclass(frozen=True)
class RadioConfig:
    carrier_hz: float = spec(60e9, check=between(0.5e9, 100e9))
    bandwidth_hz: float = spec(100e6, check=at_least(1e3))
    tx_power_dbm: float = spec(20.0, check=between(-50, 60))  # the UE's, as in DeepSense (vehicle transmits)
    noise_figure_db: float = spec(7.0, check=between(0, 30))
    measurement_noise_db: float = spec(0.5, check=between(0, 20))  # std of the power detector's error
    num_subcarriers: int = spec(0, check=between(0, 4096))  # 0: no OFDM CSI stored


@dataclass(frozen=True)
class ArrayConfig:
    num_elements: int = spec(16, check=between(1, 1024))
    spacing_wavelengths: float = spec(0.5, check=between(0.05, 4.0))
    pattern: str = spec("iso", check=one_of(*ANTENNA_PATTERNS))
    # Per-element gain and phase errors of the real hardware (std, drawn once from `error_seed`): they
    # fill the ideal ULA's nulls and raise its sidelobes; the codebook still assumes the ideal array.
    gain_error_db: float = spec(0.0, check=between(0, 20))
    phase_error_deg: float = spec(0.0, check=between(0, 180))
    error_seed: int = spec(0, check=at_least(0))


@dataclass(frozen=True)
class CodebookConfig:
    num_beams: int = spec(64, check=between(1, 4096))
    min_angle_deg: float = spec(-45.0, check=between(-90, 90))
    max_angle_deg: float = spec(45.0, check=between(-90, 90))

    def validate(self, prefix: str) -> None:
        if self.min_angle_deg > self.max_angle_deg:
            raise ConfigError(
                f"{prefix}.min_angle_deg = {self.min_angle_deg}: "
                f"expected <= max_angle_deg ({self.max_angle_deg})"
            )


@dataclass(frozen=True)
class BaseStationConfig:
    position_m: tuple[float, float, float] = spec((0.0, -9.0, 2.5))
    yaw_deg: float = spec(90.0, check=between(-360, 360))  # boresight azimuth, counter-clockwise from +x
    array: ArrayConfig = spec(factory=ArrayConfig)
    codebook: CodebookConfig = spec(factory=CodebookConfig)


@dataclass(frozen=True)
class LaneConfig:
    offset_m: float = spec()  # lane centre, y
    direction: int = spec(check=one_of(1, -1))  # +1 drives towards +x


@dataclass(frozen=True)
class StreetConfig:
    length_m: float = spec(160.0, check=at_least(10))
    width_m: float = spec(13.0, check=at_least(2))
    sidewalk_m: float = spec(4.0, check=at_least(0))
    ground_material: str = spec("concrete")
    lanes: tuple[LaneConfig, ...] = spec(
        factory=lambda: (LaneConfig(offset_m=-3.25, direction=1), LaneConfig(offset_m=3.25, direction=-1))
    )

    def validate(self, prefix: str) -> None:
        if not self.lanes:
            raise ConfigError(f"{prefix}.lanes = []: expected at least one lane")
        for i, lane in enumerate(self.lanes):
            if abs(lane.offset_m) > self.width_m / 2:
                raise ConfigError(
                    f"{prefix}.lanes[{i}].offset_m = {lane.offset_m}: expected a value in "
                    f"[{-self.width_m / 2}, {self.width_m / 2}] (inside the {self.width_m} m street)"
                )


@dataclass(frozen=True)
class BuildingsConfig:
    enabled: bool = spec(True)
    seed: int = spec(0, check=at_least(0))  # the city layout stays fixed when the traffic seed changes
    setback_m: float = spec(1.0, check=at_least(0))  # gap between sidewalk and facade
    depth_m: float = spec(12.0, check=at_least(1))
    width_m: tuple[float, float] = spec((15.0, 35.0), check=ordered_pair(1.0))
    height_m: tuple[float, float] = spec((8.0, 25.0), check=ordered_pair(1.0))
    gap_m: tuple[float, float] = spec((2.0, 8.0), check=ordered_pair(0.0))
    materials: tuple[str, ...] = spec(("concrete", "glass", "metal"))
    layouts: int = spec(1, check=between(1, 64))  # run r drives through layout r % layouts (seed + layout)

    def validate(self, prefix: str) -> None:
        if not self.materials:
            raise ConfigError(f"{prefix}.materials = []: expected at least one material")


@dataclass(frozen=True)
class VehicleKindConfig:
    mesh: str = spec()  # PLY file under assets/vehicles (or an absolute path)
    material: str = spec("metal")
    color_rgb: tuple[float, float, float] = spec((0.6, 0.6, 0.6))


@dataclass(frozen=True)
class RigConfig:
    """The UE's roof rig (DeepSense unit 2: a box of sensors and the mmWave array on the roof rack):
    what makes the served car visible as the UE to the base station's camera and LiDAR."""

    enabled: bool = spec(False)
    size_m: tuple[float, float, float] = spec((0.5, 0.4, 0.3), check=each_between(0.01, 5))  # l, w, h
    material: str = spec("metal")
    color_rgb: tuple[float, float, float] = spec((1.0, 0.45, 0.0), check=each_between(0, 1))


UE_ANTENNA_MOUNTS = ("roof_center", "rig_side")


@dataclass(frozen=True)
class StaticUeConfig:
    """A UE that stands still (DeepSense scenario 17: a unit across the street from the base station).
    Its antenna is at `position_m`; the served vehicle (`served_kind`) is parked right behind it, away
    from the street, and every lane's vehicles are blockers passing between the two."""

    enabled: bool = spec(False)
    position_m: tuple[float, float, float] = spec((0.0, 9.0, 1.5))  # the antenna, local metres
    # What passes a blocker (through its glazing, round its edges; the tracer has neither): frames
    # whose line of sight is cut get it back this much weaker. None: as traced (nothing passes).
    blocker_loss_db: float | None = spec(None, check=between(0, 200))


@dataclass(frozen=True)
class TrafficConfig:
    speed_kmh: tuple[float, float] = spec((25.0, 50.0), check=ordered_pair(0.0))
    gap_m: tuple[float, float] = spec((6.0, 25.0), check=ordered_pair(0.5))  # bumper to bumper
    vehicles_per_lane: int = spec(6, check=between(1, 200))
    served_per_run: int = spec(4, check=between(1, 1000))  # cars carrying a UE; each gives one drive
    mix: dict[str, float] = spec(factory=lambda: {"car": 0.7, "van": 0.2, "bus": 0.1})
    served_kind: str = spec("car")
    served_mix: dict[str, float] = spec(factory=dict)  # kinds of served vehicles; {}: served_kind only
    # A platoon's speed changes: segments of constant acceleration [braking, speeding up] in m/s^2
    # lasting `speed_change_s`; (0, 0): constant speed.
    acceleration_mps2: tuple[float, float] = spec((0.0, 0.0), check=ordered_pair())
    speed_change_s: tuple[float, float] = spec((1.0, 3.0), check=ordered_pair(0.1))
    empty_lane_probability: float = spec(0.0, check=between(0, 1))  # lanes without a served car
    # Lanes of the served cars: spread evenly from the first lane on, or drawn per run (both lanes and
    # directions appear even with one served car per run).
    served_lanes: str = spec("even", check=one_of("even", "random"))
    ue_antenna_above_roof_m: float = spec(0.1, check=between(0.01, 5))  # above the roof, or the rig
    ue_antenna_pattern: str = spec("iso", check=one_of(*ANTENNA_PATTERNS))
    # roof_center: on the roof's centre, pointing up; rig_side: on the rig's side facing the base
    # station's side of the street (the directive pattern's boresight), so the roof does not reflect.
    ue_antenna_mount: str = spec("roof_center", check=one_of(*UE_ANTENNA_MOUNTS))
    ue_rig: RigConfig = spec(factory=RigConfig)
    static_ue: StaticUeConfig = spec(factory=StaticUeConfig)  # off: the UEs ride in served cars

    def validate(self, prefix: str) -> None:
        if self.static_ue.enabled and self.served_per_run != 1:
            raise ConfigError(
                f"{prefix}.served_per_run = {self.served_per_run}: expected 1 with static_ue on "
                "(one standing UE per run)"
            )
        if any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ConfigError(f"{prefix}.mix = {self.mix}: expected non-negative weights with a positive sum")
        if self.served_mix and (
            any(w < 0 for w in self.served_mix.values()) or sum(self.served_mix.values()) <= 0
        ):
            raise ConfigError(
                f"{prefix}.served_mix = {self.served_mix}: expected non-negative weights with a positive sum"
            )
        low, high = self.acceleration_mps2
        if low > 0 or high < 0:
            raise ConfigError(
                f"{prefix}.acceleration_mps2 = {list(self.acceleration_mps2)}: expected [braking <= 0, "
                "speeding up >= 0]"
            )


@dataclass(frozen=True)
class ViewConfig:
    """A drive as a DeepSense sequence: the part of the served car's pass inside the base station's
    view. Frames outside it are neither traced nor rendered."""

    enabled: bool = spec(False)  # False: a drive is the whole run window
    margin_deg: float = spec(10.0, check=between(0, 90))  # beyond the codebook sector, each side
    camera: bool = spec(True)  # also inside the camera's horizontal field of view (when it is on)
    min_frames: int = spec(5, check=between(1, 100_000))  # shorter passes give no drive


@dataclass(frozen=True)
class DatasetConfig:
    drives: int = spec(40, check=between(1, 1_000_000))
    frames_per_drive: int = spec(100, check=between(1, 100_000))  # the run window (view: the longest drive)
    frame_rate_hz: float = spec(10.0, check=between(0.1, 10_000))
    view: ViewConfig = spec(factory=ViewConfig)
    first_run: int = spec(0, check=between(0, 1_000_000_000))  # runs first_run, first_run + 1, ...


@dataclass(frozen=True)
class RayTracingConfig:
    max_depth: int = spec(2, check=between(0, 10))
    samples_per_src: int = spec(30_000, check=between(100, 100_000_000))
    max_receivers_per_call: int = spec(100, check=between(1, 100))  # larger calls lose paths in Sionna RT 2.2
    los: bool = spec(True)
    specular_reflection: bool = spec(True)
    diffuse_reflection: bool = spec(False)
    refraction: bool = spec(False)
    diffraction: bool = spec(False)
    max_paths_stored: int = spec(32, check=between(1, 4096))
    seed: int = spec(42, check=at_least(0))


@dataclass(frozen=True)
class GeodeticOrigin:
    latitude_deg: float = spec(0.0, check=between(-90, 90))
    longitude_deg: float = spec(0.0, check=between(-180, 180))
    altitude_m: float = spec(0.0)
    heading_deg: float = spec(90.0, check=between(-360, 360))  # compass bearing of local +x (90: east)


@dataclass(frozen=True)
class CameraConfig:
    """The base station's RGB camera (DeepSense: 960x540; stored smaller by default)."""

    enabled: bool = spec(True)
    position_m: tuple[float, float, float] = spec((0.0, -9.0, 3.0))
    look_at_m: tuple[float, float, float] = spec((0.0, 0.0, 1.0))
    horizontal_fov_deg: float = spec(90.0, check=between(1, 170))
    resolution: tuple[int, int] = spec((320, 180), check=each_between(8, 8192))  # width, height
    lighting: str = spec("day", check=one_of("day", "night", "mixed"))  # mixed: per run, night_share
    night_share: float = spec(0.5, check=between(0, 1))


@dataclass(frozen=True)
class LidarConfig:
    """A spinning LiDAR at the base station (default: Ouster OS1-32-like)."""

    enabled: bool = spec(True)
    position_m: tuple[float, float, float] = spec((0.0, -9.0, 3.2))
    channels: int = spec(32, check=between(1, 512))
    vertical_fov_deg: tuple[float, float] = spec((-22.5, 22.5), check=ordered_pair(-90.0))
    azimuth_steps: int = spec(1024, check=between(8, 8192))
    max_range_m: float = spec(120.0, check=at_least(1.0))
    range_noise_m: float = spec(0.02, check=between(0, 5))


@dataclass(frozen=True)
class RadarConfig:
    """The base station's FMCW radar (DeepSense: TI AWR2243, 77 GHz, 4 RX, 256 samples x 250 chirps)."""

    enabled: bool = spec(True)
    position_m: tuple[float, float, float] = spec((0.0, -9.0, 1.5))
    yaw_deg: float = spec(90.0, check=between(-360, 360))  # boresight azimuth
    start_hz: float = spec(77e9, check=between(1e9, 300e9))
    slope_hz_per_s: float = spec(15e12, check=at_least(1e9))
    sample_rate_hz: float = spec(5e6, check=at_least(1e3))
    samples_per_chirp: int = spec(64, check=between(4, 4096))
    chirps_per_frame: int = spec(64, check=between(1, 4096))
    chirp_period_s: float = spec(60e-6, check=at_least(1e-7))  # ramp plus idle time
    num_rx: int = spec(4, check=between(1, 64))
    rx_spacing_wavelengths: float = spec(0.5, check=between(0.05, 4))
    tx_power_dbm: float = spec(12.0, check=between(-30, 50))
    noise_figure_db: float = spec(15.0, check=between(0, 40))
    clutter: bool = spec(True)  # static paths from the buildings and ground

    def validate(self, prefix: str) -> None:
        ramp = self.samples_per_chirp / self.sample_rate_hz
        if ramp > self.chirp_period_s:
            raise ConfigError(
                f"{prefix}.chirp_period_s = {self.chirp_period_s}: expected >= the sampled ramp "
                f"samples_per_chirp / sample_rate_hz = {ramp:g} s"
            )


@dataclass(frozen=True)
class GpsConfig:
    """The served vehicle's GPS receiver: noise, update rate and outages."""

    enabled: bool = spec(True)
    noise_m: float = spec(0.5, check=between(0, 100))  # std per horizontal axis (RTK ~0.02, consumer ~3)
    # A slowly drifting bias per axis (first-order Gauss-Markov: std, correlation time).
    bias_std_m: float = spec(0.0, check=between(0, 100))
    bias_correlation_s: float = spec(30.0, check=at_least(0.01))
    update_rate_hz: float = spec(10.0, check=between(0.01, 1000))
    outage_rate_per_s: float = spec(0.0, check=between(0, 100))  # outages starting per second of driving
    outage_duration_s: tuple[float, float] = spec((0.5, 2.0), check=ordered_pair(0.0))


@dataclass(frozen=True)
class SensorsConfig:
    camera: CameraConfig = spec(factory=CameraConfig)
    lidar: LidarConfig = spec(factory=LidarConfig)
    radar: RadarConfig = spec(factory=RadarConfig)
    gps: GpsConfig = spec(factory=GpsConfig)


def _default_vehicle_kinds() -> dict[str, VehicleKindConfig]:
    return {
        "car": VehicleKindConfig(mesh="car.ply", color_rgb=(0.75, 0.1, 0.1)),
        "van": VehicleKindConfig(mesh="van.ply", color_rgb=(0.9, 0.9, 0.9)),
        "bus": VehicleKindConfig(mesh="bus.ply", color_rgb=(0.95, 0.75, 0.1)),
    }


@dataclass(frozen=True)
class ScenarioConfig:
    name: str = spec(check=file_name())  # names the store and run folders
    description: str = spec("")
    seed: int = spec(0, check=at_least(0))
    radio: RadioConfig = spec(factory=RadioConfig)
    base_station: BaseStationConfig = spec(factory=BaseStationConfig)
    street: StreetConfig = spec(factory=StreetConfig)
    buildings: BuildingsConfig = spec(factory=BuildingsConfig)
    vehicles: dict[str, VehicleKindConfig] = spec(factory=_default_vehicle_kinds)
    traffic: TrafficConfig = spec(factory=TrafficConfig)
    dataset: DatasetConfig = spec(factory=DatasetConfig)
    ray_tracing: RayTracingConfig = spec(factory=RayTracingConfig)
    geodetic_origin: GeodeticOrigin = spec(factory=GeodeticOrigin)
    sensors: SensorsConfig = spec(factory=SensorsConfig)
    faults: FaultsConfig = spec(
        factory=FaultsConfig
    )  # injected at replay time (twin.loop.faults), not traced

    def validate(self, prefix: str) -> None:
        carrier = self.radio.carrier_hz
        check_material(self.street.ground_material, carrier, f"{prefix}.street.ground_material")
        for i, material in enumerate(self.buildings.materials):
            check_material(material, carrier, f"{prefix}.buildings.materials[{i}]")
        for kind, vehicle in self.vehicles.items():
            check_material(vehicle.material, carrier, f"{prefix}.vehicles.{kind}.material")
        for kind in self.traffic.mix:
            if kind not in self.vehicles:
                raise ConfigError(
                    f"{prefix}.traffic.mix.{kind}: unknown vehicle kind; "
                    f"defined kinds: {', '.join(self.vehicles)}"
                )
        for kind in self.traffic.served_mix:
            if kind not in self.vehicles:
                raise ConfigError(
                    f"{prefix}.traffic.served_mix.{kind}: unknown vehicle kind; "
                    f"defined kinds: {', '.join(self.vehicles)}"
                )
        check_material(self.traffic.ue_rig.material, carrier, f"{prefix}.traffic.ue_rig.material")
        sensors_on = [n for n in ("camera", "lidar", "radar") if getattr(self.sensors, n).enabled]
        if self.dataset.view.enabled and self.traffic.served_per_run > 1 and sensors_on:
            raise ConfigError(
                f"{prefix}.traffic.served_per_run = {self.traffic.served_per_run}: expected 1 with "
                f"dataset.view on and base-station sensors on ({', '.join(sensors_on)}): each drive "
                "needs sensor frames of its own; several UEs per run are for RF-only scenarios"
            )
        if self.traffic.served_kind not in self.vehicles:
            raise ConfigError(
                f"{prefix}.traffic.served_kind = {self.traffic.served_kind!r}: expected one of "
                f"{', '.join(self.vehicles)}"
            )
        lanes = len(self.street.lanes)
        if self.traffic.served_per_run > lanes * self.traffic.vehicles_per_lane:
            raise ConfigError(
                f"{prefix}.traffic.served_per_run = {self.traffic.served_per_run}: expected at most "
                f"{lanes * self.traffic.vehicles_per_lane} (lanes x vehicles_per_lane)"
            )
        half_width = self.street.width_m / 2 + self.street.sidewalk_m + self.buildings.setback_m
        _, y, z = self.base_station.position_m
        if abs(y) >= half_width and self.buildings.enabled:
            raise ConfigError(
                f"{prefix}.base_station.position_m = {list(self.base_station.position_m)}: expected |y| < "
                f"{half_width} m (the base station must stand in front of the facades)"
            )
        if z <= 0:
            raise ConfigError(f"{prefix}.base_station.position_m[2] = {z}: expected a height > 0 m")

    @property
    def frame_period_s(self) -> float:
        return 1.0 / self.dataset.frame_rate_hz

    @property
    def num_runs(self) -> int:
        """Traffic runs needed: each run carries `served_per_run` drives at once."""
        served = self.traffic.served_per_run
        return -(-self.dataset.drives // served)


def scenario_from_dict(data: Mapping[str, Any], source: str = "scenario") -> ScenarioConfig:
    """Validate a parsed scenario mapping; errors name keys as `<source>.<dotted.key>`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of scenario keys, got {type(data).__name__}")
    return build(ScenarioConfig, data, source)


def read_scenario_file(path: Path) -> dict[str, Any]:
    """The mapping a scenario file holds; one ConfigError line when it is not YAML, empty or not a
    mapping (the keys are validated by `scenario_from_dict`)."""
    if not path.is_file():
        raise ConfigError(f"{path}: scenario file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    if data is None:
        raise ConfigError(f"{path}: empty; expected a mapping of scenario keys (name, radio, ...)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of scenario keys, got {type(data).__name__}")
    return data


def load_scenario(path: str | Path) -> ScenarioConfig:
    """Read and validate one scenario YAML file."""
    path = Path(path)
    return scenario_from_dict(read_scenario_file(path), source=path.stem)


def scenario_to_dict(config: ScenarioConfig) -> dict[str, Any]:
    return to_dict(config)


def scenario_yaml(config: ScenarioConfig) -> str:
    return yaml.safe_dump(scenario_to_dict(config), sort_keys=False)


def config_digest(config: ScenarioConfig) -> str:
    """Stable hash of everything that shapes the generated data. Faults are applied at replay time,
    so they are left out: one cached dataset serves every fault study."""
    data = scenario_to_dict(config)
    data.pop("faults", None)
    if not config.traffic.static_ue.enabled:  # scenarios that predate it keep their digest
        data["traffic"].pop("static_ue")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()

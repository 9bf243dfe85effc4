"""The replay options (Hydra-friendly): which recording to convert and how.

`replay_config_from({...})` validates a plain mapping (e.g. a composed Hydra node) with twin's one-line
errors: `replay.resolution = [0, 5]: expected values in [8, 8192]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twin.errors import ConfigError
from twin.modalities import RECORDED_SENSORS
from twin.validation import at_least, between, build, each_between, one_of, spec

KINDS = ("deepsense", "deepverse")
SENSORS = RECORDED_SENSORS  # the sensors a recording can carry


def _each_of(choices: tuple[str, ...]):  # type: ignore[no-untyped-def]
    def check(value: Any) -> str | None:
        return None if all(v in choices for v in value) else "values among " + ", ".join(choices)

    return check


@dataclass(frozen=True)
class ReplayConfig:
    kind: str = spec("deepsense", check=one_of(*KINDS))
    path: str = spec("")  # the dataset folder as published (every file read must lie inside it)
    scenario: str = spec("")  # sub-folder of `path` (scenario17, scenario31, Town01-Carla); "" = `path`
    csv: str = spec("")  # DeepSense: CSV file in the scenario folder; "" = found automatically
    modalities: tuple[str, ...] = spec(SENSORS, check=_each_of(SENSORS))  # sensors to convert if present
    resolution: tuple[int, int] = spec((320, 180), check=each_between(8, 8192))  # camera width, height
    lidar_max_points: int = spec(0, check=at_least(0))  # padded cloud size; 0 = the largest cloud
    radar_shape: tuple[int, int, int] = spec((4, 256, 250), check=each_between(1, 100_000))
    skip_bad_files: bool = spec(False)  # drop (and count) frames whose files are missing or broken
    offset: int = spec(0, check=at_least(0))  # first frame (CSV row or file) converted
    limit: int = spec(0, check=at_least(0))  # frames converted; 0 = all
    max_drive_frames: int = spec(0, check=at_least(0))  # split longer drives; 0 = never
    frame_rate_hz: float = spec(10.0, check=between(0.01, 10_000))
    num_beams: int = spec(64, check=between(1, 4096))  # DeepSense: 64 beams over +-45 degrees
    codebook_deg: tuple[float, float] = spec((-45.0, 45.0), check=each_between(-90, 90))
    num_elements: int = spec(16, check=between(1, 1024))  # the base station's ULA
    spacing_wavelengths: float = spec(0.5, check=between(0.05, 4.0))
    carrier_hz: float = spec(60e9, check=between(0.5e9, 300e9))  # DeepVerse: read from the scenario
    bandwidth_hz: float = spec(100e6, check=at_least(1e3))  # sets the thermal noise power
    noise_figure_db: float = spec(7.0, check=between(0, 30))
    measurement_noise_db: float = spec(0.5, check=between(0, 20))  # DeepVerse: detector error added
    calibration_offset_db: float | None = spec(None, check=between(-400, 400))  # None: noise-floor anchor
    bs_yaw_deg: float | None = spec(None, check=between(-360, 360))  # None: fitted / aimed at the UEs
    basestation: int = spec(1, check=at_least(1))  # DeepVerse: BS<b> files
    seed: int = spec(0, check=at_least(0))  # DeepVerse: measurement-noise draws

    def validate(self, prefix: str) -> None:
        if not self.path:
            raise ConfigError(f"{prefix}.path: missing; expected the {self.kind} dataset folder")
        low, high = self.codebook_deg
        if low > high:
            raise ConfigError(f"{prefix}.codebook_deg = {list(self.codebook_deg)}: expected [min, max]")


def replay_config_from(data: Mapping[str, Any] | ReplayConfig, prefix: str = "replay") -> ReplayConfig:
    if isinstance(data, ReplayConfig):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix} = {data!r}: expected a mapping of replay options")
    return build(ReplayConfig, dict(data), prefix)

"""The scenario's `faults` section: blockage events and sensor dropout injected at replay time.

Faults are not traced: they are applied by the environment (twin.loop.faults), so one cached dataset
serves every robustness study and they are left out of the dataset's hash.

Blockage: events start as a Poisson process (`rate_per_s`) with durations uniform or log-uniform in
`duration_s`; while one is active a tall virtual blocker between the base station and the UE
attenuates the paths it cuts by `attenuation_db` (within `half_width_deg` of the UE's azimuth).
Dropout: per modality, a burst process whose long-run share of affected frames is `probability` and
whose mean burst lasts `burst_s`, in one of the modes missing, frozen, noisy or partial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twin.errors import ConfigError
from twin.observations import OBSERVED_MODALITIES as SENSOR_MODALITIES
from twin.validation import at_least, between, build, one_of, ordered_pair, spec

DROPOUT_MODES = ("missing", "frozen", "noisy", "partial")


@dataclass(frozen=True)
class BlockageFaultConfig:
    rate_per_s: float = spec(0.0, check=between(0, 100))  # events starting per second of driving
    duration_s: tuple[float, float] = spec((0.5, 2.0), check=ordered_pair(0.0))  # [min, max]
    duration_distribution: str = spec("uniform", check=one_of("uniform", "log_uniform"))
    attenuation_db: float = spec(20.0, check=between(0, 300))  # on every path the blocker cuts
    half_width_deg: float = spec(10.0, check=between(0, 180))  # azimuth half-width of the cut

    def validate(self, prefix: str) -> None:
        if self.duration_distribution == "log_uniform" and self.duration_s[0] <= 0:
            raise ConfigError(
                f"{prefix}.duration_s = {list(self.duration_s)}: expected min > 0 with a log_uniform "
                "duration_distribution"
            )

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0 and self.attenuation_db > 0


@dataclass(frozen=True)
class DropoutConfig:
    probability: float = spec(0.0, check=between(0, 1))  # long-run share of frames affected
    burst_s: float = spec(0.5, check=at_least(0))  # mean burst length (at least one frame)
    mode: str = spec("missing", check=one_of(*DROPOUT_MODES))
    # noisy: camera in fractions of full scale, LiDAR/GPS/position in metres, radar relative to RMS.
    noise_std: float = spec(0.1, check=at_least(0))
    # partial: share of the image occluded, of LiDAR points lost, of radar chirps lost.
    fraction: float = spec(0.5, check=between(0, 1))

    @property
    def enabled(self) -> bool:
        return self.probability > 0


# One field per observation modality (twin.modalities), each a DropoutConfig.
DropoutsConfig = dataclasses.make_dataclass(
    "DropoutsConfig",
    [(m, DropoutConfig, spec(factory=DropoutConfig)) for m in SENSOR_MODALITIES],
    frozen=True,
)
DropoutsConfig.__module__ = __name__
DropoutsConfig.__doc__ = "Sensor dropout per observation modality."


@dataclass(frozen=True)
class FaultsConfig:
    blockage: BlockageFaultConfig = spec(factory=BlockageFaultConfig)
    dropout: DropoutsConfig = spec(factory=DropoutsConfig)

    def only(self, modalities: frozenset[str] | set[str]) -> FaultsConfig:
        """The same faults with dropout kept only on `modalities` (what a policy can notice)."""
        kept = {
            m: getattr(self.dropout, m) if m in modalities else DropoutConfig() for m in SENSOR_MODALITIES
        }
        return FaultsConfig(blockage=self.blockage, dropout=DropoutsConfig(**kept))

    def with_dropout(self, modality: str, **changes: Any) -> FaultsConfig:
        current = getattr(self.dropout, modality)
        dropout = dataclasses.replace(self.dropout, **{modality: dataclasses.replace(current, **changes)})
        return dataclasses.replace(self, dropout=dropout)


NO_FAULTS = FaultsConfig()


def faults_from(value: FaultsConfig | Mapping[str, Any] | None, prefix: str = "faults") -> FaultsConfig:
    """Accept a FaultsConfig, a plain mapping (validated, one-line errors) or None (no faults)."""
    if value is None:
        return NO_FAULTS
    if isinstance(value, FaultsConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{prefix} = {value!r}: expected a mapping with keys blockage, dropout")
    return build(FaultsConfig, value, prefix)


def describe(faults: FaultsConfig) -> str:
    """A short human-readable label, e.g. 'blockage 0.2/s, camera missing 0.3'."""
    parts = []
    if faults.blockage.enabled:
        parts.append(f"blockage {faults.blockage.rate_per_s:g}/s")
    for name in SENSOR_MODALITIES:
        d = getattr(faults.dropout, name)
        if d.enabled:
            parts.append(f"{name} {d.mode} {d.probability:g}")
    return ", ".join(parts) or "none"

"""What every base-station sensor is: a callable that renders one posed frame of a run.

The generator poses the scene once per frame and calls every enabled sensor on that same state
right after tracing the channels, so all modalities of a frame see the same vehicle positions.
Base-station sensors see the whole street, so their output is shared by all drives of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from twin.store.schema import Field
from twin.trace.scene import TwinScene
from twin.trace.traffic import TrafficRun


@dataclass(frozen=True)
class FrameState:
    """The scene posed at `frame` of `run` (vehicle poses in `run.positions[frame]`, `run.yaws`)."""

    twin: TwinScene
    run: TrafficRun
    frame: int

    @property
    def time_s(self) -> float:
        return self.frame / self.twin.config.dataset.frame_rate_hz


class Sensor(Protocol):
    """Built as `Sensor(scenario_config, twin_scene)`; `fields` are the schema fields it fills."""

    fields: tuple[Field, ...]

    def __call__(self, state: FrameState) -> dict[str, np.ndarray]:
        """Per-frame arrays keyed by field name, shaped as `fields` say (no frame axis)."""
        ...

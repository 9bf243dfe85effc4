"""Every fault of one drive, each from its own random stream."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.loop.faults.blockage import BlockageSchedule, blockage_schedule
from twin.loop.faults.dropout import DropoutSchedule, dropout_schedule
from twin.loop.faults.streams import STREAM_BLOCKAGE, STREAM_MODALITY, stream
from twin.scenario.faults import FaultsConfig


@dataclass(frozen=True)
class Schedules:
    blockage: BlockageSchedule
    dropouts: dict[str, DropoutSchedule]  # only modalities with dropout configured


def schedules(
    faults: FaultsConfig,
    t: np.ndarray,
    modalities: tuple[str, ...],
    frame_rate_hz: float,
    seed: int,
    episode: int,
) -> Schedules:
    """Every fault of one drive, each from its own stream seeded by (seed, episode, component)."""
    blockage = blockage_schedule(faults.blockage, t, stream(seed, episode, STREAM_BLOCKAGE))
    dropouts = {}
    for m in modalities:
        config = getattr(faults.dropout, m)
        if config.enabled:
            rng = stream(seed, episode, STREAM_MODALITY[m])
            dropouts[m] = dropout_schedule(m, config, len(t), frame_rate_hz, rng)
    return Schedules(blockage, dropouts)

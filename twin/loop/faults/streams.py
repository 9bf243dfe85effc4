"""Random streams of the fault components: fixed ids, so draws never depend on which other faults are on."""

from __future__ import annotations

import numpy as np

from twin.observations import OBSERVED_MODALITIES as SENSOR_MODALITIES

STREAM_BLOCKAGE = 0
STREAM_MEASUREMENT = 1
STREAM_SRS = 2  # the uplink channel estimate's noise (twin.loop.srs)
STREAM_MODALITY = {name: 10 + i for i, name in enumerate(SENSOR_MODALITIES)}


def stream(seed: int, episode: int, component: int) -> np.random.Generator:
    return np.random.default_rng([seed, episode, component])

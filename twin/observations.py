"""Every modality a policy may observe: the sensors of twin.modalities and the base station's uplink
channel estimate `channel` (the store's `h` of the frame: an SRS the UE sends each frame, which the
environment charges one measurement slot of airtime). Declared apart from twin.modalities because
that file is part of the generation code digest (twin.dataset.digest): the channel is already in
every twin store, and declaring it to policies must not invalidate the cached datasets."""

from __future__ import annotations

from twin.modalities import MODALITY_FIELD, SENSOR_MODALITIES

CHANNEL = "channel"

# Observation modalities, in mask order; the channel last, so the others keep their indices (masks,
# fault streams).
OBSERVED_MODALITIES = (*SENSOR_MODALITIES, CHANNEL)

# Observation modality → the store field it is read from.
OBSERVED_FIELD = {**MODALITY_FIELD, CHANNEL: "h"}

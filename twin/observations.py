"""Every modality a policy may observe: the sensors of twin.modalities and the base station's uplink
channel estimate `channel` (an SRS the UE sends each frame, which the environment charges one
measurement slot of airtime): the store's `csi` (N × S, over its OFDM subcarriers) where it has
subcarriers, its narrowband `h` (N) otherwise. Declared apart from twin.modalities because that file
is part of the generation code digest (twin.dataset.digest): the channel is already in every twin
store, and declaring it to policies must not invalidate the cached datasets."""

from __future__ import annotations

from collections.abc import Container

from twin.modalities import MODALITY_FIELD, SENSOR_MODALITIES

CHANNEL = "channel"
WIDEBAND_CHANNEL_FIELD = "csi"  # (N, S) complex: the channel over the store's S subcarriers

# Observation modalities, in mask order; the channel last, so the others keep their indices (masks,
# fault streams).
OBSERVED_MODALITIES = (*SENSOR_MODALITIES, CHANNEL)

# Observation modality → the store field it is read from (the channel: where the store has no csi).
OBSERVED_FIELD = {**MODALITY_FIELD, CHANNEL: "h"}


def observed_field(modality: str, fields: Container[str]) -> str:
    """The field `modality` is read from in a store (or episode group) holding `fields`: the
    channel is the csi where there is one, else h."""
    if modality == CHANNEL and WIDEBAND_CHANNEL_FIELD in fields:
        return WIDEBAND_CHANNEL_FIELD
    return OBSERVED_FIELD[modality]

"""The observation modalities, declared once for every layer (faults, environment, replay, learners)."""

from __future__ import annotations

# Sensor modalities a policy can observe; `position` is the store's ue_pos (an ideal position feed);
# `channel` is the base station's uplink estimate `h` of the frame (an SRS the UE sends each frame:
# the environment charges it one measurement slot of airtime). Appended last: the masks and fault
# streams of the others keep their indices.
SENSOR_MODALITIES = ("camera", "lidar", "radar", "gps", "position", "channel")

# Sensors a recording can carry (a real dataset has no ideal position feed).
RECORDED_SENSORS = ("camera", "lidar", "radar", "gps")

# Observation modality → the store field it is read from.
MODALITY_FIELD = {
    "camera": "camera",
    "lidar": "lidar",
    "radar": "radar",
    "gps": "gps",
    "position": "ue_pos",
    "channel": "h",
}

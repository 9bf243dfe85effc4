"""The observation modalities, declared once for every layer (faults, environment, replay, learners)."""

from __future__ import annotations

# Sensor modalities a policy can observe; `position` is the store's ue_pos (an ideal position feed).
SENSOR_MODALITIES = ("camera", "lidar", "radar", "gps", "position")

# Sensors a recording can carry (a real dataset has no ideal position feed).
RECORDED_SENSORS = ("camera", "lidar", "radar", "gps")

# Observation modality → the store field it is read from.
MODALITY_FIELD = {"camera": "camera", "lidar": "lidar", "radar": "radar", "gps": "gps", "position": "ue_pos"}

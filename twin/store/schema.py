"""The sample schema shared by twin, replay, learners and the environment (see DESIGN.md).

One HDF5 file per dataset; one group per episode under `/episodes/<id>`, one row per frame.
`Field.shape` lists the per-frame dimensions; letters are sizes fixed for the whole dataset
(N antennas, K beams, S subcarriers, L paths, D interactions, V vehicles).
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1
FORMAT_NAME = "beam-twin-store"


@dataclass(frozen=True)
class Field:
    name: str
    dtype: str
    shape: tuple[str | int, ...]
    meaning: str


EPISODE_FIELDS: tuple[Field, ...] = (
    Field("t", "float64", (), "seconds from episode start"),
    Field("ue_pos", "float32", (3,), "served vehicle's UE antenna, local metres (x along street, z up)"),
    Field("ue_vel", "float32", (3,), "served vehicle velocity, m/s"),
    Field("h", "complex64", ("N",), "narrowband channel UE <-> BS ULA elements, incl. path loss"),
    Field("csi", "complex64", ("N", "S"), "OFDM channel over S subcarriers"),
    Field("rsrp_dbm", "float32", ("K",), "measured received power per beam: signal + noise + meas. error"),
    Field("rsrp_noiseless_dbm", "float32", ("K",), "P_tx + 10 log10 |h^H w_k|^2, no noise"),
    Field("best_beam", "int16", (), "argmax of rsrp_dbm, 0-based"),
    Field("los", "bool", (), "the line-of-sight path exists"),
    Field("blocked", "bool", (), "a vehicle cuts the BS-UE line of sight (the unobstructed strongest path)"),
    Field("camera", "uint8", ("H", "W", 3), "BS camera RGB"),
    Field("lidar", "float32", ("P", 4), "BS LiDAR points x, y, z (local metres), intensity; padded"),
    Field("lidar_count", "int32", (), "valid LiDAR points in the frame"),
    Field(
        "lidar_object",
        "int16",
        ("P",),
        "hit: vehicle index in traffic/ (>= 0), -1 ground, -2 building, -4 UE rig",
    ),
    Field("radar", "complex64", ("Rx", "Samples", "Chirps"), "BS FMCW IF data cube"),
    Field("gps", "float64", (2,), "UE latitude, longitude in degrees (last fix; NaN before the first)"),
    Field("gps_valid", "bool", (), "a fix arrived this frame (False between updates and in outages)"),
)

# Fields rendered once per run by the base station's sensors; episodes link to `/runs/<run>/<field>`.
SHARED_FIELDS = ("camera", "lidar", "lidar_count", "lidar_object", "radar")

# Per-path table (group `paths/`): enough to recompute h and to cut paths for blockage injection.
PATH_FIELDS: tuple[Field, ...] = (
    Field("gain", "complex64", ("L",), "baseband path gain at the carrier"),
    Field("delay_s", "float32", ("L",), "path delay"),
    Field("departure", "float32", ("L", 3), "unit vector leaving the base station"),
    Field("doppler_hz", "float32", ("L",), "Doppler shift"),
    Field("is_los", "bool", ("L",), "line-of-sight path"),
    Field("bounces", "int8", ("L",), "number of interactions"),
    Field("vertices", "float32", ("L", "D", 3), "interaction points, NaN where none"),
    Field("valid", "bool", ("L",), "slot holds a path"),
)

# Every dataset needs these; the rest are listed in the file's `modalities` attribute when present.
REQUIRED_FIELDS = ("t", "rsrp_dbm", "best_beam")

REQUIRED_ROOT_ATTRS = (
    "format",
    "schema_version",
    "complete",
    "source",
    "modalities",
    "carrier_hz",
    "bandwidth_hz",
    "noise_figure_db",
    "noise_power_dbm",
    "tx_power_dbm",
    "frame_rate_hz",
    "num_beams",
)

FIELDS_BY_NAME = {f.name: f for f in EPISODE_FIELDS}

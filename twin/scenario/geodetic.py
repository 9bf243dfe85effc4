"""Local metres ↔ WGS-84 latitude/longitude around a scenario's geodetic origin.

Local frame: +x along the street with compass bearing `heading_deg` of the geodetic origin (90: east),
+y 90 degrees counter-clockwise from it, z up. Over a street's extent the local tangent plane with
the ellipsoid's meridian and prime-vertical radii at the origin is exact to millimetres.
"""

from __future__ import annotations

import numpy as np

from twin.scenario.config import GeodeticOrigin

WGS84_A = 6_378_137.0
WGS84_E2 = 6.694_379_990_14e-3


def _radii(latitude_deg: float) -> tuple[float, float]:
    """Meridian (north-south) and prime-vertical radii of curvature at a latitude."""
    s = np.sin(np.deg2rad(latitude_deg))
    w = np.sqrt(1 - WGS84_E2 * s**2)
    return WGS84_A * (1 - WGS84_E2) / w**3, WGS84_A / w


def _east_north(origin: GeodeticOrigin, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = np.deg2rad(origin.heading_deg)
    x, y = xy[..., 0], xy[..., 1]
    return x * np.sin(b) - y * np.cos(b), x * np.cos(b) + y * np.sin(b)


def local_to_geodetic(origin: GeodeticOrigin, xy: np.ndarray) -> np.ndarray:
    """(..., 2+) local metres → (..., 2) latitude, longitude in degrees."""
    east, north = _east_north(origin, np.asarray(xy, np.float64))
    meridian, normal = _radii(origin.latitude_deg)
    lat = origin.latitude_deg + np.rad2deg(north / meridian)
    lon = origin.longitude_deg + np.rad2deg(east / (normal * np.cos(np.deg2rad(origin.latitude_deg))))
    return np.stack([lat, lon], -1)


def geodetic_to_local(origin: GeodeticOrigin, latlon: np.ndarray) -> np.ndarray:
    """(..., 2) latitude, longitude in degrees → (..., 2) local metres x, y."""
    latlon = np.asarray(latlon, np.float64)
    meridian, normal = _radii(origin.latitude_deg)
    north = np.deg2rad(latlon[..., 0] - origin.latitude_deg) * meridian
    east = (
        np.deg2rad(latlon[..., 1] - origin.longitude_deg) * normal * np.cos(np.deg2rad(origin.latitude_deg))
    )
    b = np.deg2rad(origin.heading_deg)
    return np.stack([east * np.sin(b) + north * np.cos(b), -east * np.cos(b) + north * np.sin(b)], -1)

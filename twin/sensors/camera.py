"""The base station's RGB camera: a pinhole camera ray-cast into the posed twin scene.

One primary ray per pixel gives what is seen (and a label image for tests); shading is Lambertian
with plausible colours: asphalt with lane markings, sidewalks, buildings by material, vehicles by
kind with a per-vehicle tint and dark windows. Day: sun with cast shadows and sky light. Night
(DeepSense scenarios 33/34): street lamps, headlights and tail lights on a dark sky.
"""

from __future__ import annotations

import numpy as np

from twin.scenario.config import CameraConfig, ScenarioConfig
from twin.sensors.base import FrameState
from twin.sensors.raycast import Hits, cast
from twin.store.schema import FIELDS_BY_NAME
from twin.trace.scene import BUILDING, GROUND, TwinScene
from twin.trace.traffic import RIG

_SUN = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])
_MATERIAL_RGB = {
    "concrete": (0.72, 0.70, 0.66),
    "glass": (0.35, 0.45, 0.55),
    "metal": (0.55, 0.57, 0.60),
    "brick": (0.60, 0.32, 0.24),
    "wood": (0.52, 0.38, 0.24),
    "marble": (0.85, 0.84, 0.80),
}
_ASPHALT, _SIDEWALK, _MARKING = (
    np.array([0.20, 0.20, 0.22]),
    np.array([0.62, 0.61, 0.58]),
    np.array([0.9, 0.9, 0.85]),
)
# Height band (fraction of the vehicle's height) where vertical faces are windows.
_WINDOW_BAND = {"car": (0.68, 1.0), "van": (0.55, 0.88), "bus": (0.45, 0.85)}
_WINDOW_RGB = np.array([0.08, 0.10, 0.13])


def intrinsics(config: CameraConfig) -> np.ndarray:
    """3x3 pinhole matrix K (square pixels, principal point at the image centre)."""
    width, height = config.resolution
    focal = (width / 2) / np.tan(np.deg2rad(config.horizontal_fov_deg) / 2)
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def rotation(config: CameraConfig) -> np.ndarray:
    """3x3 world → camera rotation; camera axes: x right, y down (image rows), z forward."""
    forward = np.asarray(config.look_at_m, float) - np.asarray(config.position_m, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def project(config: CameraConfig, points: np.ndarray) -> np.ndarray:
    """World points (..., 3) → pixel coordinates (..., 2) as (column, row); behind the camera: NaN."""
    cam = (np.asarray(points, float) - np.asarray(config.position_m, float)) @ rotation(config).T
    pixels = cam @ intrinsics(config).T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = pixels[..., :2] / pixels[..., 2:3]
    return np.where(cam[..., 2:3] > 0, uv, np.nan)


def pixel_rays(config: CameraConfig) -> np.ndarray:
    """(H*W, 3) unit world directions through the pixel centres, row-major."""
    width, height = config.resolution
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pixels = np.stack([cols, rows, np.ones_like(cols)], -1).reshape(-1, 3)
    cam = pixels @ np.linalg.inv(intrinsics(config)).T
    world = cam @ rotation(config)
    return world / np.linalg.norm(world, axis=1, keepdims=True)


class Camera:
    fields = (FIELDS_BY_NAME["camera"],)

    def __init__(self, config: ScenarioConfig, twin: TwinScene):
        self.scenario = config
        self.config = config.sensors.camera
        self.origin = np.asarray(self.config.position_m, np.float64)
        self.rays = pixel_rays(self.config)
        self.skies = {night: self._sky(night) for night in (False, True)}  # the same every frame
        street = config.street
        lamp_x = np.arange(-street.length_m / 2, street.length_m / 2 + 1, 30.0)
        lamp_y = street.width_m / 2 + 0.5
        self.lamps = np.array([(x, side * lamp_y, 6.0) for x in lamp_x for side in (-1, 1)])

    def __call__(self, state: FrameState) -> dict[str, np.ndarray]:
        return {"camera": self.render(state)[0]}

    def render(self, state: FrameState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB (H, W, 3) uint8, hit labels (H, W) int16 and depth (H, W) metres of one frame."""
        width, height = self.config.resolution
        hits = cast(state.twin, state.run, self.origin, self.rays)
        albedo = self._albedo(state, hits)
        night = self.is_night(state)
        if night:
            light, glow = self._night_light(state, hits)
        else:
            light, glow = self._day_light(state, hits), 0.0
        rgb = np.where(hits.hit[:, None], albedo * light + glow, self.skies[night])
        image = (255 * np.clip(rgb, 0, 1) ** (1 / 2.2)).round().astype(np.uint8)
        return (
            image.reshape(height, width, 3),
            hits.label.reshape(height, width),
            hits.distance.reshape(height, width),
        )

    def is_night(self, state: FrameState) -> bool:
        """The lighting of the frame: the camera's, or with `mixed` the run's (drawn per run)."""
        return state.run.night if self.config.lighting == "mixed" else self.config.lighting == "night"

    def _sky(self, night: bool) -> np.ndarray:
        up = np.clip(self.rays[:, 2:3], 0, 1)
        if night:
            return (1 - up) * np.array([0.02, 0.025, 0.05]) + up * np.array([0.0, 0.0, 0.01])
        return (1 - up) * np.array([0.75, 0.82, 0.92]) + up * np.array([0.35, 0.55, 0.85])

    def _albedo(self, state: FrameState, hits: Hits) -> np.ndarray:
        twin = state.twin
        albedo = np.zeros((len(hits.distance), 3))
        for oid in hits.objects:
            mask = hits.object_id == oid
            surface = twin.surface(int(oid))
            if surface.category == GROUND:
                albedo[mask] = self._ground(hits.point[mask])
            elif surface.category == BUILDING:
                albedo[mask] = _MATERIAL_RGB.get(surface.material, (0.6, 0.6, 0.6))
            elif surface.category == RIG:
                albedo[mask] = self.scenario.traffic.ue_rig.color_rgb
            else:
                vehicle = int(hits.label[mask][0])
                albedo[mask] = self._vehicle(state, vehicle, hits.point[mask], hits.normal[mask])
        return albedo

    def _ground(self, points: np.ndarray) -> np.ndarray:
        street = self.scenario.street
        x, y = points[:, 0], np.abs(points[:, 1])
        rgb = np.where((y < street.width_m / 2)[:, None], _ASPHALT, _SIDEWALK)
        centre_line = (y < 0.08) & (np.mod(x, 6.0) < 3.0)
        edge_line = np.abs(y - (street.width_m / 2 - 0.3)) < 0.08
        return np.where((centre_line | edge_line)[:, None], _MARKING, rgb)

    def _vehicle(self, state: FrameState, index: int, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        vehicle = state.run.vehicles[index]
        base = np.asarray(self.scenario.vehicles[vehicle.kind].color_rgb, float)
        # A seeded tint per vehicle so that cars of one kind are told apart.
        tint = np.random.default_rng([self.scenario.seed, state.run.run, index, 5]).uniform(0.75, 1.15, 3)
        rgb = np.broadcast_to(np.clip(base * tint, 0, 1), points.shape).copy()
        band = _WINDOW_BAND.get(vehicle.kind)
        if band is not None:
            rel_height = points[:, 2] / vehicle.size_m[2]
            window = (np.abs(normals[:, 2]) < 0.5) & (rel_height > band[0]) & (rel_height < band[1])
            rgb[window] = _WINDOW_RGB
        return rgb

    def _day_light(self, state: FrameState, hits: Hits) -> np.ndarray:
        lit = np.clip(hits.normal @ _SUN, 0, None)
        shadowed = np.zeros(len(lit), bool)
        facing = hits.hit & (lit > 0)
        if facing.any():
            origins = hits.point[facing] + 1e-3 * hits.normal[facing]
            blockers = cast(state.twin, state.run, origins, np.broadcast_to(_SUN, origins.shape))
            shadowed[facing] = blockers.hit
        sky = 0.35 + 0.15 * np.clip(hits.normal[:, 2], 0, 1)
        return (sky + 0.85 * lit * ~shadowed)[:, None] * np.array([1.0, 0.97, 0.92])

    def _night_light(self, state: FrameState, hits: Hits) -> tuple[np.ndarray, np.ndarray]:
        """Light falling on each hit (multiplies the albedo) and light it emits itself."""
        light = np.full((len(hits.distance), 3), 0.03)
        for lamp in self.lamps:
            to_lamp = lamp - hits.point
            dist2 = np.einsum("ij,ij->i", to_lamp, to_lamp)
            cos = np.clip(np.einsum("ij,ij->i", hits.normal, to_lamp) / np.sqrt(dist2), 0, None)
            light += (cos * 6.0 / (dist2 + 9.0))[:, None] * np.array([1.0, 0.85, 0.6])
        # Head- and tail-lights: the lower front and rear faces of every vehicle glow.
        emitted = np.zeros_like(light)
        for index in np.unique(hits.label[hits.label >= 0]):
            mask = hits.label == index
            vehicle = state.run.vehicles[int(index)]
            heading = np.array([np.cos(state.run.yaws[index]), np.sin(state.run.yaws[index]), 0.0])
            facing = hits.normal[mask] @ heading
            low = hits.point[mask][:, 2] < 0.5 * vehicle.size_m[2]
            glow = np.zeros((mask.sum(), 3))
            glow[(facing > 0.9) & low] = (1.0, 0.97, 0.85)
            glow[(facing < -0.9) & low] = (0.9, 0.05, 0.03)
            emitted[mask] = glow
        return light, emitted

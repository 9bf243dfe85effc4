"""Rays against the posed twin scene: what camera pixels and LiDAR beams hit.

Sensors cast rays into the very Mitsuba scene that Sionna RT traces, so every modality of a frame
sees the same geometry. Mitsuba's preliminary intersection (distance, shape, triangle) is all we
ask for; labels and normals come from the scene's own catalogue, which is about 3x cheaper than a
full surface interaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.trace.scene import BUILDING, GROUND, TwinScene
from twin.trace.traffic import RIG, TrafficRun

MISS, GROUND_LABEL, BUILDING_LABEL, RIG_LABEL = -3, -1, -2, -4


@dataclass(frozen=True)
class Hits:
    distance: np.ndarray  # (n,) metres, inf where nothing was hit
    label: np.ndarray  # (n,) int16: vehicle index (>= 0), GROUND_LABEL, BUILDING_LABEL, RIG_LABEL or MISS
    object_id: np.ndarray  # (n,) scene object id, 0 where nothing was hit
    normal: np.ndarray  # (n, 3) unit surface normal, facing the ray's origin
    point: np.ndarray  # (n, 3) hit point, local metres
    objects: np.ndarray  # distinct object ids that were hit

    @property
    def hit(self) -> np.ndarray:
        return np.isfinite(self.distance)


def cast(twin: TwinScene, run: TrafficRun, origins: np.ndarray, directions: np.ndarray) -> Hits:
    """Intersect rays (origins (n,3) or (3,), unit directions (n,3)) with the posed scene."""
    import drjit as dr
    import mitsuba as mi

    directions = np.asarray(directions, np.float64)
    origins = np.broadcast_to(np.asarray(origins, np.float64), directions.shape)
    ray = mi.Ray3f(
        mi.Point3f(*(mi.Float(origins[:, i].astype(np.float32)) for i in range(3))),
        mi.Vector3f(*(mi.Float(directions[:, i].astype(np.float32)) for i in range(3))),
    )
    found = twin.scene.mi_scene.ray_intersect_preliminary(ray, coherent=True)
    shape_id = dr.reinterpret_array(mi.UInt32, found.shape)
    dr.eval(found.t, shape_id, found.prim_index)  # one kernel for all three outputs
    distance = found.t.numpy().astype(np.float64)
    object_id = shape_id.numpy().astype(np.int64)
    triangle = found.prim_index.numpy().astype(np.int64)
    hit = (object_id != 0) & np.isfinite(distance)
    distance = np.where(hit, distance, np.inf)
    object_id = np.where(hit, object_id, 0)

    label = np.full(len(distance), MISS, np.int16)
    normal = np.zeros_like(directions)
    vehicle_of = twin.vehicle_of_object(run)
    objects = np.unique(object_id[hit])
    for oid in objects:
        mask = object_id == oid
        surface = twin.surface(int(oid))
        local = surface.face_normals[triangle[mask]]
        if surface.category == GROUND:
            label[mask] = GROUND_LABEL
        elif surface.category == BUILDING:
            label[mask] = BUILDING_LABEL
        elif surface.category == RIG:
            label[mask] = RIG_LABEL  # the UE's rig: normals stay in the world frame (yaw is 0 or pi)
        else:
            vehicle = vehicle_of.get(int(oid), -1)
            label[mask] = vehicle
            c, s = np.cos(run.yaws[vehicle]), np.sin(run.yaws[vehicle])
            local = np.stack(
                [c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]], -1
            )
        normal[mask] = local
    # Two-sided surfaces: a normal always faces the viewer.
    flip = np.einsum("ij,ij->i", normal, directions) > 0
    normal[flip] *= -1
    point = origins + directions * np.where(hit, distance, 0.0)[:, None]
    return Hits(
        distance=distance, label=label, object_id=object_id, normal=normal, point=point, objects=objects
    )

"""Scenario → Sionna RT scene: ground, buildings, the base station and pools of vehicle meshes.

The scene is built once. Vehicles are scene objects that are moved in place every frame (never
reloaded); each vehicle kind has a pool large enough for the busiest run, and pool members a run does
not use are parked far outside the street where no ray reaches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.errors import ConfigError
from twin.rt_backend import sionna_rt
from twin.scenario.config import ScenarioConfig
from twin.trace.geometry import Mesh, box, merge, read_ply
from twin.trace.traffic import RIG, TrafficRun

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
_PARKING = np.array([1e4, 1e4, 0.0])  # far outside every street; pool members wait here
_GROUND_THICKNESS_M = 0.1
_WALL_THICKNESS_M = 0.2  # slab thickness of ITU materials (transmission, not used without refraction)


@dataclass(frozen=True)
class VehicleModel:
    kind: str
    mesh: Mesh
    material: str

    @property
    def size_m(self) -> tuple[float, float, float]:
        low, high = self.mesh.bounds
        return float(high[0] - low[0]), float(high[1] - low[1]), float(high[2])


def load_vehicle_models(config: ScenarioConfig) -> dict[str, VehicleModel]:
    models = {}
    for kind, vehicle in config.vehicles.items():
        path = Path(vehicle.mesh)
        if not path.is_absolute():
            path = ASSETS_DIR / "vehicles" / path
        try:
            mesh = read_ply(path)
        except ConfigError as exc:
            raise ConfigError(f"{config.name}.vehicles.{kind}.mesh = {vehicle.mesh!r}: {exc}") from exc
        models[kind] = VehicleModel(kind=kind, mesh=mesh, material=vehicle.material)
    return models


def building_boxes(config: ScenarioConfig) -> list[tuple[Mesh, str]]:
    """Seeded row of buildings on each side of the street: (box mesh, ITU material)."""
    if not config.buildings.enabled:
        return []
    b, street = config.buildings, config.street
    rng = np.random.default_rng([b.seed, 7])
    facade = street.width_m / 2 + street.sidewalk_m + b.setback_m
    boxes = []
    for side in (-1, 1):
        x = -street.length_m / 2
        while x < street.length_m / 2:
            width = min(rng.uniform(*b.width_m), street.length_m / 2 - x)
            height = rng.uniform(*b.height_m)
            material = b.materials[rng.integers(len(b.materials))]
            center = (x + width / 2, side * (facade + b.depth_m / 2), height / 2)
            boxes.append((box((width, b.depth_m, height), center), material))
            x += width + rng.uniform(*b.gap_m)
    return boxes


def ground_box(config: ScenarioConfig) -> Mesh:
    street, b = config.street, config.buildings
    half_width = street.width_m / 2 + street.sidewalk_m + b.setback_m + (b.depth_m if b.enabled else 0.0)
    size = (street.length_m, 2 * half_width, _GROUND_THICKNESS_M)
    return box(size, (0.0, 0.0, -_GROUND_THICKNESS_M / 2))


GROUND, BUILDING = "ground", "building"  # surface categories; vehicles are their kind, rigs RIG


@dataclass(frozen=True)
class Surface:
    """What a ray that hits scene object `object_id` has hit (for labels and shading)."""

    object_id: int
    name: str
    category: str  # GROUND, BUILDING or the vehicle kind
    material: str
    face_normals: np.ndarray  # (F, 3) in the object's own frame (vehicles: before yaw)


def face_normals(mesh: Mesh) -> np.ndarray:
    v = mesh.vertices[mesh.faces].astype(np.float64)
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


class TwinScene:
    """The Sionna RT scene of a scenario, with vehicles posed per frame."""

    def __init__(self, config: ScenarioConfig, pool: dict[str, int]):
        rt = sionna_rt()
        import mitsuba as mi

        self._mi = mi
        self.config = config
        self.models = load_vehicle_models(config)
        self.scene = rt.load_scene()
        self.scene.frequency = config.radio.carrier_hz
        self.scene.bandwidth = config.radio.bandwidth_hz
        self._materials: dict[str, object] = {}
        self._meshes: dict[str, Mesh] = {}  # per pool kind, in the object's own frame
        self._velocity: dict[int, tuple[float, float, float]] = {}  # last velocity set per object

        self.surfaces: list[Surface] = []
        objects = [self._object("ground", ground_box(config), config.street.ground_material, GROUND)]
        by_material: dict[str, list[Mesh]] = {}
        for mesh, material in building_boxes(config):
            by_material.setdefault(material, []).append(mesh)
        for material, meshes in sorted(by_material.items()):
            objects.append(self._object(f"buildings-{material}", merge(meshes), material, BUILDING))

        self.pool: dict[str, list[object]] = {}
        rig = config.traffic.ue_rig
        for kind, count in sorted(pool.items()):
            if kind == RIG:
                mesh, material = box(rig.size_m, (0.0, 0.0, rig.size_m[2] / 2)), rig.material
            else:
                mesh, material = self.models[kind].mesh, self.models[kind].material
            members = [self._object(f"{kind}-{i}", mesh, material, kind) for i in range(count)]
            self._meshes[kind] = mesh
            self.pool[kind] = members
            objects.extend(members)
        self.scene.add(objects)
        self._surface_by_id = {surface.object_id: surface for surface in self.surfaces}
        self._park_all()

        bs = config.base_station
        self.scene.tx_array = rt.PlanarArray(
            num_rows=1, num_cols=1, pattern=bs.array.pattern, polarization="V"
        )
        self.scene.rx_array = rt.PlanarArray(
            num_rows=1, num_cols=1, pattern=config.traffic.ue_antenna_pattern, polarization="V"
        )
        self.transmitter = rt.Transmitter(
            "bs",
            position=mi.Point3f(*bs.position_m),
            orientation=mi.Point3f(float(np.deg2rad(bs.yaw_deg)), 0.0, 0.0),
        )
        self.scene.add(self.transmitter)
        self._posed_run: int | None = None
        self._receivers: list[object] = []

    def _object(self, name: str, mesh: Mesh, material: str, category: str) -> object:
        rt = sionna_rt()
        mi = self._mi
        if material not in self._materials:
            self._materials[material] = rt.ITURadioMaterial(
                f"itu-{material}", material, thickness=_WALL_THICKNESS_M
            )
        mi_mesh = mi.Mesh(name, vertex_count=len(mesh.vertices), face_count=len(mesh.faces))
        params = mi.traverse(mi_mesh)
        params["vertex_positions"] = mi.Float(mesh.vertices.ravel())
        params["faces"] = mi.UInt32(mesh.faces.ravel())
        params.update()
        obj = rt.SceneObject(mi_mesh=mi_mesh, name=name, radio_material=self._materials[material])
        self.surfaces.append(Surface(obj.object_id, name, category, material, face_normals(mesh)))
        return obj

    def _parking_spot(self, row: int, i: int) -> np.ndarray:
        return _PARKING + np.array([20.0 * i, 20.0 * row, 5.0])

    def _park_all(self) -> None:
        """Send every pool member to its own spot in the far-away parking lot, at rest."""
        moves = {}
        for row, (kind, members) in enumerate(self.pool.items()):
            for i, obj in enumerate(members):
                self._set_velocity(obj, (0.0, 0.0, 0.0))
                moves[obj] = self._world_vertices(kind, self._parking_spot(row, i), 0.0)
        self._move(moves)

    def _set_velocity(self, obj: object, velocity: tuple[float, float, float]) -> None:
        """Sionna's per-object velocity (Doppler), updated only when it changes (an update each)."""
        velocity = tuple(float(v) for v in velocity)
        if self._velocity.get(obj.object_id) != velocity:
            obj.velocity = self._mi.Vector3f(*velocity)
            self._velocity[obj.object_id] = velocity

    def _world_vertices(self, kind: str, footprint: np.ndarray, yaw: float) -> np.ndarray:
        """Mesh vertices of a `kind` vehicle standing at `footprint` (ground centre) with heading `yaw`."""
        local = self._meshes[kind].vertices.astype(np.float64)
        c, s = np.cos(yaw), np.sin(yaw)
        world = np.empty_like(local)
        world[:, 0] = c * local[:, 0] - s * local[:, 1] + footprint[0]
        world[:, 1] = s * local[:, 0] + c * local[:, 1] + footprint[1]
        world[:, 2] = local[:, 2] + footprint[2]
        return world

    def _move(self, moves: dict[object, np.ndarray]) -> None:
        """Write new vertex positions of several objects with one scene update (one BVH rebuild).

        Setting `SceneObject.position` object by object rebuilds the acceleration structure every
        time; with a dozen vehicles that cost more than the ray tracing itself.
        """
        if not moves:
            return
        mi = self._mi
        params = self.scene.mi_scene_params
        for obj, vertices in moves.items():
            params[obj.mi_mesh.id() + ".vertex_positions"] = mi.Float(vertices.astype(np.float32).ravel())
        params.update()
        self.scene.scene_geometry_updated()

    def _slots(self, run: TrafficRun) -> list[object]:
        """The pool object that plays each vehicle of the run."""
        used: dict[str, int] = {}
        slots = []
        for vehicle in run.vehicles:
            i = used.get(vehicle.kind, 0)
            used[vehicle.kind] = i + 1
            slots.append(self.pool[vehicle.kind][i])
        return slots

    def surface(self, object_id: int) -> Surface:
        return self._surface_by_id[object_id]

    def vehicle_of_object(self, run: TrafficRun) -> dict[int, int]:
        """Scene object id → index of the run's vehicle it plays (vehicles not in the run: absent)."""
        return {obj.object_id: vehicle.index for vehicle, obj in zip(run.vehicles, self._slots(run))}

    def rigs_of(self, run: TrafficRun) -> dict[int, object]:
        """The roof rig object each served vehicle of the run carries (none without rigs)."""
        members = self.pool.get(RIG, [])
        return {int(v): members[i] for i, v in enumerate(run.served) if i < len(members)}

    def pose(self, run: TrafficRun, frame: int) -> None:
        """Move every vehicle of `run` (and the served ones' rigs) to where it is at `frame`, with its
        velocity there (in place; the scene is not rebuilt)."""
        slots = self._slots(run)
        if self._posed_run != run.run:
            self._park_all()
            self._posed_run = run.run
        velocities = run.velocity_at(frame)
        moves = {}
        for vehicle, obj, footprint, yaw, velocity in zip(
            run.vehicles, slots, run.positions[frame], run.yaws, velocities
        ):
            moves[obj] = self._world_vertices(vehicle.kind, footprint, yaw)
            self._set_velocity(obj, velocity)
        for index, rig in self.rigs_of(run).items():
            roof = run.positions[frame, index] + np.array([0.0, 0.0, run.vehicles[index].size_m[2]])
            moves[rig] = self._world_vertices(RIG, roof, float(run.yaws[index]))
            self._set_velocity(rig, velocities[index])
        self._move(moves)

    def place_receivers(
        self, positions: np.ndarray, velocities: np.ndarray, yaws: np.ndarray | None = None
    ) -> None:
        """Make the scene's receivers exactly these UE antennas (added or removed as needed), facing
        azimuth `yaws` (radians; their pattern's boresight; default +x)."""
        rt, mi = sionna_rt(), self._mi
        while len(self._receivers) < len(positions):
            rx = rt.Receiver(f"ue-{len(self._receivers)}", position=mi.Point3f(0.0, 0.0, 1.5))
            self.scene.add(rx)
            self._receivers.append(rx)
        while len(self._receivers) > len(positions):
            self.scene.remove(self._receivers.pop().name)
        yaws = np.zeros(len(positions)) if yaws is None else np.asarray(yaws, np.float64)
        for rx, position, velocity, yaw in zip(self._receivers, positions, velocities, yaws):
            rx.position = mi.Point3f(*map(float, position))
            rx.velocity = mi.Vector3f(*map(float, velocity))
            rx.orientation = mi.Point3f(float(yaw), 0.0, 0.0)

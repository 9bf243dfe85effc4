"""Triangle meshes in plain numpy: boxes, PLY files, and the segment-versus-box test for blockage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.errors import ConfigError

# Corner signs and outward normals of the six faces of an axis-aligned box; each face gets its own
# four vertices so that renderers shade boxes flat instead of smoothing across edges.
_FACES = (
    ((1, 0, 0), ((1, -1, -1), (1, 1, -1), (1, 1, 1), (1, -1, 1))),
    ((-1, 0, 0), ((-1, 1, -1), (-1, -1, -1), (-1, -1, 1), (-1, 1, 1))),
    ((0, 1, 0), ((1, 1, -1), (-1, 1, -1), (-1, 1, 1), (1, 1, 1))),
    ((0, -1, 0), ((-1, -1, -1), (1, -1, -1), (1, -1, 1), (-1, -1, 1))),
    ((0, 0, 1), ((-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1))),
    ((0, 0, -1), ((-1, 1, -1), (1, 1, -1), (1, -1, -1), (-1, -1, -1))),
)


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) uint32, counter-clockwise seen from outside

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def translated(self, offset: tuple[float, float, float] | np.ndarray) -> Mesh:
        return Mesh((self.vertices + np.asarray(offset, np.float32)).astype(np.float32), self.faces)


def box(size: tuple[float, float, float], center: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Mesh:
    """Closed axis-aligned box of `size` (x, y, z) centred at `center`."""
    half = np.asarray(size, np.float64) / 2
    verts, faces = [], []
    for _, corners in _FACES:
        base = len(verts)
        verts.extend(np.asarray(corners) * half + np.asarray(center))
        faces.extend([(base, base + 1, base + 2), (base, base + 2, base + 3)])
    return Mesh(np.asarray(verts, np.float32), np.asarray(faces, np.uint32))


def merge(meshes: list[Mesh]) -> Mesh:
    verts, faces, offset = [], [], 0
    for mesh in meshes:
        verts.append(mesh.vertices)
        faces.append(mesh.faces + offset)
        offset += len(mesh.vertices)
    return Mesh(np.concatenate(verts).astype(np.float32), np.concatenate(faces).astype(np.uint32))


def write_ply(path: str | Path, mesh: Mesh) -> None:
    """ASCII PLY with float vertices and triangle faces (readable by Mitsuba, PyVista and `read_ply`)."""
    lines = [
        "ply",
        "format ascii 1.0",
        f"element vertex {len(mesh.vertices)}",
        "property float x",
        "property float y",
        "property float z",
        f"element face {len(mesh.faces)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    lines += [f"{x:.6g} {y:.6g} {z:.6g}" for x, y, z in mesh.vertices]
    lines += [f"3 {a} {b} {c}" for a, b, c in mesh.faces]
    Path(path).write_text("\n".join(lines) + "\n")


def read_ply(path: str | Path) -> Mesh:
    """Read an ASCII triangle PLY; any other content is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: mesh file not found")
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip() != "ply" or "end_header" not in lines:
        raise ConfigError(f"{path}: expected an ASCII PLY mesh (header 'ply' ... 'end_header')")
    header = lines[: lines.index("end_header")]
    if "format ascii 1.0" not in header:
        raise ConfigError(f"{path}: expected 'format ascii 1.0' PLY")
    counts = {parts[1]: int(parts[2]) for parts in (h.split() for h in header) if parts[0] == "element"}
    n_vert, n_face = counts.get("vertex", 0), counts.get("face", 0)
    body = lines[len(header) + 1 :]
    if len(body) < n_vert + n_face or n_vert == 0 or n_face == 0:
        raise ConfigError(f"{path}: truncated PLY (expected {n_vert} vertices and {n_face} faces)")
    try:
        verts = np.array([[float(v) for v in line.split()[:3]] for line in body[:n_vert]], np.float32)
        faces = np.array([[int(v) for v in line.split()[1:4]] for line in body[n_vert : n_vert + n_face]])
    except ValueError as exc:
        raise ConfigError(f"{path}: malformed PLY body ({exc})") from exc
    if faces.min() < 0 or faces.max() >= n_vert:
        raise ConfigError(f"{path}: face indices outside the {n_vert} vertices")
    return Mesh(verts, faces.astype(np.uint32))


def segments_hit_boxes(
    starts: np.ndarray,
    ends: np.ndarray,
    centers: np.ndarray,
    half_extents: np.ndarray,
    yaws: np.ndarray,
) -> np.ndarray:
    """Whether each segment passes through each yawed box (slab test in the box frame).

    starts, ends: (S, 3); centers, half_extents: (B, 3); yaws: (B,) radians about z.
    Returns (S, B) booleans.
    """
    cos, sin = np.cos(yaws), np.sin(yaws)

    def to_box_frame(points: np.ndarray) -> np.ndarray:
        rel = points[:, None, :] - centers[None, :, :]
        x = rel[..., 0] * cos + rel[..., 1] * sin
        y = -rel[..., 0] * sin + rel[..., 1] * cos
        return np.stack([x, y, rel[..., 2]], axis=-1)

    p0, p1 = to_box_frame(starts), to_box_frame(ends)
    direction = p1 - p0
    with np.errstate(divide="ignore", invalid="ignore"):
        t_a = (-half_extents[None] - p0) / direction
        t_b = (half_extents[None] - p0) / direction
    t_near = np.where(direction == 0, -np.inf, np.minimum(t_a, t_b))
    t_far = np.where(direction == 0, np.inf, np.maximum(t_a, t_b))
    # A segment parallel to a slab only hits when it lies inside that slab.
    outside_parallel = (direction == 0) & (np.abs(p0) > half_extents[None])
    enter = np.clip(t_near.max(axis=-1), 0.0, None)
    leave = np.clip(t_far.min(axis=-1), None, 1.0)
    return (enter <= leave) & ~outside_parallel.any(axis=-1)


def vehicle_meshes() -> dict[str, Mesh]:
    """Low-poly vehicles shipped in assets/vehicles: x forward, centred in x and y, wheels on z = 0."""
    car = merge([box((4.5, 1.8, 0.7), (0.0, 0.0, 0.65)), box((2.5, 1.6, 0.45), (-0.3, 0.0, 1.225))])
    van = merge([box((5.2, 2.0, 0.85), (0.0, 0.0, 0.775)), box((4.2, 2.0, 1.0), (-0.5, 0.0, 1.7))])
    bus = box((12.0, 2.55, 2.85), (0.0, 0.0, 1.775))
    return {"car": car, "van": van, "bus": bus}


if __name__ == "__main__":  # regenerate the shipped vehicle meshes
    target = Path(__file__).resolve().parents[2] / "assets" / "vehicles"
    for name, mesh in vehicle_meshes().items():
        write_ply(target / f"{name}.ply", mesh)
        print(f"wrote {target / name}.ply")

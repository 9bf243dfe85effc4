"""Meshes and the segment-versus-box blockage test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.errors import ConfigError
from twin.trace.geometry import box, read_ply, segments_hit_boxes, vehicle_meshes, write_ply

ASSETS = Path(__file__).resolve().parents[3] / "assets" / "vehicles"


def test_box_is_closed_with_outward_faces() -> None:
    mesh = box((2.0, 4.0, 6.0), (1.0, 0.0, 3.0))
    low, high = mesh.bounds
    np.testing.assert_allclose(low, [0, -2, 0])
    np.testing.assert_allclose(high, [2, 2, 6])
    v = mesh.vertices[mesh.faces].astype(np.float64)
    normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    outward = np.einsum("ij,ij->i", normals, v.mean(axis=1) - [1.0, 0.0, 3.0])
    assert np.all(outward > 0)
    # Divergence theorem: the volume of a closed, consistently oriented mesh.
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
    assert volume == pytest.approx(48.0)


def test_ply_round_trip_and_shipped_assets_match_the_generator(tmp_path: Path) -> None:
    for name, mesh in vehicle_meshes().items():
        write_ply(tmp_path / f"{name}.ply", mesh)
        again = read_ply(tmp_path / f"{name}.ply")
        np.testing.assert_allclose(again.vertices, mesh.vertices, atol=1e-5)
        np.testing.assert_array_equal(again.faces, mesh.faces)
        shipped = read_ply(ASSETS / f"{name}.ply")
        np.testing.assert_allclose(shipped.vertices, mesh.vertices, atol=1e-5)


def test_bad_ply_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mesh file not found"):
        read_ply(tmp_path / "none.ply")
    bad = tmp_path / "bad.ply"
    bad.write_text("ply\nformat ascii 1.0\nelement vertex 3\nelement face 1\nend_header\n0 0 0\n")
    with pytest.raises(ConfigError, match=r"bad.ply: truncated PLY"):
        read_ply(bad)


def test_segments_hit_yawed_boxes() -> None:
    centers = np.array([[5.0, 0.0, 1.0]])
    half = np.array([[2.0, 0.5, 1.0]])
    starts = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 3.0], [0.0, 0.0, 1.0]])
    ends = np.array([[10.0, 0.0, 1.0], [2.5, 0.0, 1.0], [10.0, 0.0, 3.0], [0.0, 10.0, 1.0]])
    hits = segments_hit_boxes(starts, ends, centers, half, np.zeros(1))[:, 0]
    assert hits.tolist() == [True, False, False, False]
    # Turned by 90 degrees the box spans y in [-2, 2] at x = 5: a segment along y at x = 5 hits it.
    cross = segments_hit_boxes(
        np.array([[5.0, -5.0, 1.0]]), np.array([[5.0, 5.0, 1.0]]), centers, half, np.array([np.pi / 2])
    )
    assert cross[0, 0]
    missed = segments_hit_boxes(
        np.array([[6.0, -5.0, 1.0]]), np.array([[6.0, 5.0, 1.0]]), centers, half, np.array([np.pi / 2])
    )
    assert not missed[0, 0]

"""Tiny twin stores (one big enough to learn from: 8 drives of 20 frames, about 8 s to trace) and
synthetic drives for exact window checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from learners.data import DriveFrames, FrameSet
from tests.conftest import replace
from twin.dataset.generation import generate
from twin.scenario.config import ScenarioConfig
from twin.store.deployment import Deployment


@pytest.fixture(scope="session")
def tiny_store(tiny: ScenarioConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One served car per run: with several, the base station's camera, LiDAR and radar frames are
    the same for all of them, and only GPS could tell which car a label belongs to."""
    changes = {"dataset.drives": 8, "dataset.frames_per_drive": 20, "traffic.served_per_run": 1}
    path, _ = generate(replace(tiny, **changes), tmp_path_factory.mktemp("learners-cache"), progress=False)
    return path


@pytest.fixture(scope="session")
def shared_store(tiny: ScenarioConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny scenario as shipped: two served cars per run share the run's sensor frames."""
    path, _ = generate(tiny, tmp_path_factory.mktemp("learners-shared"), progress=False)
    return path


def synthetic_frames(frames: int = 6, beams: int = 8, drives: int = 2) -> FrameSet:
    """Drives whose per-frame values encode the frame index, so windows can be checked exactly."""
    angles = tuple(np.linspace(-45, 45, beams))
    deployment = Deployment(num_beams=beams, angles_deg=angles, frame_rate_hz=10.0, noise_power_dbm=-90.0)
    out = []
    for d in range(drives):
        t = np.arange(frames, dtype=np.float32)
        gps = np.stack([t, -t, t * 0, t * 0], 1) + 100 * d
        out.append(
            DriveFrames(
                id=f"run{d:05d}-ue00",
                group=f"run{d}",
                inputs={
                    "gps": gps.astype(np.float32),
                    "camera": np.ones((frames, 3, 2, 2), np.float32) * t[:, None, None, None],
                },
                masks={"gps": np.ones(frames, bool), "camera": t != 2},
                best=(np.arange(frames) % beams).astype(np.int64),
                rsrp=np.tile(np.arange(beams, dtype=np.float32), (frames, 1)) + 10 * t[:, None],
            )
        )
    return FrameSet(
        "synthetic", deployment, out, ("camera", "gps", "beams"), {"camera": (3, 2, 2), "gps": (4,)}
    )


@pytest.fixture(scope="session")
def trained_beamtransfuser(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BeamTransFuser trained for two epochs on the tiny store (for compression and generation)."""
    from learners.train import fit

    folder = tmp_path_factory.mktemp("btf") / "beamtransfuser"
    fit(tiny_store, {"model": "beamtransfuser", "epochs": 2, "seed": 0}, folder, progress=False)
    return folder

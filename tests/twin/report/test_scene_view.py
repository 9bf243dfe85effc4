"""The 3D scene view shows what happened: street, buildings, base station, both beams, the UE, blockers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from twin.loop.evaluate import evaluate, evaluation_from
from twin.report import scene_view
from twin.scenario.config import ScenarioConfig
from twin.scenario.faults import faults_from


def _share(image: np.ndarray, color: str, tolerance: int = 40) -> float:
    """Share of the picture's pixels within `tolerance` of `color` in every channel (lit or shaded
    surfaces differ a little from their nominal colour)."""
    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(image.astype(int) - rgb).max(axis=-1) <= tolerance).mean())


def test_the_scene_view_draws_street_buildings_beams_ue_and_blockers(
    tiny: ScenarioConfig, tiny_store: Path, tmp_path: Path
) -> None:
    config = evaluation_from(
        {"seeds": [0], "conditions": ["scenario"], "blockage_rates_per_s": [], "dropout_probabilities": [],
         "bootstrap": 10, "workers": 1, "plots": False, "snapshot": False}
    )  # fmt: skip
    faults = faults_from({"blockage": {"rate_per_s": 5.0, "duration_s": [0.2, 0.4], "attenuation_db": 20.0}})
    result = evaluate(tiny_store, faults, config, ["genie", "tracking"], progress=False)
    path = scene_view.snapshot(result, tmp_path / "scene.png")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[:2] == (1000, 1600)
    for name, color, least in [
        ("road", "#5f5f5f", 0.05),
        ("concrete building", scene_view.MATERIAL_COLORS["concrete"], 0.01),
        ("served beam", scene_view.SERVED, 0.0005),
        ("oracle beam", scene_view.ORACLE, 0.0002),
        ("UE and trajectory", scene_view.UE, 0.0002),
        ("base station", "#1f5fbf", 0.00005),
        ("served vehicle", "#d62728", 0.0002),
    ]:
        assert _share(image, color) >= least, name
    drawn = np.flatnonzero((image < 250).any(axis=-1).any(axis=0))
    assert drawn[0] < 0.2 * image.shape[1] and drawn[-1] > 0.8 * image.shape[1]  # the street fills the view
    assert result.timeline.injected.any()  # the frame drawn has the injected blocker in it

"""The transfer study's code path on a tiny twin store (with blocked frames written in) and a
synthetic scenario-17 folder: four predictors per horizon, the pretrained one fine-tuned from the
twin-only weights, one table."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from learners.blockage.checkpoint import load_blockage
from learners.blockage.fit import BlockageTrainConfig
from learners.blockage_study import VARIANTS, study_horizon, table
from tests.learners.test_blockage_windows import write_dataset


@pytest.fixture()
def blocked_store(tiny_store: Path, tmp_path: Path) -> Path:
    """The tiny store with every fourth frame blocked (its traffic never blocks the link)."""
    path = tmp_path / "blocked.h5"
    shutil.copy(tiny_store, path)
    with h5py.File(path, "r+") as f:
        for episode in f["episodes"].values():
            blocked = episode["blocked"]
            blocked[...] = np.arange(blocked.shape[0]) % 4 == 0
    return path


def test_the_study_trains_four_predictors_and_prints_one_table(blocked_store: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "scenario17", horizon=3).parent
    config = BlockageTrainConfig(epochs=2, threads=1)
    rows = study_horizon(blocked_store, data, 3, 0.5, 0.25, tmp_path / "out", config)
    assert set(rows) == {*VARIANTS, "majority"}
    assert rows["real-trained"]["train_windows"] == 14 and rows["share from scratch"]["train_windows"] == 7
    assert rows["twin-only"]["train_windows"] == 60  # 6 of 8 runs, 10 windows each, at horizon 3
    for name in VARIANTS:
        assert 0 <= rows[name]["accuracy"] <= 1 and rows[name]["samples"] == 14
    tuned = load_blockage(tmp_path / "out" / "future-3" / "twin-pretrained + share")
    assert tuned.config["train"]["init_from"] == str(tmp_path / "out" / "future-3" / "twin-only")
    text = table({3: rows}, 0.5)
    assert "future-3   twin-pretrained + 50% real" in text and "twin-only gap" in text

"""The JEPA blockage head (learners.jepa_blockage): pretraining reads no label, the head trains with
the backbone frozen, "always clear" and the shipped GRU are scored by the task's own functions, the
same seed gives the same numbers, and the table prints; on synthetic series folders (always) and on
DeepSense scenario 17's future-1 split at a tiny scale (where ../shared/data exists)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from learners import jepa_blockage
from learners.blockage.checkpoint import load_blockage
from learners.blockage.fit import evaluate, fit_classifier
from learners.blockage.windows import read_series, series_csv
from learners.blockage_shipped import shipped_blockage
from learners.jepa_blockage import (
    JEPABlockage,
    SeriesSweeps,
    Settings,
    fit_jepa_blockage,
    read_splits,
    run,
    table,
)
from tests.learners.test_blockage_windows import REAL, needs_real, write_dataset
from twin.errors import ConfigError

TINY = {"pretrain_epochs": 2, "pretrain_batch": 16, "head_epochs": 3}


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    """A scenario folder with a future-1 split of 16 windows, half of them labelled blocked."""
    write_dataset(tmp_path, frames=24, horizon=1)
    return tmp_path


def test_pretraining_windows_carry_sweeps_only(synthetic: Path) -> None:
    item = SeriesSweeps(read_series(series_csv(synthetic / "future-1", "train")))[0]
    assert set(item) == {"inputs", "masks"} and item["inputs"]["beams"].shape == (8, 64)
    assert abs(float(item["inputs"]["beams"].mean())) < 1e-5  # the task's per-window normalisation


def _frozen_fit(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[bool, bool]:
    """Whether the backbone's weights are the same after the head's training as before it, and
    whether the head's changed."""
    splits = read_splits(folder, 1.0, 0)
    captured: dict[str, dict[str, torch.Tensor]] = {}

    def spy(model: JEPABlockage, *args: Any, **kwargs: Any) -> Any:  # as the head's training starts
        captured["backbone"] = {k: v.clone() for k, v in model.backbone.state_dict().items()}
        captured["head"] = {k: v.clone() for k, v in model.head.state_dict().items()}
        return fit_classifier(model, *args, **kwargs)

    monkeypatch.setattr(jepa_blockage, "fit_classifier", spy)
    model, _ = fit_jepa_blockage(splits["train"], splits["val"], Settings(**TINY), log=lambda line: None)
    backbone_same = all(
        torch.equal(v, captured["backbone"][k]) for k, v in model.backbone.state_dict().items()
    )
    head_moved = any(not torch.equal(v, captured["head"][k]) for k, v in model.head.state_dict().items())
    return backbone_same, head_moved


def test_the_head_trains_with_the_backbone_frozen(synthetic: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backbone_same, head_moved = _frozen_fit(synthetic / "future-1", monkeypatch)
    assert backbone_same and head_moved


def test_the_table_prints_beside_the_shipped_gru_and_is_deterministic(synthetic: Path) -> None:
    s = Settings(data=str(synthetic), horizons=(1,), **TINY)
    first = run(s, log=lambda line: None)
    rows = first[1]
    test = read_series(series_csv(synthetic / "future-1", "test"))
    gru = load_blockage(shipped_blockage(1))
    shipped = evaluate(gru.model, test, gru.threshold)
    assert {k: rows["shipped GRU"][k] for k in shipped} == shipped
    assert (
        rows["always clear"]["accuracy"] == pytest.approx(1 - test.labels.mean())
        and rows["always clear"]["f1"] == 0
    )
    jepa = rows["JEPA head (RF only, frozen)"]
    assert 0 <= jepa["accuracy"] <= 1 and jepa["samples"] == len(test) and jepa["trainable"] > 0
    again = run(s, log=lambda line: None)[1]["JEPA head (RF only, frozen)"]
    assert {k: again[k] for k in ("accuracy", "f1", "best_epoch", "pretrain_loss")} == {
        k: jepa[k] for k in ("accuracy", "f1", "best_epoch", "pretrain_loss")
    }
    text = table(first)
    assert "| future-1 | JEPA head (RF only, frozen) |" in text and "| future-1 | always clear | 0 |" in text


def test_missing_data_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^data = '.*nowhere': not found \(expected DeepSense's scenario17"
    ):
        run(Settings(data=str(tmp_path / "nowhere")), log=lambda line: None)


@needs_real
def test_on_scenario_17_future_1_at_a_tiny_scale() -> None:
    s = Settings(horizons=(1,), share=0.2, **TINY)
    first = run(s, log=lambda line: None)
    again = run(s, log=lambda line: None)
    jepa, twice = first[1]["JEPA head (RF only, frozen)"], again[1]["JEPA head (RF only, frozen)"]
    assert (jepa["accuracy"], jepa["f1"], jepa["pretrain_loss"]) == (
        twice["accuracy"],
        twice["f1"],
        twice["pretrain_loss"],
    )
    assert jepa["samples"] == 10  # 20 % of the 50 test windows
    assert np.isfinite(jepa["pretrain_loss"]).all()
    assert "| future-1 | shipped GRU | 8,449 |" in table(first)


@needs_real
def test_the_backbone_stays_frozen_on_scenario_17(monkeypatch: pytest.MonkeyPatch) -> None:
    backbone_same, head_moved = _frozen_fit(REAL / "future-1", monkeypatch)
    assert backbone_same and head_moved

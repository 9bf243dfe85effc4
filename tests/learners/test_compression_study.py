"""The Fig. 6 analogue: one trained BeamTransFuser pruned to several retentions, rows that match the
budgets, the unpruned row equal to the checkpoint, refusals for unreachable whole-model budgets, the
CSV and plot, and one-line errors for bad settings."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from learners.checkpoint import read_config
from learners.compression_study import describe, run_study, structure_model, study_config
from learners.pruning import fusion_parameter_count
from twin.errors import ConfigError


def test_rows_follow_the_budgets_and_the_outputs_are_written(
    trained_beamtransfuser: Path, tmp_path: Path
) -> None:
    settings = {"checkpoint": str(trained_beamtransfuser), "ratios": [0.6, 1.0], "epochs": 0,
                "calibration": 16, "latency_windows": 3, "threads": 1, "out": str(tmp_path)}  # fmt: skip
    rows = run_study(settings)
    assert [r.retention for r in rows] == [1.0, 0.6]  # descending, the unpruned model first
    full, pruned = (r.to_csv() for r in rows)
    assert full["model_share"] == 1 and full["fusion_share"] == 1
    assert pruned["fusion_share"] == pytest.approx(0.6, abs=0.01)  # the budget, within ±1 %
    assert pruned["parameters"] < full["parameters"]
    for row in (full, pruned):
        assert 0 <= row["top1"] <= row["top2"] <= row["top3"] <= 1 and 0 <= row["dba"] <= 1
    # The unpruned row is the checkpoint itself: its validation scores are those it was saved with.
    saved = read_config(trained_beamtransfuser)["metrics"]
    assert full["top1"] == pytest.approx(saved["top1"]) and full["dba"] == pytest.approx(saved["dba"])
    with open(tmp_path / "compression_study.csv") as handle:
        written = list(csv.DictReader(handle))
    assert [float(r["retention"]) for r in written] == [1.0, 0.6]
    assert (tmp_path / "compression_study.png").stat().st_size > 0
    table = describe(rows, study_config(settings))
    assert table.count("\n| ") == 3 and "| 0.6 |" in table  # header and two rows
    # The structure-only path (an untrained preset, cut to the widths) has the pruned model's sizes.
    assert fusion_parameter_count(structure_model("tiny", 0.6, "fusion")) == pruned["fusion_parameters"]


def test_a_whole_model_budget_out_of_reach_is_listed_as_refused(
    trained_beamtransfuser: Path, tmp_path: Path
) -> None:
    settings = {"checkpoint": str(trained_beamtransfuser), "ratios": [1.0, 0.4], "base": "model", "epochs": 0,
                "calibration": 8, "latency_windows": 2, "threads": 1, "out": str(tmp_path)}  # fmt: skip
    rows = run_study(settings)
    assert rows[1].measurement is None and "pruning them keeps at least" in rows[1].refused
    assert "refused: " in describe(rows, study_config(settings))


def test_structure_only_rows_shrink_with_the_retention(tmp_path: Path) -> None:
    settings = {"preset": "tiny", "ratios": [1.0, 0.7, 0.4], "latency_windows": 2, "threads": 1,
                "out": str(tmp_path)}  # fmt: skip
    rows = [r.to_csv() for r in run_study(settings)]
    assert [r["fusion_share"] for r in rows] == pytest.approx([1.0, 0.7, 0.4], abs=0.01)
    assert rows[0]["parameters"] > rows[1]["parameters"] > rows[2]["parameters"]
    assert all(r["dba"] is None and r["p50_ms"] > 0 for r in rows)  # no accuracy without training


def test_bad_settings_fail_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"compression_study\.ratios.*retentions in \(0, 1\]"):
        study_config({"checkpoint": "x", "ratios": [0.5, 1.5]})
    with pytest.raises(ConfigError, match=r"compression_study\.base"):
        study_config({"checkpoint": "x", "base": "everything"})
    with pytest.raises(ConfigError, match=r"give checkpoint=.* or preset=tiny\|mid\|paper"):
        study_config({"checkpoint": "x", "preset": "paper"})

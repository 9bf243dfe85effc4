"""The Fig. 6 analogue: one trained BeamTransFuser pruned to several retentions, rows that match the
budgets, the unpruned row equal to the checkpoint, refusals for unreachable whole-model budgets, the
CSV and plot, and one-line errors for bad settings."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from learners.checkpoint import read_config
from learners.compression_study import describe, run_study, study_config
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


def test_a_whole_model_budget_out_of_reach_is_listed_as_refused(
    trained_beamtransfuser: Path, tmp_path: Path
) -> None:
    settings = {"checkpoint": str(trained_beamtransfuser), "ratios": [1.0, 0.4], "base": "model", "epochs": 0,
                "calibration": 8, "latency_windows": 2, "threads": 1, "out": str(tmp_path)}  # fmt: skip
    rows = run_study(settings)
    assert rows[1].measurement is None and "pruning them keeps at least" in rows[1].refused
    assert "refused: " in describe(rows, study_config(settings))


def test_bad_settings_fail_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"compression_study\.ratios.*retentions in \(0, 1\]"):
        study_config({"checkpoint": "x", "ratios": [0.5, 1.5]})
    with pytest.raises(ConfigError, match=r"compression_study\.base"):
        study_config({"checkpoint": "x", "base": "everything"})

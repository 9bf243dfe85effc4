"""The evaluator and the report: grid, reuse of unaffected runs, files that agree with results.json."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from twin.benchmarks.synthetic import synthetic_store
from twin.errors import ConfigError
from twin.loop.evaluate import _Runner, evaluate, evaluation_from, fault_grid, replay_drive
from twin.loop.metrics import METRIC_NAMES, frame_metrics
from twin.loop.policies import make_policy
from twin.report import write_report
from twin.report.tables import TABLE_METRICS
from twin.scenario.config import ScenarioConfig
from twin.scenario.faults import faults_from

POLICIES = ["genie", "exhaustive", "hierarchical", "tracking", "gps", "stale", "random"]
SCENARIO_FAULTS = faults_from(
    {
        "blockage": {"rate_per_s": 0.5, "duration_s": [0.3, 1.0]},
        "dropout": {"camera": {"probability": 0.2}, "gps": {"probability": 0.3, "mode": "partial"}},
    }
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_store(tmp_path_factory.mktemp("evaluate") / "s.h5", drives=4, frames=30)


@pytest.fixture(scope="module")
def small_config():  # type: ignore[no-untyped-def]
    return evaluation_from(
        {
            "seeds": [0, 1],
            "blockage_rates_per_s": [0.5],
            "dropout_probabilities": [0.5],
            "dropout_modalities": ["camera", "gps"],
            "bootstrap": 200,
            "snapshot": False,
            "workers": 1,
        }
    )


def test_grid_and_rows(store: Path, small_config) -> None:  # type: ignore[no-untyped-def]
    result = evaluate(store, SCENARIO_FAULTS, small_config, POLICIES, progress=False)
    names = [c.name for c in result.conditions]
    assert names == ["clean", "scenario", "blockage 0.5/s", "camera dropout 0.5", "gps dropout 0.5"]
    assert len(result.rows) == len(POLICIES) * len(names)
    for row in result.rows:
        assert row["frames"] == 4 * 30 * 2 and row["drives"] == 4 and row["seeds"] == 2
        for m in METRIC_NAMES:
            assert row[m]["low"] <= row[m]["mean"] + 1e-12 and row[m]["mean"] <= row[m]["high"] + 1e-12
    for condition in names:
        genie = result.estimate("genie", condition)
        assert genie["snr_loss_db"].mean == 0.0 and genie["top1"].mean == 1.0 and genie["dba"].mean == 1.0
        assert result.estimate("random", condition)["top1"].mean < 0.2
    clean, blocked = result.estimate("genie", "clean"), result.estimate("genie", "blockage 0.5/s")
    assert blocked["rate"].mean < clean["rate"].mean  # injected blockage costs even the oracle
    gps_clean, gps_dropout = result.estimate("gps", "clean"), result.estimate("gps", "gps dropout 0.5")
    assert gps_dropout["snr_loss_db"].mean > gps_clean["snr_loss_db"].mean
    assert set(result.decisions_per_s) == set(POLICIES) and result.timeline is not None


def test_reused_runs_equal_fresh_runs_under_dropout_they_cannot_see(store: Path, small_config) -> None:  # type: ignore[no-untyped-def]
    """Classical policies do not read the camera: their camera-dropout rows come from the clean runs,
    and replaying them with the camera (and its dropout) in the observation gives identical numbers."""
    result = evaluate(store, SCENARIO_FAULTS, small_config, ["tracking"], progress=False)
    grid = {c.name: c for c in fault_grid(SCENARIO_FAULTS, small_config, ("camera", "gps"))}
    assert result.estimate("tracking", "camera dropout 0.5") == result.estimate("tracking", "clean")
    from twin.loop.env import BeamSelectionEnv

    policy = make_policy("tracking")
    seeing = _Runner(policy, BeamSelectionEnv(store, modalities=["camera", "gps"]), frozenset())
    blind = _Runner(policy, BeamSelectionEnv(store, modalities=[]), frozenset())
    for drive in seeing.env.replay.drives:
        a = frame_metrics(replay_drive(seeing, drive, grid["camera dropout 0.5"].faults, 1), 0.0)
        b = frame_metrics(replay_drive(blind, drive, grid["clean"].faults, 1), 0.0)
        assert all(np.array_equal(a[m], b[m]) for m in METRIC_NAMES)


def test_parallel_workers_give_the_same_numbers(store: Path, small_config) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    one = evaluate(store, SCENARIO_FAULTS, small_config, POLICIES, progress=False)
    two = evaluate(
        store, SCENARIO_FAULTS, dataclasses.replace(small_config, workers=2), POLICIES, progress=False
    )
    assert one.rows == two.rows


def test_report_files_exist_and_agree_with_results_json(store: Path, small_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = evaluate(store, SCENARIO_FAULTS, small_config, POLICIES, progress=False)
    files = write_report(result, tmp_path, "synthetic")
    for name in ("results_csv", "results_json", "summary", "snr_loss_cdf", "rate_over_time", "degradation"):
        assert files[name].exists() and files[name].stat().st_size > 0, name
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["policies"] == POLICIES and document["main_condition"] == "scenario"
    assert set(document["files"].values()) >= {"results.csv", "summary.md", "snr_loss_cdf.png"}
    rows = {(r["policy"], r["condition"]): r for r in document["rows"]}
    with (tmp_path / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows)
    for line in table:
        row = rows[(line["policy"], line["condition"])]
        for m in METRIC_NAMES:
            assert float(line[m]) == row[m]["mean"]
            assert float(line[f"{m}_low"]) == row[m]["low"] and float(line[f"{m}_high"]) == row[m]["high"]
    # The summary's main table shows the same numbers, rounded.
    summary = (tmp_path / "summary.md").read_text()
    for policy in POLICIES:
        line = next(x for x in summary.splitlines() if x.startswith(f"| {policy} |"))
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        for metric, cell in zip(TABLE_METRICS, cells):
            mean, low, high = (float(v) for v in re.findall(r"-?\d+\.\d+|nan", cell))
            estimate = rows[(policy, "scenario")][metric]
            digits = len(cell.split(" ")[0].split(".")[1])
            assert mean == pytest.approx(estimate["mean"], abs=0.6 * 10**-digits)
            assert low == pytest.approx(estimate["low"], abs=0.6 * 10**-digits)
            assert high == pytest.approx(estimate["high"], abs=0.6 * 10**-digits)
    for image in ("snr_loss_cdf.png", "rate_over_time.png", "degradation.png"):
        assert f"]({image})" in summary


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"seeds": []}, "evaluation.seeds = []: expected at least one seed"),
        (
            {"conditions": ["clean", "storm"]},
            "evaluation.conditions = ['clean', 'storm']: expected values among",
        ),
        (
            {"dropout_probabilities": [1.5]},
            "evaluation.dropout_probabilities = [1.5]: expected values in [0, 1]",
        ),
        (
            {"policy_options": {"oracle": {}}},
            "evaluation.policy_options.oracle: unknown policy; available: genie",
        ),
        (
            {"policy_options": {"stale": {"period_frames": 0}}},
            "evaluation.policy_options.stale.period_frames = 0",
        ),
        ({"bogus": 1}, "evaluation.bogus: unknown key; allowed keys: seeds"),
    ],
)
def test_bad_evaluation_values_are_one_line_errors(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        evaluation_from(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_tiny_twin_store_end_to_end_with_snapshot(
    tiny: ScenarioConfig, tiny_store: Path, tmp_path: Path
) -> None:
    config = evaluation_from({"seeds": [0], "dropout_probabilities": [0.5], "blockage_rates_per_s": [2.0]})
    result = evaluate(tiny_store, tiny.faults, config, POLICIES, progress=False)
    files = write_report(result, tmp_path, "tiny")
    assert result.estimate("genie", "scenario")["snr_loss_db"].mean == 0.0
    assert files["scene"].stat().st_size > 5_000  # the PyVista snapshot rendered off-screen
    document = json.loads(files["results_json"].read_text())
    assert document["store"]["truth"] == "noiseless"
    assert not [n for n in document["notes"] if "not drawn" in n]


def test_multirun_sweeps_fault_levels(tiny_store: Path, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "twin.run", "-m", "scenario=tiny", f"cache_dir={tiny_store.parent}",
        "progress=false", "scenario.faults.blockage.rate_per_s=0,2", "evaluation.seeds=[0]",
        "evaluation.blockage_rates_per_s=[]", "evaluation.dropout_probabilities=[]",
        "evaluation.snapshot=false", "evaluation.plots=false", "policies=[genie,tracking]",
        "learned.train=[]", f"hydra.sweep.dir={tmp_path}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "traced" not in result.stdout  # the cached store serves every fault level
    levels = []
    for job in ("0", "1"):
        document = json.loads((tmp_path / job / "results.json").read_text())
        levels.append(document["scenario_faults"]["blockage"]["rate_per_s"])
        assert {r["policy"] for r in document["rows"]} == {"genie", "tracking"}
    assert levels == [0.0, 2.0]

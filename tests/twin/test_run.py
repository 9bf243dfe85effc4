"""The main job end to end on the tiny scenario, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_main_job_generates_and_summarises(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "twin.run", "scenario=tiny", f"cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}", f"learned.checkpoint_dir={tmp_path / 'checkpoints'}",
        "learned.train=[beamtransfuser]", "progress=false",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "traced 20 frames" in out
    assert "drives/frames  4 drives, 20 frames" in out
    assert "line of sight" in out and "best beam 0..63" in out
    assert (tmp_path / "run" / "dataset_summary.png").stat().st_size > 10_000
    stores = list((tmp_path / "cache").glob("tiny-*.h5"))
    assert len(stores) == 1 and str(stores[0]) in out
    # BeamTransFuser (tiny preset) trained first, then scored beside the classical policies on the
    # drives of the run it never trained on (the tiny scenario: 2 runs of 2 drives).
    assert f"training       beamtransfuser on {stores[0]}" in out and "beamtransfuser epoch 1:" in out
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {"beamtransfuser", "genie", "gps"} <= {row["policy"] for row in document["rows"]}
    assert len(document["drives"]) == 2 and all(row["drives"] == 2 for row in document["rows"])
    assert any("never trained on" in note for note in document["notes"])
    # Second run: data and checkpoint from the caches, nothing traced or trained.
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert again.returncode == 0 and "traced" not in again.stdout and "epoch" not in again.stdout


def test_main_job_replays_real_deepsense_sweeps(tmp_path: Path) -> None:
    import pytest

    data = REPO.parent / "shared" / "data" / "deepsense6g"
    if not (data / "scenario17").is_dir():
        pytest.skip(f"real DeepSense data not found at {data} (CI has ../shared beside the repo)")
    command = [
        sys.executable, "-m", "twin.run", "replay=deepsense", f"replay.path={data}",
        "replay.scenario=scenario17", "replay.limit=300", "policies=[genie,exhaustive,random]",
        "evaluation.seeds=[0]",
        "evaluation.snapshot=false", f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}",
        "progress=false",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "drives/frames  1 drives, 300 frames" in result.stdout
    assert "line of sight  not labelled in this data" in result.stdout
    assert (tmp_path / "run" / "results.json").is_file()
    missing = subprocess.run(
        [sys.executable, "-m", "twin.run", "replay=deepsense", f"cache_dir={tmp_path}",
         f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: replay.path: missing; expected the deepsense dataset folder"


def test_the_same_command_gives_the_same_numbers(tmp_path: Path) -> None:
    """Twice, each time training afresh: identical results.csv, and training ran for its epochs
    (no wall-clock budget by default, so how fast or busy the machine is does not matter)."""
    import csv

    tables, histories = [], []
    for attempt in ("first", "second"):
        command = [
            sys.executable, "-m", "twin.run", "scenario=tiny", f"cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / attempt}", f"learned.checkpoint_dir={tmp_path / attempt / 'ck'}",
            "learned.train=[beamtransfuser]", "progress=false", "evaluation.snapshot=false",
            "evaluation.plots=false",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "time budget" not in result.stdout
        with (tmp_path / attempt / "results.csv").open() as f:
            tables.append(list(csv.DictReader(f)))
        (config,) = (tmp_path / attempt / "ck").rglob("config.json")
        meta = json.loads(config.read_text())
        histories.append([entry["epoch"] for entry in meta["history"]])
        assert meta["stopped"] in ("epochs", "early stop") and meta["train"]["time_budget_s"] == 0
    first, second = tables
    assert len(first) == len(second) > 0 and histories[0] == histories[1]
    assert {row["policy"] for row in first} >= {"beamtransfuser", "genie"}
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            try:
                assert float(a[key]) == float(b[key]) or (a[key] == b[key] == "nan"), (key, a, b)
            except ValueError:
                assert a[key] == b[key], key

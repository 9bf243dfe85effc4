"""The checkpoints that ship with the project: they load, fit the default scenario's store, never
trained on a run the main job evaluates, and a damaged one (or the wmfm on a store with csi) is refused in
one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from learners.checkpoint import CheckpointError, load_checkpoint
from learners.shipped import (
    DERIVED,
    FAMILIES,
    TRAINING_FIRST_RUN,
    check_fits,
    shipped_kind,
    shipped_models,
    trained_runs,
)
from tests.conftest import REPO
from twin.dataset.generation import root_attributes, run_indices
from twin.errors import ConfigError
from twin.radio.codebook import Codebook
from twin.scenario.config import load_scenario
from twin.store.deployment import Deployment

SCENARIO = load_scenario(REPO / "scenarios" / "urban_street.yaml")


def default_store_context(subcarriers: int = 0) -> SimpleNamespace:
    """What the main job's urban_street store holds (without tracing it): fields, codebook and array
    (`subcarriers`: as if it also held csi over that many)."""
    attrs = root_attributes(SCENARIO, Codebook.from_config(SCENARIO.base_station))
    fields = (
        "t",
        "rsrp_dbm",
        "best_beam",
        *json.loads(attrs["modalities"]),
        *(("csi",) if subcarriers else ()),
    )
    deployment = Deployment(
        num_beams=attrs["num_beams"],
        angles_deg=(),
        frame_rate_hz=attrs["frame_rate_hz"],
        noise_power_dbm=attrs["noise_power_dbm"],
        num_antennas=attrs["num_antennas"],
        num_subcarriers=subcarriers,
    )
    return SimpleNamespace(
        num_beams=attrs["num_beams"], fields=fields, path="urban_street (default)", deployment=deployment
    )


def test_every_family_ships_a_checkpoint_that_loads_and_fits_the_default_store() -> None:
    shipped = shipped_models("urban_street")
    assert set(FAMILIES) | set(DERIVED) <= set(shipped)
    context = default_store_context()
    for name, folder in shipped.items():
        checkpoint = load_checkpoint(folder)
        assert checkpoint.kind == shipped_kind(name)
        assert getattr(checkpoint.model, "pruned", False) == name.endswith("_pruned")
        check_fits(folder, context)
        size = sum(f.stat().st_size for f in folder.iterdir())
        assert size < 4 << 20, f"{folder}: {size} bytes; shipped checkpoints stay small"


def test_the_shipped_wmfm_reads_the_narrowband_channel_and_refuses_a_store_with_csi() -> None:
    folder = shipped_models("urban_street")["wmfm"]
    with pytest.raises(
        ConfigError, match=r"wmfm: trained on channel inputs \(2, 16, 1\), but store .* \(2, 16, 8\)"
    ):
        check_fits(folder, default_store_context(subcarriers=8))


def test_shipped_checkpoints_never_trained_on_a_run_the_main_job_evaluates() -> None:
    evaluated = set(run_indices(SCENARIO))
    for folder in shipped_models("urban_street").values():
        runs = trained_runs(folder)
        assert runs and min(runs) >= TRAINING_FIRST_RUN
        assert not runs & evaluated


def test_a_checkpoint_that_does_not_fit_the_store_is_refused_in_one_line() -> None:
    folder = shipped_models("urban_street")["beamtransfuser"]
    other_codebook = SimpleNamespace(num_beams=32, fields=default_store_context().fields, path="s.h5")
    with pytest.raises(CheckpointError, match=r"predicts 64 beams, the store s\.h5 has 32$"):
        check_fits(folder, other_codebook)
    no_camera = SimpleNamespace(num_beams=64, fields=("t", "rsrp_dbm", "best_beam", "gps"), path="s.h5")
    with pytest.raises(CheckpointError) as info:
        check_fits(folder, no_camera)
    assert "reads camera ('camera')" in str(info.value) and "\n" not in str(info.value)


def test_a_damaged_shipped_checkpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    damaged = tmp_path / "beamtransfuser"
    shutil.copytree(shipped_models("urban_street")["beamtransfuser"], damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(damaged)
    assert str(weights) in str(info.value) and "\n" not in str(info.value)


def test_the_retraining_command_refuses_an_unknown_family_before_tracing(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "learners.shipped", "scenario=tiny", "families=[gru,nope]",
               f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: families: ['nope'] are not shipped families; expected some of [")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "cache").exists()
    typo = subprocess.run(
        [*command[:3], "familes=[gru]"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert typo.returncode == 2 and typo.stderr.startswith(
        "error: familes: unknown key; allowed keys: scenario,"
    )
    assert "families, shipped_drives" in typo.stderr

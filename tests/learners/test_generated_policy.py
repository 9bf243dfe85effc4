"""BeamTransFuser in the closed loop with a pruned checkpoint or a generated missing modality: the
policy options, the registered variants and the main job on a tiny store."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from learners.checkpoint import CheckpointError, load_checkpoint
from learners.models.cvae import FilledInputs
from learners.policy import LearnedOptions, policy_class
from learners.train import fit, generator_settings
from tests.conftest import REPO
from twin.errors import ConfigError
from twin.loop.drives import load_drives


@pytest.fixture(scope="module")
def generator(
    tiny_store: Path, trained_beamtransfuser: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("generator") / "cvae"
    settings = generator_settings({"model": "cvae", "epochs": 1, "seed": 0}, trained_beamtransfuser, "radar")
    fit(tiny_store, settings, folder, progress=False)
    return folder


def test_generate_option_fills_only_the_missing_frames(generator: Path, trained_beamtransfuser: Path) -> None:
    policy = policy_class("beamtransfuser")(LearnedOptions(checkpoint=str(trained_beamtransfuser),
                                                           generate=str(generator)))  # fmt: skip
    model = policy.model
    assert (
        isinstance(model, FilledInputs)
        and model.inputs == load_checkpoint(trained_beamtransfuser).model.inputs
    )
    shapes = model.context.shapes
    g = torch.Generator().manual_seed(0)
    inputs = {m: torch.randn(2, model.context.history, *s, generator=g) for m, s in shapes.items()}
    masks = {m: torch.ones(2, model.context.history, dtype=torch.bool) for m in shapes}
    with torch.no_grad():
        plain = model.predictor(inputs, masks)
        torch.testing.assert_close(model(inputs, masks), plain)  # nothing missing: nothing generated
        masks["radar"][:] = False
        assert not torch.allclose(model(inputs, masks), model.predictor(inputs, masks))
    # Without a checkpoint, the generated variant runs the predictor frozen inside the CVAE checkpoint.
    variant = policy_class("beamtransfuser", "generated")(LearnedOptions(generate=str(generator)))
    assert variant.name == "beamtransfuser_generated" and isinstance(variant.model, FilledInputs)


def test_bad_options_fail_in_one_line(trained_beamtransfuser: Path, tiny_store: Path, tmp_path: Path) -> None:
    context = load_drives(tiny_store).context
    rng = np.random.default_rng(0)
    missing = r"^evaluation\.policy_options\.beamtransfuser_generated\.generate: missing"
    with pytest.raises(ConfigError, match=missing):  # at reset: the name alone is a valid policy
        policy_class("beamtransfuser", "generated")(LearnedOptions()).reset(context, rng)
    with pytest.raises(ConfigError, match=r"\.beamtransfuser_pruned\.checkpoint: missing"):
        policy_class("beamtransfuser", "pruned")(LearnedOptions()).reset(context, rng)
    with pytest.raises(CheckpointError, match=r": a beamtransfuser checkpoint; .*generate takes a cvae one"):
        policy_class("beamtransfuser")(LearnedOptions(generate=str(trained_beamtransfuser)))
    with pytest.raises(CheckpointError, match=r": not a pruned checkpoint \(python -m learners.compress"):
        policy_class("beamtransfuser", "pruned")(LearnedOptions(checkpoint=str(trained_beamtransfuser)))
    with pytest.raises(CheckpointError, match=r"not found"):
        policy_class("beamtransfuser")(LearnedOptions(generate=str(tmp_path / "none")))


def test_main_job_compares_masked_and_generated_under_radar_dropout(
    tiny_store: Path, trained_beamtransfuser: Path, generator: Path, tmp_path: Path
) -> None:
    options = "evaluation.policy_options"
    command = [
        sys.executable, "-m", "twin.run", "scenario=tiny", "scenario.dataset.drives=8",
        "scenario.dataset.frames_per_drive=20", "scenario.traffic.served_per_run=1",
        f"cache_dir={tiny_store.parent}", f"hydra.run.dir={tmp_path / 'run'}", "progress=false",
        "learned.train=[]", "learned.shipped=false", "evaluation.snapshot=false",
        "policies=[genie,beamtransfuser,beamtransfuser_generated]",
        f"{options}.beamtransfuser.checkpoint={trained_beamtransfuser}",
        f"{options}.beamtransfuser_generated.generate={generator}",
        "evaluation.seeds=[0]", "evaluation.conditions=[clean]", "evaluation.blockage_rates_per_s=[]",
        "evaluation.dropout_probabilities=[1.0]", "evaluation.dropout_modalities=[radar]",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "run" / "results.csv") as f:
        rows = {(r["policy"], r["condition"]): r for r in csv.DictReader(f)}
    for policy in ("beamtransfuser", "beamtransfuser_generated"):
        assert 0 <= float(rows[(policy, "radar dropout 1")]["dba"]) <= 1
        assert (policy, "clean") in rows

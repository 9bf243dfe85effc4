"""Splitting-and-pruning of BeamTransFuser: masks, importance, the budget, the pruned model against the
masked one, the pruned checkpoint, and the command that prints both models' figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from learners import pruning
from learners.checkpoint import CheckpointError, load_checkpoint
from learners.compress import compress, compress_config, fusion_keep
from learners.models.registry import build_model
from tests.conftest import REPO
from tests.learners.models.test_beamtransfuser import batch, context
from twin.errors import ConfigError


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("beamtransfuser", {"dropout": 0.0}, context()).eval()


@pytest.fixture(scope="module")
def trained(trained_beamtransfuser: Path) -> Path:
    return trained_beamtransfuser


@torch.no_grad()
def test_a_full_mask_and_ratio_one_reproduce_the_logits(model) -> None:
    inputs, masks = batch(3)
    reference = model(inputs, masks)
    full = {(s, "embed", 0): torch.ones(model.fusion[s].dim, dtype=torch.bool) for s in range(4)}
    with pruning.masked(model, full):
        torch.testing.assert_close(model(inputs, masks), reference, atol=1e-5, rtol=0)
    widths = pruning.plan_widths(model, 1.0)
    assert widths == pruning.block_widths(model.options)
    keeps = pruning.phase_keeps(model, [(inputs, masks)], "ffn", widths)
    assert keeps == {}  # nothing to prune at retention 1
    assert torch.equal(pruning.prune(model, keeps).eval()(inputs, masks), reference)


@torch.no_grad()
@pytest.mark.parametrize("phase", pruning.PHASES)
def test_pruned_model_equals_the_masked_original(model, phase: str) -> None:
    inputs, masks = batch(3, seed=2)
    targets = pruning.plan_widths(model, 0.5)
    generator = torch.Generator().manual_seed(1)
    keeps = {}
    for stage, (full, target) in enumerate(zip(pruning.block_widths(model.options), targets)):

        def pick(size: int, count: int) -> torch.Tensor:
            return torch.sort(torch.randperm(size, generator=generator)[:count]).values

        heads = model.options.heads
        if phase == "embed":
            keeps[stage] = pruning.BlockKeep(embed=pick(full.embed, target.embed))
        elif phase == "head_dims":
            per_head = [torch.cat([h * full.head_dims[0] + pick(full.head_dims[0], target.head_dims[0])
                                   for h in range(heads)])]  # fmt: skip
            keeps[stage] = pruning.BlockKeep(head_dims=per_head)
        else:
            keeps[stage] = pruning.BlockKeep(ffn=[pick(full.ffn[0], target.ffn[0])])
    with pruning.masked(model, pruning.masks_of(model, phase, keeps)):
        reference = model(inputs, masks)
    pruned = pruning.prune(model, keeps).eval()
    torch.testing.assert_close(pruned(inputs, masks), reference, atol=1e-5, rtol=0)
    assert pruning.parameter_count(pruned) < pruning.parameter_count(model)
    assert pruned.options.heads == model.options.heads  # all heads kept
    assert not torch.equal(reference, model(inputs, masks))  # the masks did something


@torch.no_grad()
def test_a_dead_structure_scores_zero_and_a_planted_critical_channel_scores_highest(model) -> None:
    planted = build_model("beamtransfuser", {"dropout": 0.0}, context()).eval()
    planted.load_state_dict(model.state_dict())
    layer = planted.fusion[3].encoder.layers[0]
    layer.linear2.weight[:, 5] = 0  # FFN neuron 5 feeds nothing: dead
    layer.linear2.weight[:, 7] *= 200  # neuron 7 dominates the block's output
    layer.linear1.bias[7] = 5.0
    scores = pruning.importance(planted, [batch(4, seed=3)], 3, "ffn", "exact")[0]
    assert scores[5] == 0.0
    assert int(scores.argmax()) == 7 and scores.min() >= 0


def test_parameters_meet_the_budget_in_proportion_per_block_with_shapes_kept(model) -> None:
    inputs, masks = batch(2, seed=4)
    for keep in (0.9, 0.6, 0.4):
        current = model
        targets = pruning.plan_widths(model, keep)
        for phase in pruning.PHASES:
            current = pruning.prune(current, pruning.phase_keeps(current, [(inputs, masks)], phase, targets,
                                                                  "grouped", 16))  # fmt: skip
        for block, pruned_block in zip(model.fusion, current.fusion):
            share = pruning.parameter_count(pruned_block) / pruning.parameter_count(block)
            assert share == pytest.approx(keep, rel=0.01)
        fusion = pruning.fusion_parameter_count(current) / pruning.fusion_parameter_count(model)
        assert fusion == pytest.approx(keep, rel=0.01)
        assert current.eval()(inputs, masks).shape == model(inputs, masks).shape


def test_whole_model_budget_beyond_the_fusion_blocks_is_refused_in_one_line(model) -> None:
    share = pruning.fusion_parameter_count(model) / pruning.parameter_count(model)
    assert fusion_keep(model, 1 - share / 2, "model") == pytest.approx(0.5)
    refused = r"^compress\.ratio = 0\.4 with base=model: the fusion blocks hold .*use base=fusion or a ratio"
    with pytest.raises(ConfigError, match=refused):
        fusion_keep(model, 0.4, "model")


def test_bad_settings_fail_in_one_line(tmp_path: Path) -> None:
    for ratio in (0, 1.5, -0.1):
        with pytest.raises(ConfigError, match=r"^compress\.ratio = .*: expected a fraction in \(0, 1\]"):
            compress_config({"checkpoint": "x", "ratio": ratio})
    with pytest.raises(CheckpointError, match=r"^checkpoint '.*nothing': not found"):
        compress({"checkpoint": str(tmp_path / "nothing"), "ratio": 0.5})


def test_compress_prunes_fine_tunes_and_the_checkpoint_round_trips(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned"
    config = {"checkpoint": str(trained), "ratio": 0.5, "epochs": 1, "calibration": 16, "group": 16,
              "latency_windows": 5, "out": str(out)}  # fmt: skip
    result = compress(config)
    assert result.retained_fusion == pytest.approx(0.5, rel=0.01)
    assert result.retained_model < 1 and result.pruned.latency_ms[0] > 0
    assert [p["phase"] for p in result.phases] == list(pruning.PHASES)
    loaded = load_checkpoint(out)
    assert loaded.model.pruned and loaded.config["compression"]["ratio"] == 0.5
    assert loaded.config["train"]["init_from"] == str(trained)  # not the temporary folder it tuned from
    assert loaded.model.options.embed_widths == tuple(b.widths.embed for b in loaded.model.fusion)
    assert pruning.parameter_count(loaded.model) == result.pruned.parameters
    with pytest.raises(CheckpointError, match="already pruned"):
        compress({**config, "checkpoint": str(out), "out": str(tmp_path / "again")})


def test_command_line_prints_both_models(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "learners.compress", f"checkpoint={trained}", "ratio=0.6", "epochs=1",
               "calibration=8", "group=32", "latency_windows=3", f"out={out}",
               f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (
        "original" in result.stdout and "pruned" in result.stdout and "of the fusion blocks" in result.stdout
    )
    assert load_checkpoint(out).model.pruned
    bad_command = [*command[:4], "ratio=1.5", command[-1]]
    bad = subprocess.run(bad_command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: compress.ratio = 1.5: expected a fraction in (0, 1]")
    missing = subprocess.run([*command[:3], f"checkpoint={tmp_path / 'none'}", "ratio=0.5"],
                             capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1

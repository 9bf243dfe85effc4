"""Branch pruning (beyond the paper): the inner channels of the CNN branches' residual blocks. Nothing
pruned at retention 1, the cut model equal to the masked one, the shared budget, unchanged block
shapes, the KL importance of dead and planted channels, the pruned checkpoint as a policy, and
one-line errors for bad branch widths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learners import pruning
from learners.checkpoint import CheckpointError, load_checkpoint
from learners.compress import compress, fusion_keep
from learners.compression_study import describe, run_study, study_config
from learners.latency_profile import main as latency_profile
from learners.models.beamtransfuser import BasicBlock
from learners.models.registry import build_model, model_options
from learners.policy import LearnedOptions, collate, policy_class
from tests.learners.models.test_beamtransfuser import batch, context
from twin.errors import ConfigError
from twin.loop.env import BeamSelectionEnv


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("beamtransfuser", {"dropout": 0.0}, context()).eval()


def _block_shapes(model: torch.nn.Module, inputs: dict, masks: dict) -> list[tuple[tuple, tuple]]:
    """(input shape, output shape) of every residual block in one forward pass."""
    seen: list[tuple[tuple, tuple]] = []
    handles = [
        b.register_forward_hook(lambda _, x, y: seen.append((tuple(x[0].shape), tuple(y.shape))))
        for b in model.modules()
        if isinstance(b, BasicBlock)
    ]
    try:
        with torch.no_grad():
            model(inputs, masks)
    finally:
        for h in handles:
            h.remove()
    return seen


@torch.no_grad()
def test_retention_one_prunes_nothing_and_reproduces_the_logits(model) -> None:
    inputs, masks = batch(3)
    reference = model(inputs, masks)
    targets = pruning.plan_branch_widths(model, 1.0)
    assert targets == pruning.branch_widths(model)
    keeps = pruning.branch_keeps(model, [(inputs, masks)], targets)
    assert keeps == {}
    same = pruning.prune(model, keeps).eval()
    assert same.options.branch_widths == {} and torch.equal(same(inputs, masks), reference)
    full = {(s, "branch", slot): torch.ones(w, dtype=torch.bool)
            for s, widths in enumerate(targets) for slot, w in enumerate(widths)}  # fmt: skip
    with pruning.masked(model, full):
        assert torch.equal(model(inputs, masks), reference)


@torch.no_grad()
def test_branch_pruned_model_equals_the_masked_original_with_block_shapes_kept(model) -> None:
    inputs, masks = batch(3, seed=2)
    generator = torch.Generator().manual_seed(1)
    keeps = {}
    for stage, (full, target) in enumerate(
        zip(pruning.branch_widths(model), pruning.plan_branch_widths(model, 0.5))
    ):
        picks = [torch.sort(torch.randperm(n, generator=generator)[:t]).values for n, t in zip(full, target)]
        keeps[stage] = pruning.BlockKeep(branch=picks)
    with pruning.masked(model, pruning.masks_of(model, "branch", keeps)):
        reference = model(inputs, masks)
    assert not torch.allclose(reference, model(inputs, masks))  # the masks did something
    pruned = pruning.prune(model, keeps).eval()
    torch.testing.assert_close(pruned(inputs, masks), reference, atol=1e-5, rtol=0)
    assert pruned.options.branch_widths == {
        m: tuple(int(k.numel()) for s in range(4) for (name, _, _), k in
                 zip(pruning.stage_blocks(model, s), keeps[s].branch) if name == m)
        for m in model.images
    }  # fmt: skip
    assert _block_shapes(pruned, inputs, masks) == _block_shapes(model, inputs, masks)
    fusion = {k: v.shape for k, v in model.state_dict().items() if k.startswith("fusion.")}
    assert {k: v.shape for k, v in pruned.state_dict().items() if k.startswith("fusion.")} == fusion


def test_retention_is_shared_by_fusion_and_branch_blocks_within_one_percent(model) -> None:
    inputs, masks = batch(2, seed=4)
    parts = lambda m: pruning.fusion_parameter_count(m) + pruning.branch_block_parameter_count(m)  # noqa: E731
    total = pruning.parameter_count(model)
    # base=fusion: the pruned parts keep `ratio`; base=model: the whole model does, far below the
    # fusion-only floor (0.86 of tiny).
    for ratio, base in ((0.6, "fusion"), (0.4, "fusion"), (0.3, "model")):
        keep = fusion_keep(model, ratio, base, branches=True)
        current = model
        for phase in pruning.phases(True):
            if phase == "branch":
                targets = pruning.plan_branch_widths(model, keep)
                keeps = pruning.branch_keeps(current, [(inputs, masks)], targets, "grouped", 16)
            else:
                targets = pruning.plan_widths(model, keep)
                keeps = pruning.phase_keeps(current, [(inputs, masks)], phase, targets, "grouped", 16)
            current = pruning.prune(current, keeps)
        assert parts(current) / parts(model) == pytest.approx(keep, rel=0.01)
        branch = pruning.branch_block_parameter_count(current) / pruning.branch_block_parameter_count(model)
        assert branch == pytest.approx(keep, rel=0.01)
        if base == "model":
            assert pruning.parameter_count(current) / total == pytest.approx(ratio, rel=0.01)
        assert _block_shapes(current, inputs, masks) == _block_shapes(model, inputs, masks)
    with pytest.raises(ConfigError, match=r"^compress\.ratio = 0\.5 with base=model: the fusion blocks hold"):
        fusion_keep(model, 0.5, "model")  # without branches the same retention is out of reach


@torch.no_grad()
def test_a_dead_inner_channel_scores_zero_and_a_planted_critical_one_highest(model) -> None:
    planted = build_model("beamtransfuser", {"dropout": 0.0}, context()).eval()
    planted.load_state_dict(model.state_dict())
    block = planted.branches["camera"].stages[3][0]
    block.conv2.weight[:, 5] = 0  # inner channel 5 feeds nothing: dead
    block.conv2.weight[:, 7] *= 200  # channel 7 dominates the block's output
    block.bn1.bias[7] = 5.0
    slots = pruning.stage_blocks(planted, 3)
    assert slots[0][:2] == ("camera", 3)
    scores = pruning.importance(planted, [batch(4, seed=3)], 3, "branch", "exact")
    assert len(scores) == len(slots)
    assert scores[0][5] == 0.0
    assert int(scores[0].argmax()) == 7 and min(float(s.min()) for s in scores) >= 0


def test_bad_branch_widths_fail_in_one_line() -> None:
    key = r"^model\.options\.branch_widths"
    cases = {
        key + r"\.camera = \[4, 4\]: expected one width per residual block \(4\)$": {"camera": [4, 4]},
        key + r"\.lidar\[2\] = 65: expected a width between 1 and 64 \(block 2 is in stage 2\)$":
            {"lidar": [8, 8, 65, 8]},
        key + r"\.radar\[0\] = 0: expected a width between 1 and 16": {"radar": [0, 8, 8, 8]},
        key + r"\.gps: not an image branch of this model; expected one of camera, lidar": {"gps": [1]},
    }  # fmt: skip
    for message, widths in cases.items():
        with pytest.raises(ConfigError, match=message):
            model_options(
                "beamtransfuser", {"branch_widths": widths, "modalities": ["camera", "lidar", "radar"]}
            )
    with pytest.raises(
        ConfigError, match=r"radar: not an image branch of this model; expected one of camera$"
    ):
        model_options(
            "beamtransfuser", {"branch_widths": {"radar": [1, 1, 1, 1]}, "modalities": ["camera", "gps"]}
        )


def test_the_branch_pruned_checkpoint_reloads_and_runs_as_a_policy(
    trained_beamtransfuser: Path, tiny_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pruned"
    config = {"checkpoint": str(trained_beamtransfuser), "ratio": 0.5, "branches": True, "epochs": 1,
              "calibration": 8, "group": 32, "latency_windows": 3, "threads": 1, "out": str(out)}  # fmt: skip
    result = compress(config)
    assert [p["phase"] for p in result.phases] == [*pruning.PHASES, "branch"]
    assert result.retained_branches == pytest.approx(0.5, rel=0.01)
    assert result.retained_fusion == pytest.approx(0.5, rel=0.01)
    loaded = load_checkpoint(out)
    assert loaded.model.pruned and set(loaded.model.options.branch_widths) == set(loaded.model.images)
    assert pruning.parameter_count(loaded.model) == result.pruned.parameters
    assert loaded.config["compression"]["branches"] is True
    assert pruning.branch_widths(loaded.model) == pruning.plan_branch_widths(
        load_checkpoint(trained_beamtransfuser).model, 0.5
    )

    policy = policy_class("beamtransfuser", "pruned")(LearnedOptions(checkpoint=str(out)))
    sensors = BeamSelectionEnv(tiny_store, modalities=[]).context.sensors
    envs = [BeamSelectionEnv(tiny_store, modalities=sorted(policy.reads(sensors))) for _ in range(2)]
    observations = [env.reset(options={"episode": i})[0] for i, env in enumerate(envs)]
    policy.reset_batch(envs[0].context, [np.random.default_rng(i) for i in range(2)])
    for _ in range(4):
        logits = policy.scores(observations)
        with torch.inference_mode():
            inputs, masks = collate(policy.windows)
            reference = policy.model(inputs, masks)[:, 0].numpy()
        np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-5)
        observations = [env.step(int(np.argmax(row)))[0] for env, row in zip(envs, logits)]

    # A checkpoint whose recorded branch widths do not match its tensors is refused in one line.
    config_file = out / "config.json"
    saved = json.loads(config_file.read_text())
    saved["options"]["branch_widths"]["camera"][0] += 1
    config_file.write_text(json.dumps(saved))
    with pytest.raises(
        CheckpointError,
        match=r"tensor 'branches\.camera\.stages\.0\.0\.bn1\.bias' is \(\d+,\).*the model expects",
    ) as error:
        load_checkpoint(out)
    assert "\n" not in str(error.value)


def test_latency_profile_adds_the_branch_pruned_row(capsys: pytest.CaptureFixture[str]) -> None:
    latency_profile(["preset=tiny", "retention=0.6", "windows=2", "threads=1", "branches=true"])
    table = capsys.readouterr().out
    assert "| fusion + branches retention 0.6 |" in table and "| fusion retention 0.6 |" in table
    with pytest.raises(ConfigError, match=r"^latency_profile: branches=yes: expected true or false$"):
        latency_profile(["branches=yes"])


def test_structure_study_with_branches_reaches_whole_model_retentions_fusion_alone_cannot(
    tmp_path: Path,
) -> None:
    settings = {"preset": "tiny", "ratios": [1.0, 0.5], "base": "model", "branches": True,
                "latency_windows": 2, "threads": 1, "out": str(tmp_path)}  # fmt: skip
    rows = run_study(settings)
    cut = rows[1].to_csv()
    assert cut["model_share"] == pytest.approx(0.5, rel=0.01)  # fusion alone: 0.86 at the least
    assert cut["branch_share"] == pytest.approx(cut["fusion_share"], abs=0.01)  # one shared keep
    assert describe(rows, study_config(settings)).startswith("Fig. 6 analogue (model retention")
    labelled = describe(rows, study_config({**settings, "base": "fusion"}))
    assert labelled.startswith("Fig. 6 analogue (fusion + branch blocks retention")
    assert "| branch blocks (share) |" in labelled

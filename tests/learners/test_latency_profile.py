"""learners.latency_profile: the fusion-removed model, the component split and its error line."""

from __future__ import annotations

import pytest
import torch

from learners.compression_study import random_windows, structure_model
from learners.latency_profile import component_modules, main, profile, profile_interleaved, without_fusion
from learners.pruning import parameter_count
from twin.errors import ConfigError


def test_mid_preset_sits_between_tiny_and_paper() -> None:
    sizes = [parameter_count(structure_model(p, 1.0, "fusion")) for p in ("tiny", "mid")]
    assert 3_000_000 < sizes[1] < 8_000_000 and sizes[0] < sizes[1]


def test_without_fusion_pools_the_unfused_branch_maps() -> None:
    model = without_fusion(structure_model("tiny", 1.0, "fusion"))
    inputs, masks = random_windows(model, 1, torch.Generator().manual_seed(3))[0]
    with torch.no_grad():
        logits = model(inputs, masks)
        features = []
        for m in model.images:
            x = inputs[m][:, -model.frames :].flatten(0, 1)
            for s in range(4):
                x = model.branches[m].stage(s, x)
            features.append(x.mean(dim=(-2, -1)).view(1, model.frames, -1).mean(1))
        gps = model.gps_encoder(torch.cat([inputs["gps"], torch.ones(1, 5, 1)], -1).flatten(1))
        for stage in model.gps_stages:
            gps = stage(gps)
        weights = torch.softmax(model.modality_weights, 0)
        fused = (weights[:, None] * torch.stack([*features, gps[0:1].expand(1, -1)], 1)[0]).sum(0)
        expected = model.head(fused[None]).view_as(logits)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_profile_names_every_component_and_leaves_no_hooks() -> None:
    model = structure_model("tiny", 0.6, "fusion")
    result = profile(model, random_windows(model, 2, torch.Generator().manual_seed(0)), threads=1)
    assert set(result.parts_ms) == {*component_modules(model), "other"}
    assert result.parts_ms["fusion"] > 0 and result.total_ms > 0
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_unknown_option_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^latency_profile: 'presets=paper': expected KEY=VALUE"):
        main(["presets=paper"])
    with pytest.raises(
        ConfigError, match=r"^latency_profile: preset=huge: expected one of tiny, mid, paper$"
    ):
        main(["preset=huge"])
    with pytest.raises(ConfigError, match=r"^latency_profile: expected 0 < retention <= 1"):
        main(["retention=1.5"])


def test_interleaved_profiles_one_row_per_model_and_leaves_no_hooks() -> None:
    models = {
        "unpruned": structure_model("tiny", 1.0, "fusion"),
        "pruned": structure_model("tiny", 0.4, "fusion", True),
    }
    rows = profile_interleaved(
        models, random_windows(models["unpruned"], 2, torch.Generator().manual_seed(0)), 1
    )
    assert list(rows) == ["unpruned", "pruned"] and all(r.total_ms > 0 for r in rows.values())
    assert not any(
        m._forward_hooks or m._forward_pre_hooks for model in models.values() for m in model.modules()
    )

"""BeamTransFuser: the paper's sizes, masks that really remove a modality, learning, and the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from learners.losses import beam_targets, focal_loss
from learners.models.beamtransfuser import PRESETS
from learners.models.registry import ModelContext, build_model, model_options
from twin.errors import ConfigError
from twin.store.deployment import Deployment

K = 64
TINY_SHAPES = {"camera": (3, 36, 64), "lidar": (1, 32, 64), "radar": (2, 32, 32), "gps": (4,)}


def context(shapes: dict = TINY_SHAPES, history: int = 5, future: int = 1) -> ModelContext:
    deployment = Deployment(num_beams=K, angles_deg=tuple(np.linspace(-45, 45, K)), frame_rate_hz=10.0,
                            noise_power_dbm=-87.0)  # fmt: skip
    return ModelContext(K, history, future, shapes, deployment)


def batch(size: int = 2, history: int = 5, seed: int = 0) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    inputs = {m: torch.randn(size, history, *shape, generator=g) for m, shape in TINY_SHAPES.items()}
    masks = {m: torch.ones(size, history, dtype=torch.bool) for m in TINY_SHAPES}
    return inputs, masks


def test_paper_preset_has_the_papers_parameter_budget() -> None:
    shapes = {"camera": (3, 256, 256), "lidar": (1, 256, 256), "radar": (2, 256, 64), "gps": (4,)}
    model = build_model("beamtransfuser", {"preset": "paper"}, context(shapes))
    count = lambda prefix: sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))  # noqa: E731
    # Table II of the paper: camera 21.3 M, LiDAR 11.17 M, radar 11.18 M, fusion 34.52 M, 78.42 M total.
    assert count("branches.camera") / 1e6 == pytest.approx(21.3, abs=0.1)
    assert count("branches.lidar") / 1e6 == pytest.approx(11.17, abs=0.05)
    assert count("branches.radar") / 1e6 == pytest.approx(11.18, abs=0.05)
    assert count("fusion") / 1e6 == pytest.approx(34.52, rel=0.05)
    assert count("") / 1e6 == pytest.approx(78.42, rel=0.02)
    assert model.options.channels == (64, 128, 256, 512) and model.options.heads == 4
    assert model.options.layers == 8 and model.options.ffn_ratio == 4


def test_tiny_preset_is_small_and_explicit_options_override_the_preset() -> None:
    model = build_model("beamtransfuser", {"preset": "tiny"}, context())
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    options = model_options("beamtransfuser", {"preset": "tiny", "layers": 3})
    assert options.layers == 3 and options.channels == PRESETS["tiny"]["channels"]


def test_output_is_logits_per_future_frame() -> None:
    model = build_model("beamtransfuser", {}, context(future=3)).eval()
    assert model(*batch(4)).shape == (4, 3, K)


def test_a_masked_modality_has_no_influence_on_the_decision() -> None:
    model = build_model("beamtransfuser", {}, context()).eval()
    inputs, masks = batch()
    masks["camera"][:] = False
    changed = dict(inputs, camera=torch.randn_like(inputs["camera"]) * 10)
    with torch.no_grad():
        np.testing.assert_allclose(model(inputs, masks), model(changed, masks), atol=1e-5)
        masks_on = dict(masks, camera=torch.ones_like(masks["camera"]))
        assert not torch.allclose(model(inputs, masks_on), model(changed, masks_on), atol=1e-3)
        # One masked frame of the GPS history changes nothing either.
        masks["gps"][:, 1] = False
        gps_changed = dict(inputs, gps=inputs["gps"].clone())
        gps_changed["gps"][:, 1] += 5
        np.testing.assert_allclose(model(inputs, masks), model(gps_changed, masks), atol=1e-5)


def test_every_modality_missing_still_gives_finite_logits() -> None:
    model = build_model("beamtransfuser", {}, context()).eval()
    inputs, masks = batch()
    masks = {m: torch.zeros_like(v) for m, v in masks.items()}
    with torch.no_grad():
        assert torch.isfinite(model(inputs, masks)).all()


def test_modality_subset_builds_only_those_branches() -> None:
    model = build_model("beamtransfuser", {"modalities": ["radar", "gps"]}, context())
    assert set(model.branches) == {"radar"} and model.inputs == ("radar", "gps")
    inputs, masks = batch()
    with torch.no_grad():
        assert model.eval()(
            {m: inputs[m] for m in ("radar", "gps")}, {m: masks[m] for m in ("radar", "gps")}
        ).shape == (2, 1, K)


def test_overfits_one_small_batch() -> None:
    torch.manual_seed(0)
    model = build_model("beamtransfuser", {"dropout": 0.0}, context())
    inputs, masks = batch(8, seed=3)
    target = torch.tensor([[3], [60], [17], [42], [8], [33], [51], [25]])
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = focal_loss(model(inputs, masks), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        assert (model(inputs, masks).argmax(-1) == target).all()


def test_options_are_validated_in_one_line() -> None:
    with pytest.raises(
        ConfigError, match=r"^model\.options\.channels\[1\] = 30: expected a multiple of heads \(4\)$"
    ):
        model_options("beamtransfuser", {"channels": [16, 30, 64, 64]})
    with pytest.raises(ConfigError, match=r"^model\.options\.modalities = \['sonar'\]: expected"):
        model_options("beamtransfuser", {"modalities": ["sonar"]})
    with pytest.raises(
        ConfigError, match=r"^model\.options\.preset = 'huge': expected one of tiny, mid, paper$"
    ):
        model_options("beamtransfuser", {"preset": "huge"})


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_smaller_above() -> None:
    logits = torch.randn(6, 2, K, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, K, (6, 2), generator=torch.Generator().manual_seed(1))
    ce = F.cross_entropy(logits.reshape(-1, K), target.reshape(-1))
    assert focal_loss(logits, target, gamma=0.0) == pytest.approx(float(ce), rel=1e-6)
    assert focal_loss(logits, target, gamma=2.0) < ce
    mask = torch.tensor([[True, False]] * 6)
    assert focal_loss(logits, target, mask, gamma=0.0) == pytest.approx(
        float(F.cross_entropy(logits[:, 0], target[:, 0])), rel=1e-6
    )


def test_soft_beam_targets_peak_at_the_beam_and_sum_to_one() -> None:
    q = beam_targets(torch.tensor([10, 0]), K, sigma_beams=2.0)
    np.testing.assert_allclose(q.sum(-1), [1.0, 1.0], rtol=1e-6)
    assert q[0].argmax() == 10 and q[0, 9] == pytest.approx(float(q[0, 11]))
    assert q[0, 10] / q[0, 12] == pytest.approx(np.exp(0.5), rel=1e-5)  # Gaussian, sigma 2 beams


def test_attention_matches_torchs_encoder_layer_and_old_checkpoints_convert(tmp_path) -> None:
    from safetensors.torch import save_file
    from torch import nn

    from learners.checkpoint import load_checkpoint, save_checkpoint
    from learners.data import DataConfig
    from learners.models.beamtransfuser import PrunableEncoder, PrunableEncoderLayer, convert_legacy_state

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, 0.1, batch_first=True, norm_first=True)
    reference = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    ours = PrunableEncoder([PrunableEncoderLayer(16, 4, 4, 32, 4, 0.1) for _ in range(2)]).eval()
    ours.load_state_dict(convert_legacy_state(reference.state_dict()))
    x, ignore = torch.randn(3, 7, 16), torch.zeros(3, 7, dtype=torch.bool)
    ignore[0, 2:] = True
    with torch.no_grad():
        torch.testing.assert_close(ours(x, ignore, None), reference(x, src_key_padding_mask=ignore))
    # A checkpoint in the packed layout (q, k, v in one in_proj) loads into the separate projections.
    model = build_model("beamtransfuser", {}, context()).eval()
    folder = save_checkpoint(tmp_path / "old", model, DataConfig(), {})
    packed = {}
    for name, tensor in model.state_dict().items():
        for kind in ("weight", "bias"):
            if name.endswith(f"self_attn.q_proj.{kind}"):
                stem = name[: -len(f"q_proj.{kind}")]
                parts = [model.state_dict()[f"{stem}{p}_proj.{kind}"] for p in "qkv"]
                packed[f"{stem}in_proj_{kind}"] = torch.cat(parts).contiguous()
        if not any(f"self_attn.{p}_proj." in name for p in "qkv"):
            packed[name] = tensor.contiguous()
    save_file(packed, str(folder / "model.safetensors"))
    loaded = load_checkpoint(folder).model
    inputs, masks = batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs, masks), model(inputs, masks))

"""JEPA world model: one contiguous masked block per modality, masked inputs never reach the context
encoder's output, the EMA target's closed form, schedule end points and missing gradients, RankMe on
isotropic and low-rank data, exact constant-velocity extrapolation, a short pretraining lowering
the loss, the beam head overfitting a batch on the frozen backbone, the paper preset's parameter
counts, one-line config errors, and on the tiny store: deterministic training, the checkpoint round
trip and the policy in the batched closed loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from learners.checkpoint import load_checkpoint
from learners.closed_loop import run_closed_loop
from learners.models.jepa import JEPA, block_masks, ema_update, lda_rank, momentum, rankme
from learners.models.registry import ModelContext, build_model
from learners.preprocess import preprocess_config
from learners.train import _freeze, fit, train_config
from twin.errors import ConfigError
from twin.loop.policies import make_policy
from twin.store.deployment import Deployment

SHAPES = {"camera": (3, 18, 32), "radar": (2, 16, 16), "lidar": (1, 16, 64), "gps": (4,)}
K, H, F = 16, 8, 6
SHIPPED_LIKE = {"model": "jepa", "epochs": 1, "batch_size": 16, "seed": 2,
                "options": {"pretrain_epochs": 1},
                "data": {"history": H, "future": F, "future_sensors": True, "stride": 4}}  # fmt: skip


def small_model(beams: int = K, **options: object) -> JEPA:
    deployment = Deployment(
        num_beams=beams, angles_deg=tuple(np.linspace(-45, 45, beams)), frame_rate_hz=10.0,
        noise_power_dbm=-90.0,
    )  # fmt: skip
    context = ModelContext(beams, H, F, SHAPES, deployment, preprocess_config({}))
    torch.manual_seed(0)
    return build_model("jepa", {"preset": "tiny", **options}, context)  # type: ignore[return-value]


def pretraining_batch(size: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = {m: torch.randn(size, H, *s, generator=g) for m, s in SHAPES.items()}
    inputs["beams"] = torch.randint(0, K, (size, H), generator=g)
    inputs["beam_rsrp"] = torch.rand(size, H, generator=g)
    masks = {m: torch.ones(size, H, dtype=torch.bool) for m in [*SHAPES, "beams"]}
    future = {m: torch.randn(size, F - 1, *s, generator=g) for m, s in SHAPES.items()}
    return {
        "inputs": inputs,
        "masks": masks,
        "future_inputs": future,
        "future_masks": {m: torch.ones(size, F - 1, dtype=torch.bool) for m in SHAPES},
        "target": torch.randint(0, K, (size, F), generator=g),
        "target_mask": torch.ones(size, F, dtype=torch.bool),
        "target_rsrp": torch.rand(size, F, K, generator=g),
    }


def test_masking_is_one_contiguous_block_per_modality_of_the_configured_length() -> None:
    masks = block_masks(64, 13, 5, 6, torch.Generator().manual_seed(0))
    assert masks.shape == (64, 5, 13)
    assert (masks.sum(-1) == 6).all()
    edges = (masks[..., 1:] != masks[..., :-1]).sum(-1) + masks[..., 0] + masks[..., -1]
    assert (edges == 2).all()  # one rising and one falling edge: a single block
    model = small_model(mask_ratio=0.5)
    assert (model.pretraining_mask(32).sum(-1) >= 5).all()  # ⌊0.5 · 13⌋ = 6 or the 5 future frames


def test_changing_masked_inputs_leaves_the_context_encoders_output_unchanged() -> None:
    model = small_model().eval()
    batch = pretraining_batch()
    values, present = model.window(batch)
    masked = block_masks(4, model.frames, len(model.names), 6, torch.Generator().manual_seed(1))
    layout = model.encoder.layout
    visible = layout.token_mask(present & ~masked)
    before = model.encoder(values, visible)
    changed = {}
    for i, name in enumerate(model.names):
        noise = torch.randn_like(values[name]) * 10
        hidden = masked[:, i].view(*masked.shape[:1], -1, *[1] * (values[name].dim() - 2))
        changed[name] = torch.where(hidden, values[name] + noise, values[name])
    after = model.encoder(changed, visible)
    assert torch.allclose(before[visible], after[visible], atol=1e-5)
    assert not torch.allclose(
        model.target(values, visible | ~visible), model.target(changed, visible | ~visible)
    )


def test_ema_update_is_the_closed_form_and_the_target_gets_no_gradient() -> None:
    assert momentum(0.996, 0.0) == pytest.approx(0.996) and momentum(0.996, 1.0) == 1.0
    assert momentum(0.996, 0.0) < momentum(0.996, 0.5) < momentum(0.996, 1.0)
    model = small_model()
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    old = [p.clone() for p in model.target.parameters()]
    model.train()
    stage = model.pretraining_stages()[0]
    loss, terms = model.stage_loss(stage, pretraining_batch(), progress=0.0)
    assert terms["momentum"] == pytest.approx(0.996)
    for t, o, online in zip(model.target.parameters(), old, model.encoder.parameters()):
        assert torch.allclose(t, 0.996 * o + 0.004 * online, atol=1e-6)
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.target.parameters())
    assert any(p.grad is not None for p in model.encoder.parameters())
    copy = [p.clone() for p in model.target.parameters()]
    ema_update(model.target, model.encoder, 1.0)  # momentum 1: the target stays
    assert all(torch.equal(a, b) for a, b in zip(copy, model.target.parameters()))


def test_rankme_is_the_dimension_on_isotropic_data_and_the_rank_on_low_rank_data() -> None:
    g = torch.Generator().manual_seed(0)
    assert rankme(torch.randn(4000, 16, generator=g)) > 15.5
    assert rankme(torch.randn(500, 1, generator=g) @ torch.randn(1, 16, generator=g)) < 1.01
    basis = torch.linalg.qr(torch.randn(16, 16, generator=g))[0]
    assert rankme(basis[:, :5].T.contiguous()) == pytest.approx(5.0, rel=1e-3)  # 5 equal singular values


def test_a_zero_residual_gives_exact_constant_velocity_extrapolation() -> None:
    model = small_model()
    with torch.no_grad():
        model.position_head[-1].weight.zero_()
        model.position_head[-1].bias.zero_()
    batch = pretraining_batch()
    gps = batch["inputs"]["gps"]
    position = model.heads(batch["inputs"], batch["masks"])["position"]
    last, velocity = gps[:, -1, :2], gps[:, -1, :2] - gps[:, -2, :2]
    expected = last.unsqueeze(1) + torch.arange(F).view(1, -1, 1) * velocity.unsqueeze(1)
    assert torch.allclose(position, expected, atol=1e-6)


def test_a_short_pretraining_lowers_the_loss_and_is_deterministic() -> None:
    def run() -> tuple[float, float]:
        model = small_model()
        batch = pretraining_batch(8)
        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
        values, present = model.window(batch)
        masked = block_masks(8, model.frames, len(model.names), 6, torch.Generator().manual_seed(5))
        first = float(model.jepa_loss(values, present, masked)[0].detach())
        for _ in range(15):
            loss = model.jepa_loss(values, present, masked)[0]
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return first, float(model.jepa_loss(values, present, masked)[0].detach())

    first, last = run()
    assert last < 0.8 * first
    assert run() == (first, last)


def test_the_beam_head_overfits_a_batch_on_the_frozen_backbone() -> None:
    model = small_model(power_weight=0.0, position_weight=0.0)  # random power targets: beams alone
    _freeze(model, model.backbone_prefixes())
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert not any(p.requires_grad for p in model.predictor.parameters())
    batch = pretraining_batch(8)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    frozen = [p.clone() for p in model.encoder.parameters()]
    for _ in range(120):
        loss = model.training_loss(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    top1 = model(batch["inputs"], batch["masks"]).argmax(-1)
    assert (top1 == batch["target"]).float().mean() > 0.9
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.encoder.parameters()))


def test_the_e2e_baseline_trains_its_backbone_from_scratch(tiny_store: Path, tmp_path: Path) -> None:
    e2e = {**SHIPPED_LIKE, "options": {**SHIPPED_LIKE.get("options", {}), "e2e": True}}
    frozen = {**SHIPPED_LIKE, "options": {**SHIPPED_LIKE.get("options", {}), "pretrain_epochs": 0}}
    a, b = (load_checkpoint(fit(tiny_store, c, tmp_path / n, progress=False).checkpoint)
            for c, n in ((e2e, "e2e"), (frozen, "frozen")))  # fmt: skip
    assert a.config["pretraining"] == []
    # Same seed, same initial weights, and the frozen run's backbone (no pretraining epoch) is still
    # the initial one: what differs, the E2E run trained.
    pairs = zip(a.model.encoder.parameters(), b.model.encoder.parameters())
    moved = [not torch.equal(p, q) for p, q in pairs]
    assert sum(moved) > len(moved) // 2
    heads_a, heads_b = a.model.beam_out.weight, b.model.beam_out.weight
    assert not torch.equal(heads_a, heads_b)


def test_the_paper_presets_parameter_counts_match_table_iv() -> None:
    deployment = Deployment(num_beams=64, angles_deg=tuple(np.linspace(-45, 45, 64)), frame_rate_hz=10.0,
                            noise_power_dbm=-90.0)  # fmt: skip
    shapes = {"camera": (3, 224, 224), "radar": (2, 64, 64), "lidar": (1, 64, 256), "gps": (4,)}
    context = ModelContext(64, H, F, shapes, deployment, preprocess_config({}))
    model = build_model("jepa", {"preset": "paper"}, context)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    backbone = count(model.encoder.transformer) + count(model.predictor)
    assert abs(backbone - 1.59e6) / 1.59e6 < 0.01  # 8 layers of width 128, FFN 512
    assert count(model.encoder.layout.tokenisers["beams"]) == 8576  # Linear(64 → 128) + LayerNorm
    assert count(model.encoder.layout.tokenisers["gps"]) == 640  # Linear(2 → 128) + LayerNorm
    assert abs(count(model.encoder.layout.tokenisers["camera"]) - 4.17e6) / 4.17e6 < 0.05  # B0 + 1×1


def test_config_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match=r"model.options.dim = 30: expected a multiple of heads \(4\)"):
        train_config({"model": "jepa", "options": {"dim": 30}}, command_line=True)
    with pytest.raises(ConfigError, match=r"model\.options\.modalities"):
        train_config({"model": "jepa", "options": {"modalities": ["sonar"]}}, command_line=True)
    model = small_model()
    batch = pretraining_batch()
    del batch["future_inputs"]
    with pytest.raises(ConfigError, match=r"data\.future_sensors = false"):
        model.stage_loss(model.pretraining_stages()[0], batch, 0.0)


@pytest.fixture(scope="module")
def trained(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("jepa")
    return tuple(fit(tiny_store, SHIPPED_LIKE, root / name, progress=False).checkpoint for name in "ab")


def test_training_is_deterministic_and_the_checkpoint_round_trips(trained: tuple[Path, Path]) -> None:
    a, b = (load_checkpoint(p) for p in trained)
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    meta = a.config
    assert [e["stage"] for e in meta["pretraining"]] == ["jepa"]
    assert a.kind == "jepa" and a.model.context.history == H and a.model.context.future == F


def test_jepa_is_a_policy_in_the_batched_closed_loop(trained: tuple[Path, Path], tiny_store: Path) -> None:
    policy = make_policy("jepa", {"checkpoint": str(trained[0])})
    result = run_closed_loop(tiny_store, policy, episodes=["run00000-ue00", "run00001-ue00"])
    assert result.frames == 40 and np.isfinite(result.metrics["snr_loss_db"])


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_lda_rank_is_the_rank_of_well_separated_class_means(rank: int) -> None:
    # 2·rank classes at ±5 e_k: Σ_b has `rank` equal eigenvalues, the views add isotropic noise of
    # std 0.01, so Σ_w^-1/2 Σ_b Σ_w^-1/2 has `rank` equal large eigenvalues and the rest near 0.
    g = torch.Generator().manual_seed(0)
    means = torch.cat([5 * torch.eye(12)[:rank], -5 * torch.eye(12)[:rank]])
    views = means[:, None] + 0.01 * torch.randn(2 * rank, 50, 12, generator=g)
    assert lda_rank(views) == pytest.approx(rank, rel=1e-2)


def test_lda_rank_rejects_a_single_view() -> None:
    with pytest.raises(ValueError, match="expected \\(N >= 2, A >= 2, D\\)"):
        lda_rank(torch.zeros(4, 1, 3))

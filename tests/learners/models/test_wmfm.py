"""WMFM: InfoNCE against a reference loop and at log N for unrelated embeddings, the focal loss's
cross-entropy limit, balanced accuracy by hand, injected channel noise at the requested SNR, and on
the tiny twin store: contrastive pretraining lifts retrieval far above chance (random encoders stay
near it), heads keep the encoders and their batch-norm statistics frozen, training is deterministic
and round-trips, the beam head runs as a policy, one-line errors; on a tiny store with 8 subcarriers
the channel is the 16 × 8 csi end to end, and a checkpoint of one channel shape refuses the other."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from learners.checkpoint import load_checkpoint
from learners.closed_loop import run_closed_loop
from learners.data import DataConfig, WindowDataset, load_frames
from learners.models.wmfm_blocks import add_channel_noise, class_focal_loss, info_nce
from learners.task_metrics import balanced_accuracy, per_class, retrieval_topk
from learners.train import fit, train_config
from twin.errors import ConfigError
from twin.loop.policies import make_policy

PRETRAIN = {"model": "wmfm", "epochs": 1, "batch_size": 32, "seed": 1, "data": {"history": 1},
            "options": {"pretrain_epochs": 12, "pretrain_lr": 3e-3}}  # fmt: skip
POOL = 16


def reference_info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> float:
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n, total = len(a), 0.0
    for i in range(n):
        rows = [math.exp(float(a[i] @ b[j]) / tau) for j in range(n)]
        cols = [math.exp(float(a[j] @ b[i]) / tau) for j in range(n)]
        positive = math.exp(float(a[i] @ b[i]) / tau)
        total += -math.log(positive / sum(rows)) - math.log(positive / sum(cols))
    return total / (2 * n)


def test_info_nce_equals_a_reference_loop_and_starts_near_log_n() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, generator=generator), torch.randn(8, 5, generator=generator)
    assert float(info_nce(a, b, 0.1)) == pytest.approx(reference_info_nce(a, b, 0.1), rel=1e-5)
    big = [torch.randn(256, 128, generator=generator) for _ in range(2)]
    assert float(info_nce(*big, tau=1.0)) == pytest.approx(math.log(256), abs=0.05)
    # identical pairs: ≈ 255 e^{-1/τ} E[e^{cos/τ}] ≈ 0.017 for nearly orthogonal 128-d negatives
    assert float(info_nce(big[0], big[0], 0.1)) < 0.03


def test_focal_loss_with_gamma_zero_and_unit_alpha_is_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(1)
    logits, target = torch.randn(32, 2, generator=generator), torch.randint(0, 2, (32,), generator=generator)
    ones = torch.ones(2)
    assert float(class_focal_loss(logits, target, ones, 0.0)) == pytest.approx(
        float(F.cross_entropy(logits, target)), rel=1e-6
    )
    assert float(class_focal_loss(logits, target, ones, 2.0)) < float(F.cross_entropy(logits, target))


def test_balanced_accuracy_and_per_class_scores_match_a_hand_count() -> None:
    truth = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    predicted = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 0])
    # class 0: 1 of 3 found; class 1: 6 of 7 -> (1/3 + 6/7) / 2
    assert balanced_accuracy(predicted, truth, 2) == pytest.approx((1 / 3 + 6 / 7) / 2)
    scores = per_class(predicted, truth, 2)
    assert scores["precision"] == pytest.approx([1 / 2, 6 / 8])
    assert scores["recall"] == pytest.approx([1 / 3, 6 / 7])
    assert scores["f1"][0] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


@pytest.mark.parametrize("subcarriers", [1, 8])  # h (2, 16, 1) and the csi (2, 16, 8)
def test_injected_channel_noise_has_the_requested_snr_statistics(subcarriers: int) -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(4000, 2, 16, subcarriers, generator=generator)
    x = x * torch.rand(4000, 1, 1, 1, generator=generator)
    noisy, snr_db = add_channel_noise(x, 20.0, 10.0, generator)
    assert float(snr_db.mean()) == pytest.approx(20.0, abs=0.5) and float(snr_db.std()) == pytest.approx(
        10, abs=0.5
    )
    signal = (x**2).sum(1).flatten(1).mean(1)
    noise = ((noisy - x) ** 2).sum(1).flatten(1).mean(1)
    measured = 10 * torch.log10(signal / noise)  # per sample, from 16 × S complex noise draws
    assert float((measured - snr_db).mean()) == pytest.approx(0.0, abs=0.3)


def test_retrieval_is_exact_for_equal_embeddings_and_at_chance_for_unrelated_ones() -> None:
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(640, 8, generator=generator)
    assert retrieval_topk(a, a, (1, 5), 64) == {1: 1.0, 5: 1.0}
    chance = retrieval_topk(a, torch.randn(640, 8, generator=generator), (1, 5), 64)
    assert chance[1] < 4 / 64 and chance[5] < 12 / 64


@pytest.fixture(scope="module")
def pretrained(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("wmfm")
    return tuple(fit(tiny_store, PRETRAIN, root / name, progress=False).checkpoint for name in ("a", "b"))


def retrieval_of(model: torch.nn.Module, store: Path, preprocess) -> float:
    frames = load_frames(store, model.inputs, preprocess)
    windows = WindowDataset(frames, range(len(frames.drives)), DataConfig(history=1))
    batch = next(iter(torch.utils.data.DataLoader(windows, batch_size=len(windows))))
    model.eval()
    with torch.no_grad():
        camera, channel = model.projections(batch["inputs"])
    order = torch.randperm(len(camera), generator=torch.Generator().manual_seed(0))  # pools mix drives
    return retrieval_topk(camera[order], channel[order], (1,), POOL)[1]


def test_pretraining_lifts_retrieval_far_above_chance_random_encoders_stay_near_it(
    pretrained: tuple[Path, Path], tiny_store: Path
) -> None:
    loaded = load_checkpoint(pretrained[0])
    history = loaded.config["pretraining"]
    assert [e["stage"] for e in history] == ["contrastive"] * 12
    assert history[0]["train_loss"] == pytest.approx(math.log(32), abs=0.5)  # starts at ≈ log N
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 1.0
    trained = retrieval_of(loaded.model, tiny_store, loaded.preprocess)
    torch.manual_seed(0)
    random_model = type(loaded.model)(loaded.model.options, loaded.model.context)
    untrained = retrieval_of(random_model, tiny_store, loaded.preprocess)
    chance = 1 / POOL
    assert trained > 4 * chance, trained
    assert untrained < 2.5 * chance, untrained


def test_pretraining_is_deterministic_and_round_trips(pretrained: tuple[Path, Path]) -> None:
    first, second = (load_checkpoint(c) for c in pretrained)
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert first.config["pretraining"] == second.config["pretraining"]
    assert first.config["metrics"] == second.config["metrics"]


@pytest.mark.parametrize("kind", ["wmfm_los", "wmfm_loc"])
def test_heads_train_on_frozen_encoders_and_batch_norm_statistics(
    kind: str, pretrained: tuple[Path, Path], tiny_store: Path, tmp_path: Path
) -> None:
    settings = {"model": kind, "epochs": 2, "batch_size": 32, "data": {"history": 1},
                "init_from": str(pretrained[0])}  # fmt: skip
    result = fit(tiny_store, settings, tmp_path / kind, progress=False)
    before = load_checkpoint(pretrained[0]).model.state_dict()
    after = load_checkpoint(result.checkpoint).model.state_dict()
    encoders = [k for k in after if k.startswith(("camera_encoder", "channel_encoder"))]
    assert any("running_mean" in k for k in encoders)
    assert all(torch.equal(before[k], after[k]) for k in encoders)  # weights and BN statistics
    heads = [k for k in after if k.startswith("head.")]
    assert any(not torch.equal(before[k], after[k]) for k in heads)  # the head did train
    metrics = result.metrics
    if kind == "wmfm_los":
        assert 0 <= metrics["balanced_accuracy"] <= 1 and 0 < metrics["los_share"] <= 1
    else:
        assert metrics["euclidean_m"] >= metrics["x_mae_m"] >= 0 and 0 <= metrics["y_accuracy"] <= 1


def test_e2e_trains_the_encoders(tiny_store: Path, tmp_path: Path) -> None:
    settings = {"model": "wmfm_los", "epochs": 1, "batch_size": 32, "data": {"history": 1},
                "options": {"freeze_encoders": False}}  # fmt: skip
    torch.manual_seed(0)
    result = fit(tiny_store, settings, tmp_path / "e2e", progress=False)
    model = load_checkpoint(result.checkpoint).model
    torch.manual_seed(0)  # fit seeds 0 too: the same initial weights
    fresh = type(model)(model.options, model.context).state_dict()
    trained = model.state_dict()
    assert not torch.equal(fresh["channel_encoder.mlp.0.weight"], trained["channel_encoder.mlp.0.weight"])


def test_the_beam_head_runs_as_a_policy_reading_the_channel(
    pretrained: tuple[Path, Path], tiny_store: Path
) -> None:
    policy = make_policy("wmfm", {"checkpoint": str(pretrained[0])})
    assert policy.modalities == frozenset({"camera", "channel"})
    result = run_closed_loop(tiny_store, policy, episodes=["run00000-ue00", "run00001-ue00"])
    assert result.frames == 40 and np.isfinite(result.metrics["snr_loss_db"])


def test_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"train\.options\.modalities = \['radar'\]: expected"):
        train_config({"model": "wmfm", "options": {"modalities": ["radar"]}})
    with pytest.raises(ConfigError, match=r"options\.preset = 'huge': expected one of tiny, paper"):
        train_config({"model": "wmfm_los", "options": {"preset": "huge"}})
    with pytest.raises(ConfigError, match=r"image_blocks = \[1\]: expected one count per width"):
        train_config({"model": "wmfm", "options": {"image_blocks": [1]}})


def test_observing_the_channel_costs_one_srs_slot_per_frame(tiny_store: Path) -> None:
    from twin.loop.env import BeamSelectionEnv

    plain = BeamSelectionEnv(tiny_store, modalities=["gps"])
    assert "channel" not in BeamSelectionEnv(tiny_store).modalities  # opt-in
    env = BeamSelectionEnv(tiny_store, modalities=["channel"], beam_measurement_s=1e-4)
    obs, _ = env.reset(options={"episode": 0, "fault_seed": 0})
    assert obs["channel"].shape == (env.context.array.num_elements, 2) and obs["channel"].dtype == np.float32
    plain.reset(options={"episode": 0, "fault_seed": 0})
    _, _, _, _, info = env.step(0)
    _, _, _, _, plain_info = plain.step(0)
    assert info["overhead"] == pytest.approx(1e-4 * env.context.frame_rate_hz) and plain_info["overhead"] == 0


def test_the_snr_sweep_is_the_validation_error_when_noiseless_and_deterministic(
    pretrained: tuple[Path, Path], tiny_store: Path, tmp_path: Path
) -> None:
    from learners.wmfm_snr import error_against_snr, loc_head

    head = loc_head(str(tiny_store), pretrained[0], 1, 0, tmp_path / "loc")
    validated = load_checkpoint(head).config["metrics"]["euclidean_m"]
    curve = error_against_snr(str(tiny_store), head, (-20.0, math.inf), 0)
    assert curve[math.inf] == pytest.approx(validated, rel=1e-5)  # no noise: the head's own validation
    assert curve == error_against_snr(str(tiny_store), head, (-20.0, math.inf), 0)  # seeded noise
    assert curve[-20.0] != curve[math.inf]


@pytest.fixture(scope="module")
def pretrained_csi(tiny_csi_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pretraining and the beam head on the tiny store with 8 subcarriers (a few epochs: it runs)."""
    settings = {**PRETRAIN, "options": {"pretrain_epochs": 2}}
    folder = tmp_path_factory.mktemp("wmfm-csi") / "wmfm"
    return fit(tiny_csi_store, settings, folder, progress=False).checkpoint


def test_on_a_store_with_subcarriers_the_channel_encoder_reads_16x8_and_the_policy_runs(
    pretrained_csi: Path, tiny_csi_store: Path
) -> None:
    loaded = load_checkpoint(pretrained_csi)
    assert loaded.config["shapes"]["channel"] == [2, 16, 8]
    assert [e["stage"] for e in loaded.config["pretraining"]] == ["contrastive"] * 2
    widths = loaded.model.options.channel_widths
    assert loaded.model.channel_encoder.mlp[0].in_features == widths[-1] * 16 * 8  # the S axis is kept
    policy = make_policy("wmfm", {"checkpoint": str(pretrained_csi)})
    result = run_closed_loop(tiny_csi_store, policy)
    assert result.frames == 40 and np.isfinite(result.metrics["snr_loss_db"])


NARROW_ON_CSI = r"trained on channel inputs \(2, 16, 1\), but store .* gives \(2, 16, 8\) \(\(2, N, S\): csi"
CSI_ON_NARROW = r"trained on channel inputs \(2, 16, 8\), but store .* gives \(2, 16, 1\)"


def test_a_checkpoint_of_one_channel_shape_refuses_a_store_of_another(
    pretrained: tuple[Path, Path], pretrained_csi: Path, tiny_store: Path, tiny_csi_store: Path
) -> None:
    narrow, wide = str(pretrained[0]), str(pretrained_csi)
    head = {"model": "wmfm_los", "epochs": 1, "data": {"history": 1}}
    with pytest.raises(ConfigError, match=r"^train\.init_from = .*: " + NARROW_ON_CSI):
        fit(tiny_csi_store, {**head, "init_from": narrow}, "unused", progress=False)
    with pytest.raises(ConfigError, match=r"^train\.init_from = .*: " + CSI_ON_NARROW):
        fit(tiny_store, {**head, "init_from": wide}, "unused", progress=False)
    with pytest.raises(ConfigError, match=r"^policy wmfm: " + NARROW_ON_CSI):
        run_closed_loop(tiny_csi_store, make_policy("wmfm", {"checkpoint": narrow}))
    with pytest.raises(ConfigError, match=r"^policy wmfm: " + CSI_ON_NARROW):
        run_closed_loop(tiny_store, make_policy("wmfm", {"checkpoint": wide}))


def test_the_narrowband_h_of_a_store_with_subcarriers_fits_narrowband_encoders_only(
    pretrained: tuple[Path, Path], pretrained_csi: Path, tiny_csi_store: Path, tmp_path: Path
) -> None:
    head = {"model": "wmfm_los", "epochs": 1, "data": {"history": 1}, "preprocess": {"channel_field": "h"}}
    result = fit(tiny_csi_store, {**head, "init_from": str(pretrained[0])}, tmp_path / "h", progress=False)
    assert load_checkpoint(result.checkpoint).config["shapes"]["channel"] == [2, 16, 1]
    with pytest.raises(ConfigError, match=r"^train\.init_from = .*: trained on channel inputs \(2, 16, 8\)"):
        fit(tiny_csi_store, {**head, "init_from": str(pretrained_csi)}, tmp_path / "x", progress=False)

"""VI-PoE: the closed-form product of experts against numerically multiplied Gaussians, a dropped
modality equals an omitted expert, the Gaussian KL against Monte Carlo, the learnable DFTs against
torch.fft, R_dec on independent and correlated residuals, unpaired windows, the head on a frozen
backbone, and on the tiny twin store: two-stage training (deterministic, checkpoint round trip) and
the policy in the main job's closed loop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from learners.checkpoint import load_checkpoint
from learners.closed_loop import run_closed_loop
from learners.data import DataConfig, UnpairedWindowDataset, WindowDataset, load_frames
from learners.losses import focal_loss, gaussian_kl
from learners.models.registry import ModelContext, build_model
from learners.models.vipoe import (
    STAGE_I,
    STAGE_II,
    RFFrontEnd,
    VIPoE,
    cross_covariance_penalty,
    gaussian_kl_elements,
    product_of_experts,
)
from learners.preprocess import preprocess_config
from learners.train import _freeze, fit, train_config
from learners.twin_run import learned_run_config, prepare_learned
from twin.errors import ConfigError
from twin.loop.evaluate import evaluate, evaluation_from
from twin.loop.policies import make_policy
from twin.scenario.config import ScenarioConfig
from twin.store.deployment import Deployment

SHAPES = {"radar": (8, 16, 16), "camera": (3, 18, 32), "lidar": (1, 16, 32), "gps": (4,)}
TWO_STAGES = {"model": "vipoe", "epochs": 2, "batch_size": 16, "seed": 3,
              "options": {"stage1_epochs": 2, "stage2_epochs": 1}}  # fmt: skip


def small_model(future: int = 1, **options: object) -> VIPoE:
    deployment = Deployment(
        num_beams=16, angles_deg=tuple(np.linspace(-45, 45, 16)), frame_rate_hz=10.0, noise_power_dbm=-90.0
    )
    preprocess = preprocess_config({"radar_view": "cube", "radar_cube_size": (16, 16)})
    context = ModelContext(16, 5, future, SHAPES, deployment, preprocess)
    torch.manual_seed(0)
    return build_model("vipoe", {"preset": "tiny", **options}, context)  # type: ignore[return-value]


def batch(size: int = 4, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    inputs = {m: torch.randn(size, 5, *s, generator=generator) for m, s in SHAPES.items()}
    return inputs, {m: torch.ones(size, 5, dtype=torch.bool) for m in SHAPES}


def test_product_of_experts_is_the_numerical_product_of_the_gaussians() -> None:
    grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64)

    def log_density(mu: float, var: float) -> torch.Tensor:
        return -0.5 * (grid - mu) ** 2 / var - 0.5 * math.log(2 * math.pi * var)

    prior, experts, weights = (0.5, 2.0), [(1.5, 0.5), (-1.0, 1.5)], (0.7, 1.3)
    log_p = log_density(*prior) + sum(w * log_density(*e) for w, e in zip(weights, experts))
    p = torch.exp(log_p - log_p.max())
    p = p / p.sum()
    mean = float((p * grid).sum())
    var = float((p * (grid - mean) ** 2).sum())

    def pair(mu: float, var: float) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor([[mu]], dtype=torch.float64), torch.tensor([[math.log(var)]], dtype=torch.float64)

    mu, logvar = product_of_experts(
        pair(*prior), [pair(*e) for e in experts], torch.tensor(weights, dtype=torch.float64),
        torch.ones(1, 2, dtype=torch.bool),
    )  # fmt: skip
    assert float(mu) == pytest.approx(mean, abs=1e-6)
    assert math.exp(float(logvar)) == pytest.approx(var, rel=1e-6)


def test_a_missing_modality_gives_exactly_the_posterior_without_its_expert() -> None:
    prior = (torch.randn(3, 4), torch.randn(3, 4))
    a, b = (torch.randn(3, 4), torch.randn(3, 4)), (torch.randn(3, 4), torch.randn(3, 4))
    present = torch.tensor([[True, False], [True, False], [True, False]])
    dropped = product_of_experts(prior, [a, b], torch.tensor([0.8, 1.2]), present)
    omitted = product_of_experts(prior, [a], torch.tensor([0.8]), present[:, :1])
    assert all(torch.equal(x, y) for x, y in zip(dropped, omitted))
    # The whole model: camera masked everywhere equals the same model run without the camera expert.
    model = small_model().eval()
    inputs, masks = batch()
    masked = {**masks, "camera": torch.zeros_like(masks["camera"])}
    with torch.no_grad():
        with_mask = model.sequence(inputs, model._masks(masked), model.names, sample=False)
        without = model.sequence(inputs, model._masks(masks), ["radar", "lidar", "gps"], sample=False)
    assert torch.equal(with_mask.posterior[0], without.posterior[0])
    assert torch.equal(with_mask.state_after, without.state_after)
    # Nothing present: the posterior is the prior.
    nothing = {m: torch.zeros_like(v) for m, v in masks.items()}
    with torch.no_grad():
        seq = model.sequence(inputs, nothing, model.names, sample=False)
    assert torch.allclose(seq.posterior[0], seq.prior[0]) and torch.allclose(seq.posterior[1], seq.prior[1])


def test_gaussian_kl_matches_monte_carlo_and_is_zero_for_identical_distributions() -> None:
    generator = torch.Generator().manual_seed(1)
    mu_q, lv_q, mu_p, lv_p = (torch.randn(3, generator=generator, dtype=torch.float64) for _ in range(4))
    z = mu_q + torch.exp(0.5 * lv_q) * torch.randn(400_000, 3, generator=generator, dtype=torch.float64)

    def log_n(mu: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
        return (-0.5 * ((z - mu) ** 2 / torch.exp(lv) + lv + math.log(2 * math.pi))).sum(-1)

    monte_carlo = float((log_n(mu_q, lv_q) - log_n(mu_p, lv_p)).mean())
    assert float(gaussian_kl(mu_q, lv_q, mu_p, lv_p)) == pytest.approx(monte_carlo, rel=0.02)
    assert float(gaussian_kl(mu_q, lv_q, mu_q, lv_q)) == 0.0
    many = gaussian_kl(*(torch.randn(1000, 8) for _ in range(4)))
    assert bool((many >= 0).all())


def test_learnable_dfts_start_as_torch_fft_and_the_front_end_round_trips() -> None:
    front = RFFrontEnd(rx=2, samples=16, chirps=8)
    x = torch.randn(16, 8, dtype=torch.complex64)
    assert torch.allclose(front.dft_samples.matrix() @ x, torch.fft.fft(x, dim=0, norm="ortho"), atol=1e-5)
    assert torch.allclose(x @ front.dft_chirps.matrix().T, torch.fft.fft(x, dim=1, norm="ortho"), atol=1e-5)
    assert float(front.unitarity_error().detach()) < 1e-9
    cube = torch.randn(3, 4, 16, 8)
    assert torch.allclose(front.inverse(front(cube)), cube, atol=1e-4)
    # Zero-padded samples (the cube cut or padded to the input size) are range-DFT'd like torch.fft.
    window = front.window()
    spectrum = front(cube)
    reference = torch.fft.fft2(torch.complex(cube[:, :2], cube[:, 2:]) * window, norm="ortho")
    assert torch.allclose(torch.complex(spectrum[:, :2], spectrum[:, 2:]), reference, atol=1e-4)


def test_decoder_decorrelation_is_near_zero_for_independent_residuals_only() -> None:
    generator = torch.Generator().manual_seed(2)
    a, b = torch.randn(20_000, 6, generator=generator), torch.randn(20_000, 6, generator=generator)
    everywhere = torch.ones(20_000, dtype=torch.bool)
    independent = float(cross_covariance_penalty([a, b], [everywhere, everywhere]))
    correlated = float(cross_covariance_penalty([a, a.flip(1) + 0.1 * b], [everywhere, everywhere]))
    assert independent < 0.01 and correlated > 1.0
    # Rows where either is missing do not count.
    assert float(cross_covariance_penalty([a, a], [everywhere, torch.zeros_like(everywhere)])) == 0.0


def test_shapes_options_and_one_line_errors() -> None:
    model = small_model(future=2)
    inputs, masks = batch(3)
    assert model(inputs, masks).shape == (3, 2, 16)
    assert model.inputs == ("radar", "camera", "lidar", "gps")
    assert small_model(private_dim=0)(inputs, masks).shape == (3, 1, 16)
    for options, message in [
        ({"lambda_schedule": "cosine"}, "train.options.lambda_schedule = 'cosine': expected one of"),
        ({"blocks": [1, 1]}, "train.options.blocks = [1, 1]: expected one count per width (3)"),
        ({"widths": [6, 16, 32]}, "train.options.widths[0] = 6: expected a multiple of groups (4)"),
        ({"preset": "huge"}, "model.options.preset = 'huge': expected one of tiny, paper"),
        ({"aligned_fraction": 0}, "train.options.aligned_fraction = 0: expected a value in [0.01, 1]"),
        ({"kl_warmup": 1.5}, "train.options.kl_warmup = 1.5: expected a value in [0, 1]"),
        ({"free_bits": -0.1}, "train.options.free_bits = -0.1: expected a value in [0, 100]"),
        ({"decoder_sigma": -1}, "train.options.decoder_sigma = -1: expected a value in [0, 100]"),
        ({"head_inputs": "private"}, "train.options.head_inputs = 'private': expected one of"),
    ]:
        with pytest.raises(ConfigError) as error:
            train_config({"model": "vipoe", "options": options})
        assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="radar_view = 'maps'"):
        deployment = Deployment(
            num_beams=16,
            angles_deg=tuple(np.linspace(-45, 45, 16)),
            frame_rate_hz=10.0,
            noise_power_dbm=-90.0,
        )
        build_model("vipoe", {}, ModelContext(16, 5, 1, SHAPES, deployment, preprocess_config({})))


def test_kl_warmup_ramps_beta_over_both_stages() -> None:
    model = small_model(stage1_epochs=2, stage2_epochs=2, kl_warmup=0.5)
    beta = model.kl_weight
    assert beta(STAGE_I, 0.0) == 0.0
    assert beta(STAGE_I, 0.5) == pytest.approx(0.5)  # a quarter of the pretraining, half the warm-up
    assert beta(STAGE_I, 1.0) == pytest.approx(1.0) == beta(STAGE_II, 0.0) == beta(STAGE_II, 1.0)
    model = small_model(stage1_epochs=1, stage2_epochs=3, kl_warmup=1.0)
    assert [model.kl_weight(STAGE_II, p) for p in (0.0, 1 / 3, 1.0)] == pytest.approx([0.25, 0.5, 1.0])
    assert small_model(kl_warmup=0).kl_weight(STAGE_I, 0.0) == 1.0
    inputs, masks = batch(3)  # β = 0: the loss is the reconstruction alone
    seq = model.sequence(inputs, masks, model.names, sample=False)
    zero, terms, _ = model.elbo(seq, inputs, beta=0.0)
    assert float(zero.detach()) == pytest.approx(
        sum(v for k, v in terms.items() if k.startswith("recon")), rel=1e-5
    )


def test_free_bits_floor_every_latent_dimensions_kl() -> None:
    model = small_model(free_bits=0.5)
    kl = torch.zeros(2, 5, 16)
    kl[..., 0] = 2.0  # one dimension above the floor, fifteen at zero
    assert float(model.kl_term(kl, 10)) == pytest.approx(2.0 + 15 * 0.5)
    present = torch.zeros(2, 5, dtype=torch.bool)
    present[0] = True  # half the frames: dimension 0 averages 1.0
    assert float(model.kl_term(kl, 10, present)) == pytest.approx(1.0 + 15 * 0.5)
    assert float(small_model(free_bits=0).kl_term(kl, 10)) == pytest.approx(2.0)
    below = torch.full((2, 5, 16), 0.1, requires_grad=True)  # below the floor: no gradient
    model.kl_term(below, 10).backward()
    assert below.grad is not None and float(below.grad.abs().sum()) == 0.0
    mu_q, lv_q, mu_p, lv_p = (torch.randn(3, 4) for _ in range(4))
    assert torch.allclose(
        gaussian_kl_elements(mu_q, lv_q, mu_p, lv_p).sum(-1), gaussian_kl(mu_q, lv_q, mu_p, lv_p)
    )


def test_a_fixed_decoder_sigma_replaces_the_learned_scale() -> None:
    model = small_model(decoder_sigma=0.1)
    x, mean = torch.zeros(2, 4), torch.ones(2, 4)
    gps = model.experts["gps"]
    with torch.no_grad():
        gps.log_scale.fill_(3.0)  # ignored
    expected = 0.5 * (1 / 0.01 + math.log(0.01) + math.log(2 * math.pi))
    assert torch.allclose(gps.negative_log_likelihood(x, mean, 1.0), torch.full((2,), expected))
    learned = small_model(decoder_sigma=0).experts["gps"]  # σ = exp(0) = 1
    assert torch.allclose(
        learned.negative_log_likelihood(x, mean, 1.0), torch.full((2,), 0.5 * (1 + math.log(2 * math.pi)))
    )


def test_the_head_reads_the_private_means_with_head_inputs_all() -> None:
    inputs, masks = batch(2)
    shared = small_model(head_inputs="shared")
    full = small_model(head_inputs="all")
    assert shared.representation(inputs, masks).shape == (2, 5 * (16 + 32))
    rep = full.representation(inputs, masks)
    assert rep.shape == (2, 5 * (16 + 4 * 16 + 32))
    seq = full.sequence(inputs, full._masks(masks), full.names, sample=False)
    assert torch.allclose(rep.view(2, 5, -1)[..., 16:32], seq.private["radar"][0])
    dropped = dict(masks, camera=torch.zeros(2, 5, dtype=torch.bool))  # a missing frame reads as zeros
    assert torch.equal(full.representation(inputs, dropped).view(2, 5, -1)[..., 32:48], torch.zeros(2, 5, 16))
    assert small_model(head_inputs="all", private_dim=0).representation(inputs, masks).shape == (2, 5 * 48)


def test_the_head_fits_a_batch_while_the_frozen_representation_stays_put() -> None:
    model = small_model()
    frozen = _freeze(model, model.backbone_prefixes())
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head")}
    inputs, masks = batch(8)
    target = torch.randint(0, 16, (8, 1), generator=torch.Generator().manual_seed(0))
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for module in frozen:
        module.eval()
    losses = []
    for _ in range(100):
        loss = focal_loss(model(inputs, masks), target, torch.ones(8, 1, dtype=torch.bool), 0.0, 0.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_unpaired_windows_never_align_their_modalities(tiny_store: Path) -> None:
    frames = load_frames(tiny_store, ("radar", "camera", "gps"), preprocess_config({"radar_view": "cube"}))
    drives = list(range(len(frames.drives)))
    unpaired = UnpairedWindowDataset(frames, drives, DataConfig(), seed=4)
    aligned = WindowDataset(frames, drives, DataConfig())
    for i in range(len(unpaired)):
        sources = unpaired[i]["source"]
        assert len(set(sources.values())) == len(sources)  # every input from another window
    sample = unpaired[5]
    for name, source in sample["source"].items():  # each input is that window's, unchanged
        assert torch.equal(sample["inputs"][name], aligned[source]["inputs"][name])
    assert "target" not in sample and "beams" not in sample["inputs"]


@pytest.fixture(scope="module")
def two_stage(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The two stages and the head, twice with the same seed (about a minute on 2 cores)."""
    folder = tmp_path_factory.mktemp("vipoe")
    first = fit(tiny_store, TWO_STAGES, folder / "a", progress=False).checkpoint
    second = fit(tiny_store, TWO_STAGES, folder / "b", progress=False).checkpoint
    return first, second


def test_two_stage_training_is_deterministic_and_round_trips(
    two_stage: tuple[Path, Path], tiny_store: Path
) -> None:
    first, second = (load_checkpoint(c) for c in two_stage)
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = first.config["pretraining"]
    assert [(e["stage"], e["epoch"]) for e in history] == [("stage I", 1), ("stage I", 2), ("stage II", 1)]
    assert history == second.config["pretraining"] and first.config["metrics"] == second.config["metrics"]
    for entry in history:
        assert all(math.isfinite(v) for v in entry["val"].values()) and math.isfinite(entry["train_loss"])
    stage_one = [e["val"] for e in history if e["stage"] == "stage I"]
    for m in ("radar", "camera", "lidar", "gps"):  # Stage I lowers every modality's loss
        assert stage_one[1][f"recon {m}"] < stage_one[0][f"recon {m}"]
        assert stage_one[1][f"KL {m}"] >= 0
    stage_two = history[-1]["val"]
    assert stage_two["R_enc"] >= 0 and stage_two["R_dec"] >= 0 and stage_two["KL shared"] >= 0
    assert 0 <= first.config["metrics"]["dba"] <= 1
    assert float(first.model.experts["radar"].front.unitarity_error().detach()) < 1e-2  # still near-unitary
    # The loaded model decides as the trained one did (validation windows).
    frames = load_frames(tiny_store, first.model.inputs, first.preprocess)
    val = [i for i, d in enumerate(frames.drives) if d.id in first.config["split"]["val"]]
    loaded = next(iter(torch.utils.data.DataLoader(WindowDataset(frames, val, first.data), batch_size=8)))
    with torch.no_grad():
        assert torch.equal(first.model(loaded["inputs"], loaded["masks"]),
                           second.model(loaded["inputs"], loaded["masks"]))  # fmt: skip


def test_vipoe_is_a_policy_in_the_main_jobs_closed_loop(
    two_stage: tuple[Path, Path], tiny: ScenarioConfig, tiny_store: Path
) -> None:
    checkpoint = two_stage[0]
    policy = make_policy("vipoe", {"checkpoint": str(checkpoint)})
    result = run_closed_loop(tiny_store, policy, episodes=["run00000-ue00", "run00001-ue00"])
    assert result.frames == 40 and np.isfinite(result.metrics["snr_loss_db"])
    grid = {"seeds": [0], "conditions": ["clean"], "blockage_rates_per_s": [], "dropout_probabilities": []}
    evaluation = evaluation_from({**grid, "policy_options": {"vipoe": {"checkpoint": str(checkpoint)}}})
    plan = prepare_learned(tiny_store, learned_run_config({"train": []}), evaluation, ["genie", "vipoe"],
                           progress=False)  # fmt: skip
    assert plan.policies == ["genie", "vipoe"]
    report = evaluate(tiny_store, tiny.faults, plan.evaluation, plan.policies, progress=False,
                      drive_ids=plan.drive_ids)  # fmt: skip
    assert {row["policy"] for row in report.rows} == {"genie", "vipoe"}


def mean_pairwise_expert_kl(checkpoint: Path, store: Path) -> float:
    """Mean over ordered modality pairs of KL(q_m(z^s) ‖ q_n(z^s)) on the validation windows' frames."""
    loaded = load_checkpoint(checkpoint)
    model = loaded.model.eval()
    frames = load_frames(store, model.inputs, loaded.preprocess)
    val = [i for i, d in enumerate(frames.drives) if d.id in loaded.config["split"]["val"]]
    batch = next(iter(torch.utils.data.DataLoader(WindowDataset(frames, val, loaded.data), batch_size=64)))
    masks = model._masks(batch["masks"])
    with torch.no_grad():
        seq = model.sequence(batch["inputs"], masks, model.names, sample=False)
    total, pairs = 0.0, 0
    for m in model.names:
        for n in model.names:
            if m == n:
                continue
            both = (seq.present[m] & seq.present[n]).float()
            kl = gaussian_kl(*seq.experts[m], *seq.experts[n])
            total += float((kl * both).sum() / both.sum().clamp(min=1))
            pairs += 1
    return total / pairs


def test_stage_two_brings_the_unimodal_posteriors_together(
    two_stage: tuple[Path, Path], tiny_store: Path, tmp_path: Path
) -> None:
    """Stage II's R_enc pulls every expert towards the fused posterior, so the experts agree more
    with one another than after Stage I alone (the same seed, Stage II skipped)."""
    stage_one_only = {**TWO_STAGES, "options": {**TWO_STAGES["options"], "stage2_epochs": 0}}
    after_one = fit(tiny_store, stage_one_only, tmp_path / "one", progress=False).checkpoint
    before, after = (
        mean_pairwise_expert_kl(after_one, tiny_store),
        mean_pairwise_expert_kl(two_stage[0], tiny_store),
    )
    assert math.isfinite(before) and math.isfinite(after)
    assert after < before, f"pairwise expert KL {before:.3f} after Stage I, {after:.3f} after Stage II"


# The head as the test needs it on 120 tiny windows: a faster rate, every epoch run and the last kept,
# so the comparison is between representations, not between early-stopping draws.
ALIGNED = {"model": "vipoe", "epochs": 15, "lr": 3e-3, "patience": 100, "keep": "last", "batch_size": 16,
           "seed": 3, "options": {"stage1_epochs": 2, "stage2_epochs": 3}}  # fmt: skip


def test_on_tiny_twin_data_the_aligned_model_beats_the_unaligned_one(
    tiny_store: Path, tmp_path: Path
) -> None:
    """The paper's Fig. 2 comparison: the same Stage I (unimodal ELBOs on unpaired windows, no aligned
    pair ever seen), then either Stage II on aligned windows or nothing, then the same head on the
    frozen representation. Without aligned data the shared latent is a product of experts that were
    never trained to agree, and the head's validation DBA falls (paper: 0.86 against 0.20). Measured
    with seeds 3, 0, 1 before the margin was set: 0.360 against 0.153, 0.362 against 0.282, 0.400
    against 0.302 (margins 0.21, 0.08, 0.10); the assertion asks for 0.05."""
    unaligned = {**ALIGNED, "options": {**ALIGNED["options"], "stage2_epochs": 0}}
    with_stage_two = fit(tiny_store, ALIGNED, tmp_path / "aligned", progress=False).metrics["dba"]
    without = fit(tiny_store, unaligned, tmp_path / "unaligned", progress=False).metrics["dba"]
    assert with_stage_two > without + 0.05, (
        f"validation DBA {with_stage_two:.3f} aligned, {without:.3f} unaligned"
    )

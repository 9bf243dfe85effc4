"""VI-PoE: the variational product-of-experts multimodal beam predictor, after
shared/papers/vi-poe-multimodal-beam-prediction.txt (§III–IV; the reading notes are NOTES.md §1).

Modalities RF (the FMCW radar cube), camera, LiDAR (bird's-eye view) and GPS. Per time step t of the
window: a shared latent z_t^s, a private latent z_t^{p,m} per modality and a recurrent state h_t.
- Generative model (45): priors p(z^s | h_{t−1}) and p(z^{p,m} | h_{t−1}) from light networks;
  decoders p(x^m | z^s, z^{p,m}, h_{t−1}), one per modality (factorised, eq. 43); the transition
  h_t = GRU(z_t^s, h_{t−1}), tied into the posterior (48).
- Inference (46–47): each modality's expert gives Gaussian q_m(z^s | x^m, h_{t−1}) and its private
  q(z^{p,m} | x^m, h_{t−1}); the shared posterior is the weighted product of the experts with the
  prior, in closed form: Λ = Λ_prior + Σ_m w_m Λ_m, μ = Λ⁻¹(Λ_prior μ_prior + Σ_m w_m Λ_m μ_m), with
  learnable reliabilities w_m = softplus(ρ_m). A missing modality (mask 0) drops its expert: the
  posterior is exactly that of the product without it. Private latents are never fused.
- Loss (50): −ELBO (49) + λ_enc R_enc (41) + λ_dec R_dec (39); R_enc = Σ_m KL(q_m(z^s) ‖ q_PoE(z^s)),
  R_dec = Σ_{m≠n} ‖Ĉov(r^m, r^n)‖²_F over the batch of decoder residuals r^m = x^m − μ_θ^m.
- Training (Remark 2), run by learners.stages: Stage I, the unimodal ELBO of every modality on
  unpaired windows (each modality from another window; λ = 0); Stage II, the full loss on aligned
  windows with λ raised by a schedule; then the task head, a 4-layer GELU MLP over the window's
  concatenated E[z_t^s] and h_t (56–58) and, by default (`head_inputs`), every modality's E[z_t^{p,m}],
  trained by learners.train on the frozen representation.
- Against posterior collapse (standard remedies, not in the paper; each an option, measured in the
  README): a KL warm-up β: 0 → 1 over the first `kl_warmup` of Stage I + II, free bits (each latent
  dimension's KL floored at `free_bits` nats per frame), a fixed likelihood σ (`decoder_sigma`) so the
  reconstruction outweighs the KL, and the private means in the head's input.
- RF sub-model (§IV-A): learnable window w = w₀ ⊙ exp(δ) per axis (separable), learnable near-unitary
  DFTs F = F_DFT + ΔF along samples and chirps, real/imaginary parts as 2·Rx channels, a GroupNorm
  ResNet encoder with 3×3 kernels; the decoder mirrors it with PixelShuffle, a learnable IDFT and
  de-windowing. The other modalities get the same GroupNorm ResNet (images) or an MLP (GPS).

Reconstructed where the paper's text lost or never gave them (marked `reconstruction` below): latent,
state and head sizes; the window (Hamming, since Hann's zero ends cannot be de-windowed); the
likelihoods (Gaussian with a learned scale per modality, weighted as `likelihood_dims` dimensions);
the KL direction in R_enc (unimodal to fused) and the prior's part in the product (it takes part);
R_dec on residuals projected to `decorrelation_dims` by a fixed random matrix (image-sized
covariances are intractable); the λ schedule (a linear ramp, or a step, over Stage II); the
transition's input (z^s only, so a missing modality does not change what the state sees); GPS kept
only at the window's first and last frame (§V), as an option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from learners.losses import gaussian_kl
from learners.models.registry import ModelContext, PresetModel, PretrainStage, Tensors, register_model
from twin.errors import ConfigError
from twin.validation import at_least, between, each_between, one_of, spec

MODALITIES = ("radar", "camera", "lidar", "gps")  # RF first: the paper's primary modality
IMAGES = ("radar", "camera", "lidar")
LOGVAR_RANGE = (-8.0, 8.0)

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "shared_dim": 16,
        "private_dim": 16,
        "state_dim": 32,
        "widths": (8, 16, 32),  # NOTES.md suggests 16/32/64: 4x slower on 2 cores
        "blocks": (1, 1, 1),
        "groups": 4,
        "head": (128, 128, 64, 64),
        "gps_hidden": 64,
        "stem_stride": 2,
        "stage1_epochs": 5,
        "stage2_epochs": 5,
    },
    "paper": {  # ResNet-18 with GroupNorm for RF; latent and head sizes are placeholders (reconstruction)
        "shared_dim": 64,
        "private_dim": 64,
        "state_dim": 128,
        "widths": (64, 128, 256, 512),
        "blocks": (2, 2, 2, 2),
        "head": (512, 256, 128, 64),
        "gps_hidden": 128,
        "stem_stride": 1,
        "stage1_epochs": 20,
        "stage2_epochs": 20,
    },
}

PREPROCESS_PRESETS: dict[str, dict[str, Any]] = {
    # Every sensor frame runs through its encoder and decoder in each window it belongs to: small inputs.
    "tiny": {
        "radar_view": "cube",
        "radar_cube_size": (16, 16),
        "camera_size": (18, 32),
        "bev_size": (16, 32),
    },
    "paper": {
        "radar_view": "cube",
        "radar_cube_size": (64, 64),
        "camera_size": (128, 128),
        "bev_size": (128, 128),
    },
}


def _modalities(value: Any) -> str | None:
    if value and len(set(value)) == len(value) and all(v in MODALITIES for v in value):
        return None
    return "a non-empty list of distinct names among " + ", ".join(MODALITIES)


@dataclass(frozen=True)
class VIPoEOptions:
    preset: str = spec("tiny", check=one_of(*PRESETS))
    modalities: tuple[str, ...] = spec(MODALITIES, check=_modalities)
    shared_dim: int = spec(16, check=between(1, 4096))
    private_dim: int = spec(16, check=between(0, 4096))  # 0: shared latent only (the Fig. 2 ablation)
    state_dim: int = spec(32, check=between(1, 4096))
    widths: tuple[int, ...] = spec((8, 16, 32), check=each_between(1, 4096))  # ResNet stages (stride 2)
    blocks: tuple[int, ...] = spec((1, 1, 1), check=each_between(1, 64))  # residual blocks per stage
    groups: int = spec(4, check=between(1, 512))  # GroupNorm groups
    stem_stride: int = spec(2, check=one_of(1, 2))  # the paper's small strides: 1 (tiny: 2, for speed)
    head: tuple[int, ...] = spec((128, 128, 64, 64), check=each_between(1, 8192))  # GELU MLP widths
    gps_hidden: int = spec(64, check=between(1, 8192))
    gps_ends_only: bool = spec(True)  # §V: GPS only at the window's first and last frame
    # Training schedule (Remark 2), run before the head's epochs (train.epochs):
    stage1_epochs: int = spec(5, check=between(0, 100_000))  # unimodal ELBOs on unpaired windows
    stage2_epochs: int = spec(5, check=between(0, 100_000))  # full loss on aligned windows
    stage_lr: float = spec(2e-3, check=between(1e-7, 10))
    aligned_fraction: float = spec(1.0, check=between(0.01, 1))  # 1: data-sufficient; 0.2: data-efficient
    lambda_enc: float = spec(1.0, check=between(0, 1e4))
    lambda_dec: float = spec(1.0, check=between(0, 1e4))
    lambda_schedule: str = spec("linear", check=one_of("linear", "step"))
    lambda_ramp: float = spec(0.5, check=between(0, 1))  # share of Stage II until λ reaches its value
    likelihood_dims: float = spec(256.0, check=at_least(1e-3))  # reconstruction: a modality's weight
    decorrelation_dims: int = spec(64, check=between(1, 4096))  # residual projection for R_dec
    unitary_weight: float = spec(1.0, check=between(0, 1e4))  # keeps the learnable DFTs near-unitary
    # Against posterior collapse (the KL terms of the ELBO pulling every posterior onto its prior):
    kl_warmup: float = spec(0.5, check=between(0, 1))  # share of Stage I + II while β rises 0 → 1 (0: β = 1)
    free_bits: float = spec(0.25, check=between(0, 100))  # KL floor per latent dimension and frame, nats
    decoder_sigma: float = spec(0.1, check=between(0, 100))  # fixed likelihood σ (0: learned per modality)
    head_inputs: str = spec("all", check=one_of("shared", "all"))  # all: + private means E[z_t^{p,m}]

    def validate(self, prefix: str) -> None:
        if len(self.blocks) != len(self.widths):
            raise ConfigError(
                f"{prefix}.blocks = {list(self.blocks)}: expected one count per width ({len(self.widths)})"
            )
        for i, width in enumerate(self.widths):
            if width % self.groups:
                raise ConfigError(
                    f"{prefix}.widths[{i}] = {width}: expected a multiple of groups ({self.groups})"
                )


# --- the product of Gaussian experts ---------------------------------------------------------------


def product_of_experts(
    prior: tuple[torch.Tensor, torch.Tensor],
    experts: list[tuple[torch.Tensor, torch.Tensor]],
    weights: torch.Tensor,
    present: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted product p(z) ∏_m q_m(z)^{w_m} of diagonal Gaussians (mean, log-variance), in closed
    form. experts: per modality ((B, D), (B, D)); weights (M,); present (B, M) bool: an absent expert
    contributes nothing, exactly."""
    mu_p, logvar_p = prior
    precision_p = torch.exp(-logvar_p)
    precision, weighted = precision_p, precision_p * mu_p
    for m, (mu, logvar) in enumerate(experts):
        gate = (weights[m] * present[:, m].to(mu.dtype)).unsqueeze(-1)
        lam = gate * torch.exp(-logvar)
        precision = precision + lam
        weighted = weighted + lam * mu
    return weighted / precision, -torch.log(precision)


def cross_covariance_penalty(residuals: list[torch.Tensor], present: list[torch.Tensor]) -> torch.Tensor:
    """R_dec: Σ_{m≠n} ‖Ĉov(r^m, r^n)‖²_F, each pair over the rows where both are present.
    residuals: per modality (N, k); present: per modality (N,) bool."""
    total = residuals[0].new_zeros(())
    for m in range(len(residuals)):
        for n in range(m + 1, len(residuals)):
            rows = present[m] & present[n]
            if int(rows.sum()) < 2:
                continue
            a, b = residuals[m][rows], residuals[n][rows]
            a, b = a - a.mean(0), b - b.mean(0)
            cov = a.T @ b / (a.shape[0] - 1)
            total = total + 2 * (cov**2).sum()  # ordered pairs m ≠ n
    return total


def gaussian_kl_elements(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) per dimension (learners.losses.gaussian_kl before its sum)."""
    ratio = torch.exp(logvar_q - logvar_p)
    return 0.5 * (ratio + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1 - (logvar_q - logvar_p))


def _split(x: torch.Tensor, sizes: tuple[int, ...]) -> list[torch.Tensor]:
    parts = list(torch.split(x, list(sizes), dim=-1))
    return [p.clamp(*LOGVAR_RANGE) if i % 2 else p for i, p in enumerate(parts)]


# --- the RF front end ------------------------------------------------------------------------------


def _dft(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)
    return (torch.exp(-2j * math.pi * torch.outer(k, k) / n) / math.sqrt(n)).to(torch.complex64)


class LearnableDFT(nn.Module):
    """A square complex matrix initialised at `init` plus a learnable residual (real and imaginary
    parts kept as real tensors, so checkpoints stay plain safetensors)."""

    def __init__(self, init: torch.Tensor):
        super().__init__()
        self.register_buffer("base_real", init.real.clone(), persistent=False)
        self.register_buffer("base_imag", init.imag.clone(), persistent=False)
        self.delta_real = nn.Parameter(torch.zeros(init.shape))
        self.delta_imag = nn.Parameter(torch.zeros(init.shape))

    def matrix(self) -> torch.Tensor:
        # The residual in units of 1/n: an optimiser step of size lr moves an entry (of size 1/√n)
        # by lr/n, so the matrix stays near-unitary through training (Adam's steps ignore scale).
        scale = 1.0 / self.delta_real.shape[0]
        return torch.complex(
            self.base_real + scale * self.delta_real, self.base_imag + scale * self.delta_imag
        )

    def unitarity_error(self) -> torch.Tensor:
        """‖FᴴF − I‖²_F / n."""
        f = self.matrix()
        eye = torch.eye(f.shape[0], dtype=f.dtype)
        return (torch.abs(f.conj().T @ f - eye) ** 2).sum() / f.shape[0]


class RFFrontEnd(nn.Module):
    """Learnable separable window and DFTs along samples and chirps (eqs. 51–55), and their inverse:
    (B, 2·Rx, S, C) cube (real parts, then imaginary) ↔ (B, 2·Rx, S, C) range–Doppler map."""

    def __init__(self, rx: int, samples: int, chirps: int):
        super().__init__()
        self.rx = rx
        # reconstruction: Hamming, not Hann (Hann's zero end points cannot be divided out again)
        self.register_buffer(
            "window_samples", torch.hamming_window(samples, periodic=False), persistent=False
        )
        self.register_buffer("window_chirps", torch.hamming_window(chirps, periodic=False), persistent=False)
        self.log_window_samples = nn.Parameter(torch.zeros(samples))
        self.log_window_chirps = nn.Parameter(torch.zeros(chirps))
        self.dft_samples, self.dft_chirps = LearnableDFT(_dft(samples)), LearnableDFT(_dft(chirps))
        self.idft_samples = LearnableDFT(_dft(samples).conj().T.contiguous())
        self.idft_chirps = LearnableDFT(_dft(chirps).conj().T.contiguous())

    def window(self) -> torch.Tensor:
        w_s = self.window_samples * torch.exp(self.log_window_samples)
        w_c = self.window_chirps * torch.exp(self.log_window_chirps)
        return torch.outer(w_s, w_c)

    def _complex(self, x: torch.Tensor) -> torch.Tensor:
        return torch.complex(x[:, : self.rx], x[:, self.rx :])

    @staticmethod
    def _real(z: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.real, z.imag], 1)

    def forward(self, cube: torch.Tensor) -> torch.Tensor:
        z = self._complex(cube) * self.window()
        return self._real(self.dft_samples.matrix() @ z @ self.dft_chirps.matrix().T)

    def inverse(self, spectrum: torch.Tensor) -> torch.Tensor:
        z = self.idft_samples.matrix() @ self._complex(spectrum) @ self.idft_chirps.matrix().T
        return self._real(z / self.window())

    def unitarity_error(self) -> torch.Tensor:
        parts = (self.dft_samples, self.dft_chirps, self.idft_samples, self.idft_chirps)
        return sum((p.unitarity_error() for p in parts), torch.zeros(()))


# --- GroupNorm ResNet encoder and its mirror -------------------------------------------------------


class GNBlock(nn.Module):
    """ResNet basic block with GroupNorm: two 3×3 convolutions and an identity (or 1×1) shortcut."""

    def __init__(self, inputs: int, outputs: int, stride: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False),
            nn.GroupNorm(groups, outputs),
            nn.ReLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False),
            nn.GroupNorm(groups, outputs),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.GroupNorm(groups, outputs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ImageEncoder(nn.Module):
    """3×3 stride-1 stem (small kernels and strides, §IV-A), stride-2 GroupNorm ResNet stages, global
    average pooling: (N, C, H, W) → (N, widths[-1])."""

    def __init__(self, channels: int, options: VIPoEOptions):
        super().__init__()
        widths, g = options.widths, options.groups
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 3, options.stem_stride, 1, bias=False),
            nn.GroupNorm(g, widths[0]),
            nn.ReLU(inplace=True),
        ]
        width = widths[0]
        for out, count in zip(widths, options.blocks):
            layers += [GNBlock(width, out, 2, g)] + [GNBlock(out, out, 1, g) for _ in range(count - 1)]
            width = out
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(-2, -1))


class ImageDecoder(nn.Module):
    """The encoder's mirror: a linear map to the deepest feature map, GroupNorm residual blocks and
    PixelShuffle ×2 per stage, a 3×3 convolution to the input's channels, cropped to its size."""

    def __init__(self, inputs: int, shape: tuple[int, int, int], options: VIPoEOptions):
        super().__init__()
        widths, g = options.widths, options.groups
        self.shape = shape
        scale = 2 ** len(widths) * options.stem_stride
        self.grid = (math.ceil(shape[1] / scale), math.ceil(shape[2] / scale))
        self.project = nn.Linear(inputs, widths[-1] * self.grid[0] * self.grid[1])
        layers: list[nn.Module] = []
        for i in reversed(range(len(widths))):
            layers += [GNBlock(widths[i], widths[i], 1, g) for _ in range(options.blocks[i])]
            out = widths[max(i - 1, 0)]
            layers += [nn.Conv2d(widths[i], out * 4, 1), nn.PixelShuffle(2), nn.GroupNorm(g, out), nn.ReLU()]
        if options.stem_stride > 1:  # the stem's mirror
            layers += [nn.Conv2d(widths[0], widths[0] * 4, 1), nn.PixelShuffle(2), nn.ReLU()]
        layers.append(nn.Conv2d(widths[0], shape[0], 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.width = widths[-1]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(-1, self.width, *self.grid)
        return self.body(x)[..., : self.shape[1], : self.shape[2]]


# --- one modality's expert -------------------------------------------------------------------------


class Expert(nn.Module):
    """A modality's sub-model: encoder, posterior heads q(z^s), q(z^p) given x and h_{t−1}, the
    private prior p(z^p | h_{t−1}), the decoder p(x | z^s, z^p, h_{t−1}) and its learned scale."""

    def __init__(self, name: str, shape: tuple[int, ...], options: VIPoEOptions, rx: int = 0):
        super().__init__()
        self.name, self.shape = name, shape
        ds, dp, dh = options.shared_dim, options.private_dim, options.state_dim
        self.sizes = (ds, ds, dp, dp)
        self.front: RFFrontEnd | None = RFFrontEnd(rx, shape[1], shape[2]) if name == "radar" else None
        latent = ds + dp + dh
        if name in IMAGES:
            self.encoder: nn.Module = ImageEncoder(shape[0], options)
            feature = options.widths[-1]
            self.decoder: nn.Module = ImageDecoder(latent, shape, options)  # type: ignore[arg-type]
        else:
            hidden = options.gps_hidden
            self.encoder = nn.Sequential(
                nn.Linear(shape[0], hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU()
            )
            feature = hidden
            self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.GELU(), nn.Linear(hidden, shape[0]))
        self.posterior = nn.Sequential(
            nn.Linear(feature + dh, feature), nn.GELU(), nn.Linear(feature, 2 * (ds + dp))
        )
        self.private_prior = nn.Linear(dh, 2 * dp) if dp else None
        self.log_scale = nn.Parameter(torch.zeros(()))  # reconstruction: Gaussian likelihood, learned σ
        self.fixed_sigma = options.decoder_sigma  # > 0: σ fixed there instead (log_scale unused)
        dims = math.prod(shape)
        k = min(options.decorrelation_dims, dims)
        projection = torch.randn(dims, k, generator=torch.Generator().manual_seed(len(name))) / math.sqrt(
            dims
        )
        self.register_buffer("projection", projection, persistent=False)
        weight = torch.ones(shape)
        if self.front is not None:  # the de-windowing's noise gain: residual variance ∝ 1 / w₀²
            base = torch.outer(self.front.window_samples, self.front.window_chirps)
            weight = (base / base.mean()).expand(shape).clone()
        self.register_buffer("residual_weight", weight, persistent=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *shape) → (N, feature)."""
        return self.encoder(self.front(x) if self.front is not None else x)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(N, ds + dp + dh) → (N, *shape), the likelihood's mean in the input's domain."""
        out = self.decoder(latent)
        return self.front.inverse(out) if self.front is not None else out

    def residual(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """x − μ_θ, scaled to unit noise gain (RF: by the fixed window, as the de-windowing divides)."""
        return (x - mean) * self.residual_weight

    def negative_log_likelihood(self, x: torch.Tensor, mean: torch.Tensor, weight: float) -> torch.Tensor:
        """Per row: Gaussian NLL per dimension with the learned scale, times `weight` dimensions."""
        if self.fixed_sigma:
            log_var = torch.full((), 2 * math.log(self.fixed_sigma), dtype=x.dtype)
        else:
            log_var = 2 * self.log_scale.clamp(-4, 4)
        nll = 0.5 * (self.residual(x, mean) ** 2 * torch.exp(-log_var) + log_var + math.log(2 * math.pi))
        return weight * nll.flatten(1).mean(1)


# --- the model -------------------------------------------------------------------------------------


@dataclass
class Sequence:
    """One pass over a window: per step (B, H, ·) tensors; per-modality entries for the experts run."""

    prior: tuple[torch.Tensor, torch.Tensor]
    posterior: tuple[torch.Tensor, torch.Tensor]
    shared: torch.Tensor  # z^s (sampled or the mean)
    state_before: torch.Tensor  # h_{t−1}
    state_after: torch.Tensor  # h_t
    experts: dict[str, tuple[torch.Tensor, torch.Tensor]]  # q_m(z^s)
    private: dict[str, tuple[torch.Tensor, torch.Tensor]]  # q(z^{p,m})
    private_prior: dict[str, tuple[torch.Tensor, torch.Tensor]]
    private_z: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]  # (B, H) bool


STAGE_I = PretrainStage("stage I", 0, 0.0, windows="unpaired", drives="unaligned")
STAGE_II = PretrainStage("stage II", 0, 0.0, windows="aligned", drives="aligned")


@register_model
class VIPoE(PresetModel):
    kind = "vipoe"
    Options = VIPoEOptions

    PRESETS = PRESETS
    PREPROCESS_PRESETS = PREPROCESS_PRESETS
    MODALITIES = MODALITIES

    def __init__(self, options: VIPoEOptions, context: ModelContext):
        super().__init__(options, context)
        if "radar" in options.modalities and context.preprocess.radar_view != "cube":
            raise ConfigError(
                "preprocess.radar_view = 'maps': vipoe's RF expert reads the cube (expected 'cube')"
            )
        self.names = list(self.inputs_of(options))
        o = options
        rx = context.shapes["radar"][0] // 2 if "radar" in self.names else 0
        self.experts = nn.ModuleDict({m: Expert(m, tuple(context.shapes[m]), o, rx) for m in self.names})
        self.prior = nn.Sequential(
            nn.Linear(o.state_dim, o.state_dim), nn.GELU(), nn.Linear(o.state_dim, 2 * o.shared_dim)
        )
        self.transition = nn.GRUCell(o.shared_dim, o.state_dim)
        self.reliability = nn.Parameter(torch.full((len(self.names),), math.log(math.e - 1)))  # w = 1
        layers: list[nn.Module] = []
        private = o.private_dim * len(self.names) if o.head_inputs == "all" else 0
        width = context.history * (o.shared_dim + private + o.state_dim)
        for hidden in o.head:
            layers += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        layers.append(nn.Linear(width, context.future * context.num_beams))
        self.head = nn.Sequential(*layers)

    # --- the interface of learners.stages --------------------------------------------------------

    def pretraining_stages(self) -> tuple[PretrainStage, ...]:
        o = self.options
        return (
            PretrainStage(STAGE_I.name, o.stage1_epochs, o.stage_lr, STAGE_I.windows, STAGE_I.drives),
            PretrainStage(STAGE_II.name, o.stage2_epochs, o.stage_lr, STAGE_II.windows, STAGE_II.drives),
        )

    def backbone_prefixes(self) -> tuple[str, ...]:
        return ("experts", "prior", "transition", "reliability")

    def aligned_fraction(self) -> float:
        return self.options.aligned_fraction

    def stage_loss(
        self, stage: PretrainStage, batch: dict[str, Any], progress: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        inputs, masks = batch["inputs"], self._masks(batch["masks"])
        beta = self.kl_weight(stage, progress)
        if stage.windows == "unpaired":  # Stage I: one unimodal ELBO per modality, λ = 0
            total, terms = self.unitary_penalty(), {}
            for m in self.names:
                seq = self.sequence(inputs, masks, [m], sample=True)
                loss, parts, _ = self.elbo(seq, inputs, beta)
                total = total + loss
                terms[f"recon {m}"] = parts[f"recon {m}"]
                terms[f"KL {m}"] = parts["KL shared"] + parts["KL private"]
            terms["beta"] = beta
            return total, terms
        seq = self.sequence(inputs, masks, self.names, sample=True)
        loss, terms, means = self.elbo(seq, inputs, beta)
        scale = self.lambda_factor(progress)
        r_enc, r_dec = self.encoder_consistency(seq), self.decoder_decorrelation(seq, inputs, means)
        total = loss + scale * (self.options.lambda_enc * r_enc + self.options.lambda_dec * r_dec)
        terms.update({"R_enc": float(r_enc.detach()), "R_dec": float(r_dec.detach()), "lambda": scale})
        terms["beta"] = beta
        return total + self.unitary_penalty(), terms

    def kl_weight(self, stage: PretrainStage, progress: float) -> float:
        """β, the KL terms' weight at `progress` through `stage`: a linear warm-up from 0 to 1 over the
        first `kl_warmup` share of Stage I + II (by epochs; KL annealing, Bowman et al. 2016)."""
        o = self.options
        if o.kl_warmup == 0:
            return 1.0
        first, second = o.stage1_epochs, o.stage2_epochs
        done = first * progress if stage.windows == "unpaired" else first + second * progress
        return min(done / max(first + second, 1) / o.kl_warmup, 1.0)

    def lambda_factor(self, progress: float) -> float:
        """The share of λ_enc, λ_dec applied at `progress` through Stage II (reconstruction)."""
        ramp = self.options.lambda_ramp
        if self.options.lambda_schedule == "step":
            return float(progress >= ramp)
        return 1.0 if ramp == 0 else min(progress / ramp, 1.0)

    # --- inference ---------------------------------------------------------------------------------

    def _masks(self, masks: Tensors) -> Tensors:
        masks = {m: masks[m].bool() for m in self.names if m in masks}
        if self.options.gps_ends_only and "gps" in masks:
            ends = torch.zeros_like(masks["gps"])
            ends[:, 0] = ends[:, -1] = True
            masks["gps"] = masks["gps"] & ends
        return masks

    def weights(self) -> torch.Tensor:
        return F.softplus(self.reliability)

    def sequence(self, inputs: Tensors, masks: Tensors, use: list[str], sample: bool) -> Sequence:
        """Run the posterior and the transition through the window with the experts `use` (those whose
        frames are masked drop out frame by frame)."""
        o = self.options
        present = {m: masks[m] for m in use}
        batch, steps = next(iter(present.values())).shape
        features = {}
        for m in use:
            features[m] = self.frame_features(m, inputs[m]).view(batch, steps, -1)
        h = inputs[use[0]].new_zeros(batch, o.state_dim)
        weights = self.weights()
        chosen = [self.names.index(m) for m in use]
        out: dict[str, list[Any]] = {k: [] for k in ("prior", "posterior", "shared", "before", "after")}
        per: dict[str, dict[str, list[Any]]] = {
            m: {"expert": [], "private": [], "pprior": [], "pz": []} for m in use
        }
        for t in range(steps):
            prior = _split(self.prior(h), (o.shared_dim, o.shared_dim))
            experts = []
            for m in use:
                head = self.experts[m].posterior(torch.cat([features[m][:, t], h], -1))
                mu_s, lv_s, mu_p, lv_p = _split(head, self.experts[m].sizes)
                per[m]["expert"].append((mu_s, lv_s))
                per[m]["private"].append((mu_p, lv_p))
                pp = self.experts[m].private_prior
                per[m]["pprior"].append(
                    tuple(_split(pp(h), (o.private_dim,) * 2)) if pp is not None else (mu_p, lv_p)
                )
                per[m]["pz"].append(mu_p + torch.randn_like(mu_p) * torch.exp(0.5 * lv_p) if sample else mu_p)
                experts.append((mu_s, lv_s))
            gates = torch.stack([present[m][:, t] for m in use], 1)
            mu, lv = product_of_experts((prior[0], prior[1]), experts, weights[chosen], gates)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * lv) if sample else mu
            out["prior"].append(prior)
            out["posterior"].append((mu, lv))
            out["shared"].append(z)
            out["before"].append(h)
            h = self.transition(z, h)
            out["after"].append(h)

        def pairs(items: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.stack([a for a, _ in items], 1), torch.stack([b for _, b in items], 1)

        return Sequence(
            prior=pairs(out["prior"]),
            posterior=pairs(out["posterior"]),
            shared=torch.stack(out["shared"], 1),
            state_before=torch.stack(out["before"], 1),
            state_after=torch.stack(out["after"], 1),
            experts={m: pairs(per[m]["expert"]) for m in use},
            private={m: pairs(per[m]["private"]) for m in use},
            private_prior={m: pairs(per[m]["pprior"]) for m in use},
            private_z={m: torch.stack(per[m]["pz"], 1) for m in use},
            present=present,
        )

    def frame_local_inputs(self) -> tuple[str, ...]:
        return tuple(self.names)

    def encode_frames(self, name: str, frames: torch.Tensor) -> torch.Tensor:
        """The expert's encoder (the radar's learnable front end first): one frame at a time."""
        return self.experts[name].encode(frames)

    def representation(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        """(B, H·(shared [+ private] + state)): the window's E[z_t^s] and h_t, concatenated (56–57);
        with head_inputs = all, also every modality's E[z_t^{p,m}] (zero where its frame is missing)."""
        masks = self._masks(masks)
        use = [m for m in self.names if m in masks]
        seq = self.sequence(inputs, masks, use, sample=False)
        parts = [seq.posterior[0]]
        if self.options.head_inputs == "all" and self.options.private_dim:
            for m in self.names:
                if m in seq.private:
                    parts.append(seq.private[m][0] * seq.present[m].unsqueeze(-1).to(seq.shared.dtype))
                else:
                    parts.append(seq.shared.new_zeros(*seq.shared.shape[:2], self.options.private_dim))
        return torch.cat([*parts, seq.state_after], -1).flatten(1)

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        logits = self.head(self.representation(inputs, masks))
        return logits.view(-1, self.context.future, self.context.num_beams)

    # --- the objective -----------------------------------------------------------------------------

    def reconstructions(self, seq: Sequence) -> dict[str, torch.Tensor]:
        """Per modality run: the decoder means (B, H, *shape)."""
        out = {}
        for m in seq.present:
            latent = torch.cat([seq.shared, seq.private_z[m], seq.state_before], -1)
            mean = self.experts[m].decode(latent.flatten(0, 1))
            out[m] = mean.view(*seq.shared.shape[:2], *mean.shape[1:])
        return out

    def kl_term(self, kl: torch.Tensor, frames: int, present: torch.Tensor | None = None) -> torch.Tensor:
        """The KL as the loss sees it: per latent dimension, summed over the (present) frames and divided
        by `frames`, each dimension floored at `free_bits` nats (Kingma et al. 2016: below the floor a
        dimension's KL has no gradient, so the posterior is free to use it). kl: (B, H, D) elementwise."""
        if present is not None:
            kl = kl * present.unsqueeze(-1).to(kl.dtype)
        per_dim = kl.flatten(0, -2).sum(0) / frames
        if self.options.free_bits:
            per_dim = per_dim.clamp(min=self.options.free_bits)
        return per_dim.sum()

    def elbo(
        self, seq: Sequence, inputs: Tensors, beta: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
        """−ELBO (49) per frame, averaged over the batch and the window, its KL terms weighted by β and
        floored by free bits; its terms (the plain KLs); the decoder means."""
        batch, steps = seq.shared.shape[:2]
        frames = batch * steps
        kl_elements = gaussian_kl_elements(*seq.posterior, *seq.prior)
        kl_shared = kl_elements.sum() / frames
        loss, terms = beta * self.kl_term(kl_elements, frames), {"KL shared": float(kl_shared.detach())}
        means = self.reconstructions(seq)
        kl_private = seq.shared.new_zeros(())
        for m, mean in means.items():
            present = seq.present[m].flatten().float()
            x = inputs[m].flatten(0, 1)
            nll = self.experts[m].negative_log_likelihood(x, mean.flatten(0, 1), self.options.likelihood_dims)
            recon = (nll * present).sum() / frames
            elements = gaussian_kl_elements(*seq.private[m], *seq.private_prior[m])
            kl = (elements.sum(-1).flatten() * present).sum() / frames
            kl_private = kl_private + kl
            if elements.shape[-1]:
                loss = loss + beta * self.kl_term(elements, frames, seq.present[m])
            loss = loss + recon
            terms[f"recon {m}"] = float(recon.detach())
        terms["KL private"] = float(kl_private.detach())
        return loss, terms, means

    def encoder_consistency(self, seq: Sequence) -> torch.Tensor:
        """R_enc (41): Σ_m KL(q_m(z^s) ‖ q_PoE(z^s)) over the frames where m is present."""
        frames = seq.shared.shape[0] * seq.shared.shape[1]
        total = seq.shared.new_zeros(())
        for m, expert in seq.experts.items():
            kl = gaussian_kl(*expert, *seq.posterior)
            total = total + (kl * seq.present[m].float()).sum() / frames
        return total

    def decoder_decorrelation(
        self, seq: Sequence, inputs: Tensors, means: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """R_dec (39) on the decoder residuals, projected to `decorrelation_dims` per modality."""
        if len(means) < 2:
            return seq.shared.new_zeros(())
        residuals, present = [], []
        for m, mean in means.items():
            r = self.experts[m].residual(inputs[m], mean).flatten(0, 1).flatten(1)
            residuals.append(r @ self.experts[m].projection)
            present.append(seq.present[m].flatten())
        return cross_covariance_penalty(residuals, present)

    def unitary_penalty(self) -> torch.Tensor:
        if "radar" not in self.experts or not self.options.unitary_weight:
            return torch.zeros(())
        return self.options.unitary_weight * self.experts["radar"].front.unitarity_error()

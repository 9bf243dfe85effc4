"""The WMFM's building blocks (learners.models.wmfm): its own ResNet image encoder, the convolutional
channel encoder, projection heads, the symmetric InfoNCE loss, channel noise at a drawn SNR, and the
class-weighted focal loss of its LoS head. No torchvision: every block is written here, randomly
initialised (NOTES.md §0: no ImageNet weights are available)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """ResNet-18/34 block: two 3×3 convolutions with batch norm, identity or 1×1 shortcut."""

    def __init__(self, inputs: int, width: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inputs, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
        )
        self.outputs = width
        self.shortcut = _shortcut(inputs, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet-50 block: 1×1 reduce, 3×3 (carrying the stride), 1×1 expand ×4, with batch norm."""

    expansion = 4

    def __init__(self, inputs: int, width: int, stride: int):
        super().__init__()
        out = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(inputs, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.outputs = out
        self.shortcut = _shortcut(inputs, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def _shortcut(inputs: int, outputs: int, stride: int) -> nn.Module:
    if stride == 1 and inputs == outputs:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))


class ImageEncoder(nn.Module):
    """ResNet → global average pool → MLP (hidden, ReLU) → d. `bottleneck` with widths 64/128/256/512
    and blocks 3/4/6/3 is ResNet-50 (the paper's); the stem is 7×7 stride 2 + max-pool (`paper_stem`)
    or one 3×3 stride-2 convolution (small images)."""

    def __init__(
        self,
        widths: tuple[int, ...],
        blocks: tuple[int, ...],
        bottleneck: bool,
        paper_stem: bool,
        hidden: int,
        dim: int,
    ):
        super().__init__()
        stem_width = widths[0]
        if paper_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(3, stem_width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, stem_width, 3, 2, 1, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
            )
        block = Bottleneck if bottleneck else BasicBlock
        layers: list[nn.Module] = []
        channels = stem_width
        for stage, (width, count) in enumerate(zip(widths, blocks)):
            for i in range(count):
                unit = block(channels, width, 2 if i == 0 and stage > 0 else 1)
                layers.append(unit)
                channels = unit.outputs
        self.stages = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.stages(self.stem(x)).mean((2, 3)))


class ChannelEncoder(nn.Module):
    """(2, M, S) real/imaginary channel → 3×3 convolution + BN + ReLU blocks (size kept: M × S is
    small) → flatten → MLP (hidden, ReLU) → d (Fig. 1; depth and widths are not in the paper)."""

    def __init__(self, shape: tuple[int, ...], widths: tuple[int, ...], hidden: int, dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = shape[0]
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, 1, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.convs = nn.Sequential(*layers)
        flat = channels * shape[1] * shape[2]
        self.mlp = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.convs(x).flatten(1))


def projection_head(dim: int, widths: tuple[int, ...]) -> nn.Sequential:
    """Two fully connected layers with a ReLU between (paper: 256 → 32); used only in pretraining."""
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        layers.append(nn.Linear(dim, width))
        if i < len(widths) - 1:
            layers.append(nn.ReLU(inplace=True))
        dim = width
    return nn.Sequential(*layers)


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE (eq. 6): row i of `a` and row i of `b` are a positive pair, every other row
    of the batch a negative; cosine similarity over τ, cross-entropy both ways, averaged. ≈ log N for
    unrelated embeddings."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / tau
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def add_channel_noise(
    x: torch.Tensor, snr_mean_db: float, snr_std_db: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, 2, M, S) real/imaginary channels plus complex white Gaussian noise at a per-sample SNR
    drawn from N(snr_mean_db, snr_std_db²) dB relative to that sample's mean power per complex entry
    (§VII-A: 'mean 20 dB, standard deviation 10 dB'); returns the noisy channels and the SNRs."""
    batch = x.shape[0]
    snr_db = snr_mean_db + snr_std_db * torch.randn(batch, generator=generator)
    power = (x**2).sum(1).flatten(1).mean(1)  # |h|² per complex entry
    sigma = torch.sqrt(power / 10 ** (snr_db / 10) / 2).view(batch, 1, 1, 1)  # per real component
    return x + sigma * torch.randn(x.shape, generator=generator), snr_db


def class_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Focal loss (eq. 17) −α_c (1 − p_t)^γ log p_t, mean over the batch; α per class (the rarer
    non-LoS class weighted up). γ = 0 and α = 1 is cross-entropy."""
    log_pt = F.log_softmax(logits.float(), -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return (-alpha[target] * (1 - log_pt.exp()).clamp_min(0) ** gamma * log_pt).mean()

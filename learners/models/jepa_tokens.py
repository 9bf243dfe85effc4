"""Per-modality tokenisers of the JEPA world model (learners.models.jepa): one sensor frame → a few
tokens of width D.

- vision: an EfficientNet-B0 topology (MBConv with squeeze-and-excitation, B0's stage table) plus a
  1×1 convolution to D, randomly initialised (no ImageNet weights here), or a small CNN (`cnn`);
- radar and LiDAR images: a small CNN, three stride-2 3×3 convolutions, then a 1×1 convolution to D;
- GPS and the RF sweep: Linear + LayerNorm → one token.
Image tokenisers pool their feature map to a g×g grid (g² tokens). Normalisation is GroupNorm, not
batch norm, everywhere: with batch statistics a masked frame would reach the visible ones' tokens.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# EfficientNet-B0 stages: (expansion, channels, repeats, stride, kernel)
B0_STAGES = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
             (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))  # fmt: skip
B0_STEM, B0_HEAD = 32, 1280


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expansion, depthwise k×k, squeeze-and-excitation, 1×1 projection."""

    def __init__(self, inputs: int, outputs: int, expansion: int, stride: int, kernel: int):
        super().__init__()
        hidden = inputs * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(inputs, hidden, 1, bias=False), _norm(hidden), nn.SiLU()]
        layers += [nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
                   _norm(hidden), nn.SiLU()]  # fmt: skip
        self.expand = nn.Sequential(*layers)
        squeezed = max(1, inputs // 4)
        self.excite = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden, squeezed, 1), nn.SiLU(),
            nn.Conv2d(squeezed, hidden, 1), nn.Sigmoid(),
        )  # fmt: skip
        self.project = nn.Sequential(nn.Conv2d(hidden, outputs, 1, bias=False), _norm(outputs))
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x)
        h = self.project(h * self.excite(h))
        return x + h if self.residual else h


def efficientnet_b0(channels: int) -> nn.Sequential:
    """The B0 feature extractor (stem, 16 MBConv blocks, 1×1 head to 1280 channels)."""
    layers: list[nn.Module] = [nn.Conv2d(channels, B0_STEM, 3, 2, 1, bias=False), _norm(B0_STEM), nn.SiLU()]
    width = B0_STEM
    for expansion, outputs, repeats, stride, kernel in B0_STAGES:
        for i in range(repeats):
            layers.append(MBConv(width, outputs, expansion, stride if i == 0 else 1, kernel))
            width = outputs
    layers += [nn.Conv2d(width, B0_HEAD, 1, bias=False), _norm(B0_HEAD), nn.SiLU()]
    return nn.Sequential(*layers)


def small_cnn(channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, 2, 1), _norm(width), nn.GELU()]
        channels = width
    return nn.Sequential(*layers)


class ImageTokeniser(nn.Module):
    """(N, C, h, w) → (N, g², D): a CNN, average-pooled to a g×g grid, a 1×1 convolution to D."""

    def __init__(self, channels: int, dim: int, grid: int, widths: tuple[int, ...], efficientnet: bool):
        super().__init__()
        self.features = efficientnet_b0(channels) if efficientnet else small_cnn(channels, widths)
        width = B0_HEAD if efficientnet else widths[-1]
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.out = nn.Conv2d(width, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.pool(self.features(x))).flatten(2).transpose(1, 2)


class VectorTokeniser(nn.Module):
    """(N, n) → (N, 1, D): Linear + LayerNorm."""

    def __init__(self, inputs: int, dim: int):
        super().__init__()
        self.linear, self.norm = nn.Linear(inputs, dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x)).unsqueeze(1)


def sparse_sweep(beams: torch.Tensor, rsrp: torch.Tensor, mask: torch.Tensor, num_beams: int) -> torch.Tensor:
    """The RF token's input in the closed loop: a K-beam sweep holding only the served beam's
    normalised RSRP, zero elsewhere (zero everywhere where there is no feedback). (B, T) → (B, T, K)."""
    out = torch.zeros(*beams.shape, num_beams, dtype=rsrp.dtype)
    values = (rsrp * mask.to(rsrp.dtype)).unsqueeze(-1)
    return out.scatter(-1, beams.clamp(0, num_beams - 1).unsqueeze(-1), values)

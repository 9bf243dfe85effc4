"""Losses over (B, F, K) beam logits with (B, F) targets and masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def beam_targets(target: torch.Tensor, num_beams: int, sigma_beams: float) -> torch.Tensor:
    """(..., K) soft targets: a Gaussian over beam indices around the true beam, normalised. Beams are
    ordered by angle, so a neighbour of the best beam is nearly as good; spreading the target lets
    every class's output row learn from nearby frames as well (few frames per beam in small data)."""
    beams = torch.arange(num_beams, dtype=torch.float32)
    weights = torch.exp(-0.5 * ((beams - target.unsqueeze(-1).float()) / sigma_beams) ** 2)
    return weights / weights.sum(-1, keepdim=True)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    gamma: float = 2.0,
    sigma_beams: float = 0.0,
) -> torch.Tensor:
    """Focal loss −Σ_k q_k (1 − p_k)^γ log p_k (Lin et al.; q one-hot: −(1 − p_t)^γ log p_t), the
    BeamTransFuser paper's choice: it down-weights frames already classified well, so rare beams at
    the sector's edges are not drowned by the many easy ones. γ = 0 is cross-entropy; `sigma_beams`
    > 0 spreads q over neighbouring beams (beam_targets). Mean over unmasked (sample, horizon)."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    if sigma_beams > 0:
        q = beam_targets(target, logits.shape[-1], sigma_beams)
        loss = -(q * (1 - log_p.exp()).clamp_min(0) ** gamma * log_p).sum(-1)
    else:
        log_pt = log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        loss = -((1 - log_pt.exp()).clamp_min(0) ** gamma) * log_pt
    if mask is None:
        return loss.mean()
    weight = mask.to(loss.dtype)
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)


def gaussian_kl(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) of diagonal Gaussians, summed over the last axis (≥ 0)."""
    ratio = torch.exp(logvar_q - logvar_p)
    return 0.5 * (ratio + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1 - (logvar_q - logvar_p)).sum(-1)

"""Offline metrics of a predictor over a window dataset: top-1/2/3, DBA (twin.loop.metrics, the
DeepSense definition), mean beam distance of the top-1 beam, and the loss; on the first target frame
(the one served), plus top-1 per horizon when several frames are predicted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from learners.losses import focal_loss
from learners.models.registry import BeamPredictor
from twin.loop.metrics import dba, topk_hits


@torch.no_grad()
def predict(
    model: BeamPredictor, batches: Iterable[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Ranked beams (N, F, 3), targets (N, F), target masks (N, F) and the mean loss."""
    model.eval()
    ranked, targets, masks, losses, weights = [], [], [], [], []
    for batch in batches:
        logits = model(batch["inputs"], batch["masks"])
        losses.append(float(focal_loss(logits, batch["target"], batch["target_mask"], gamma=0.0)))
        weights.append(float(batch["target_mask"].sum()))
        ranked.append(torch.topk(logits, 3, dim=-1).indices.numpy())
        targets.append(batch["target"].numpy())
        masks.append(batch["target_mask"].numpy())
    if not ranked:
        empty = np.zeros((0, 1), np.int64)
        return np.zeros((0, 1, 3), np.int64), empty, empty.astype(bool), float("nan")
    loss = float(np.average(losses, weights=weights)) if sum(weights) else float("nan")
    return np.concatenate(ranked), np.concatenate(targets), np.concatenate(masks), loss


def scores(ranked: np.ndarray, targets: np.ndarray, masks: np.ndarray) -> dict[str, Any]:
    """top-1, top-2, top-3, DBA and mean |top-1 − truth| in beams on horizon 0; top-1 per horizon."""
    keep = masks[:, 0]
    first, truth = ranked[keep, 0], targets[keep, 0]
    if len(truth) == 0:
        return {
            "top1": float("nan"),
            "top2": float("nan"),
            "top3": float("nan"),
            "dba": float("nan"),
            "distance": float("nan"),
            "samples": 0,
        }
    out: dict[str, Any] = {
        "top1": float(topk_hits(first, truth, 1).mean()),
        "top2": float(topk_hits(first, truth, 2).mean()),
        "top3": float(topk_hits(first, truth, 3).mean()),
        "dba": dba(first, truth),
        "distance": float(np.abs(first[:, 0] - truth).mean()),
        "samples": len(truth),
    }
    if ranked.shape[1] > 1:
        out["top1_by_horizon"] = [
            float((ranked[masks[:, f], f, 0] == targets[masks[:, f], f]).mean())
            if masks[:, f].any()
            else float("nan")
            for f in range(ranked.shape[1])
        ]
    return out


def evaluate_offline(model: BeamPredictor, batches: Iterable[dict[str, Any]]) -> dict[str, Any]:
    ranked, targets, masks, loss = predict(model, batches)
    return {**scores(ranked, targets, masks), "loss": loss}

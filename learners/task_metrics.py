"""Metrics of the non-beam task heads (WMFM): balanced accuracy, per-class precision/recall/F1, and
top-k cross-modal retrieval."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def per_class(predicted: np.ndarray, truth: np.ndarray, classes: int) -> dict[str, list[float]]:
    """Precision, recall and F1 of every class (NaN where a class is never predicted / present)."""
    precision, recall, f1 = [], [], []
    for c in range(classes):
        tp = float(np.sum((predicted == c) & (truth == c)))
        p = tp / np.sum(predicted == c) if np.any(predicted == c) else float("nan")
        r = tp / np.sum(truth == c) if np.any(truth == c) else float("nan")
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r > 0 else float("nan"))
    return {"precision": precision, "recall": recall, "f1": f1}


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray, classes: int) -> float:
    """Mean recall over the classes present in `truth`."""
    recalls = [r for r in per_class(predicted, truth, classes)["recall"] if not np.isnan(r)]
    return float(np.mean(recalls)) if recalls else float("nan")


@torch.no_grad()
def retrieval_topk(
    query: torch.Tensor, keys: torch.Tensor, ks: tuple[int, ...], pool: int
) -> dict[int, float]:
    """Instance retrieval: in consecutive pools of `pool` pairs, the share of queries whose own key
    (same row) is among the k most cosine-similar keys of the pool (chance k / pool). Pools shorter
    than `pool` at the end are dropped, so chance is the same for every query."""
    hits = {k: 0 for k in ks}
    count = 0
    for start in range(0, len(query) - pool + 1, pool):
        q = F.normalize(query[start : start + pool], dim=-1)
        c = F.normalize(keys[start : start + pool], dim=-1)
        similarity = q @ c.T
        own = similarity.diagonal().unsqueeze(1)
        rank = (similarity > own).sum(1)  # keys strictly closer than the own one
        for k in ks:
            hits[k] += int((rank < k).sum())
        count += pool
    return {k: hits[k] / count if count else float("nan") for k in ks}

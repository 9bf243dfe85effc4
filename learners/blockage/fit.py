"""Train a blockage predictor: seeded, a fixed number of epochs (early stop on `patience`), validation
accuracy and F1 every epoch, the best epoch's weights saved (learners.blockage.checkpoint).

Class imbalance (4 % to 50 % blocked, by horizon and source): the loss weighs blocked windows by
`pos_weight`, by default the training split's ratio of clear to blocked windows, so both classes
weigh the same in total; the best epoch is the one with the highest validation F1 of "blocked"
(accuracy alone rewards predicting "clear" throughout).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from learners.blockage.checkpoint import load_blockage, save_blockage
from learners.blockage.model import BlockageGRU, BlockageOptions, blockage_options
from learners.blockage.windows import Windows, normalise
from learners.checkpoint import CheckpointError
from twin.errors import ConfigError
from twin.progress import progress_bar
from twin.validation import at_least, between, build, spec, to_dict


@dataclass(frozen=True)
class BlockageTrainConfig:
    epochs: int = spec(80, check=between(1, 100_000))
    batch_size: int = spec(32, check=between(1, 65_536))
    lr: float = spec(3e-3, check=between(1e-7, 10))
    weight_decay: float = spec(1e-4, check=between(0, 10))
    patience: int = spec(40, check=between(1, 100_000))  # epochs without a better validation F1
    pos_weight: float = spec(0.0, check=at_least(0))  # weight of a blocked window; 0: clear/blocked ratio
    seed: int = spec(0, check=at_least(0))
    threads: int = spec(0, check=between(0, 256))  # torch threads; 0: torch's default
    init_from: str = spec("")  # a blockage checkpoint whose weights start the training (fine-tuning)
    options: BlockageOptions = spec(factory=BlockageOptions)

    def to_json(self) -> dict[str, Any]:
        return to_dict(self)


def blockage_train_config(
    data: dict[str, Any] | BlockageTrainConfig | None, prefix: str = "train"
) -> BlockageTrainConfig:
    if isinstance(data, BlockageTrainConfig):
        return data
    data = dict(data or {})
    options = blockage_options(data.pop("options", None), f"{prefix}.options")
    return replace(build(BlockageTrainConfig, data, prefix), options=options)


@dataclass
class BlockageResult:
    checkpoint: Path
    metrics: dict[str, float]  # validation metrics of the saved weights
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float


def scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of "blocked" (0 where undefined), and the sample count."""
    labels, predictions = labels.astype(bool), predictions.astype(bool)
    tp = float(np.sum(labels & predictions))
    precision = tp / float(predictions.sum()) if predictions.sum() else 0.0
    recall = tp / float(labels.sum()) if labels.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float(np.mean(labels == predictions)) if len(labels) else float("nan")
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "samples": len(labels)}


def probabilities(model: nn.Module, windows: Windows, batch: int = 512) -> np.ndarray:
    """P(blocked) of every window (`model`: normalised sweeps → logits, a BlockageGRU or any other)."""
    x = torch.from_numpy(normalise(windows.sweeps))
    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [torch.sigmoid(model(x[i : i + batch])).numpy() for i in range(0, len(x), batch)] or [np.empty(0)]
        )


def evaluate(
    model: nn.Module, windows: Windows, threshold: float = 0.5, loss: nn.Module | None = None
) -> dict[str, float]:
    if windows.labels is None:
        raise ConfigError(f"{windows.source}: unlabelled; scoring needs a blockage label column")
    p = probabilities(model, windows)
    out = scores(windows.labels, p >= threshold)
    if loss is not None and len(p):
        logits = torch.logit(torch.from_numpy(p).double().clamp(1e-7, 1 - 1e-7))
        out["loss"] = float(loss(logits, torch.from_numpy(windows.labels).double()))
    return out


def _pos_weight(config: BlockageTrainConfig, labels: np.ndarray) -> float:
    if config.pos_weight:
        return config.pos_weight
    blocked = int(labels.sum())
    return (len(labels) - blocked) / blocked if blocked else 1.0


def _init(model: BlockageGRU, path: str) -> None:
    source = load_blockage(path).model
    if source.options != model.options or source.num_beams != model.num_beams:
        raise CheckpointError(
            f"train.init_from = {path!r}: a {source.num_beams}-beam model with {source.options.to_json()}; "
            f"this run builds {model.num_beams} beams with {model.options.to_json()}"
        )
    model.load_state_dict(source.state_dict())


def _improves(metrics: dict[str, float], best: dict[str, float] | None) -> bool:
    """A higher F1, or the same F1 with a validation loss lower by more than 0.1 %."""
    if best is None:
        return True
    if abs(metrics["f1"] - best["f1"]) > 1e-9:
        return metrics["f1"] > best["f1"]
    return metrics["loss"] < best["loss"] - 1e-3 * abs(best["loss"])


def epoch_line(epoch: int, loss: float, m: dict[str, float]) -> str:
    return (
        f"blockage epoch {epoch}: train loss {loss:.3f} | val loss {m['loss']:.3f}, "
        f"accuracy {m['accuracy']:.3f}, "
        f"F1 {m['f1']:.3f} (precision {m['precision']:.3f}, recall {m['recall']:.3f}, {m['samples']} windows)"
    )


@dataclass
class Fitted:
    """What `fit_classifier` leaves: the kept epoch's validation metrics, every epoch's, its number
    and the weight of a blocked window."""

    metrics: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    pos_weight: float


def check_splits(train: Windows, val: Windows) -> None:
    for name, windows in (("training", train), ("validation", val)):
        if windows.labels is None or len(windows) == 0:
            raise ConfigError(f"{windows.source}: no labelled {name} windows")
        if windows.labels.sum() == 0:
            raise ConfigError(f"{windows.source}: no blocked {name} window; F1 of 'blocked' is undefined")


def fit_classifier(
    model: nn.Module, train: Windows, val: Windows, config: BlockageTrainConfig, progress: bool = False
) -> Fitted:
    """The task's training loop for any module of (B, S, K) normalised sweeps → (B,) logits: its
    trainable parameters only (a frozen backbone stays as it is), blocked windows weighted, the
    epoch of the best validation F1 loaded back into `model`."""
    check_splits(train, val)
    weight = _pos_weight(config, train.labels)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight, dtype=torch.float64))
    train_loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    x, y = torch.from_numpy(normalise(train.sweeps)), torch.from_numpy(train.labels).float()
    history: list[dict[str, float]] = []
    best: dict[str, float] | None = None
    best_state, best_epoch, stale = None, 0, 0
    steps = math.ceil(len(x) / config.batch_size)
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.from_numpy(np.random.default_rng(config.seed + epoch).permutation(len(x)))
        total = 0.0
        desc = f"blockage epoch {epoch}/{config.epochs}"
        with progress_bar(range(steps), desc=desc, unit="batch", enabled=progress, leave=False) as bar:
            for step in bar:
                rows = order[step * config.batch_size : (step + 1) * config.batch_size]
                loss = train_loss(model(x[rows]), y[rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(rows)
        metrics = evaluate(model, val, loss=loss_fn)
        history.append({"epoch": epoch, "train_loss": total / len(x), **metrics})
        if progress:
            tqdm.write(epoch_line(epoch, total / len(x), metrics))
        if _improves(metrics, best):
            best, best_epoch, stale = metrics, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    assert best_state is not None and best is not None  # at least one epoch ran
    model.load_state_dict(best_state)
    model.eval()
    return Fitted(best, history, best_epoch, weight)


def fit_blockage(
    train: Windows,
    val: Windows,
    config: BlockageTrainConfig | dict[str, Any],
    folder: str | Path,
    horizon: int,
    extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> BlockageResult:
    """Train on `train`, choose the epoch by F1 on `val`, save it to `folder`."""
    start = time.perf_counter()
    config = blockage_train_config(config)
    check_splits(train, val)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = BlockageGRU(config.options, train.sweeps.shape[2])
    if config.init_from:
        _init(model, config.init_from)
    fitted = fit_classifier(model, train, val, config, progress)
    info = {
        "train": config.to_json(),
        "pos_weight": fitted.pos_weight,
        "metrics": fitted.metrics,
        "best_epoch": fitted.best_epoch,
        "history": fitted.history,
        "data": {
            "train": {"source": train.source, "windows": len(train), "blocked": int(train.labels.sum())},
            "val": {"source": val.source, "windows": len(val), "blocked": int(val.labels.sum())},
        },
        **(extra or {}),
    }
    folder = save_blockage(folder, model, horizon, info)
    return BlockageResult(
        folder, fitted.metrics, fitted.history, fitted.best_epoch, time.perf_counter() - start
    )

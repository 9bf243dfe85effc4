"""One epoch of optimisation at a time: AdamW, the learning-rate schedule, modality dropout and a loss
(the focal loss on beam logits unless a stage brings its own). Shared by the supervised trainer
(learners.train) and the pretraining stages (learners.stages)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from learners.data import RF_INPUT
from learners.losses import focal_loss

Loss = Callable[[dict[str, Any]], torch.Tensor]


def drop_modalities(batch: dict[str, Any], names: list[str], p: float, generator: torch.Generator) -> None:
    """Blank whole sensor inputs of random samples (mask 0, zeros), never all of a sample's inputs,
    so the model learns to decide with a sensor missing, as dropout faults will ask of it."""
    if p <= 0 or len(names) < 2:
        return
    size = next(iter(batch["masks"].values())).shape[0]
    drop = torch.rand(size, len(names), generator=generator) < p
    drop &= ~drop.all(1, keepdim=True)
    for j, name in enumerate(names):
        mask = batch["masks"][name]
        batch["masks"][name] = mask & ~drop[:, j : j + 1]
        shape = (size,) + (1,) * (batch["inputs"][name].dim() - 1)
        batch["inputs"][name] = batch["inputs"][name] * (~drop[:, j]).view(shape)


def batches(dataset: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(seed)
    )


def learning_rate_factor(schedule: str, step: int, steps: int) -> float:
    """Cosine decay to zero over the planned steps (stable last epochs), or constant."""
    if schedule == "constant" or steps <= 0:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


class Optimisation:
    """AdamW over the model's trainable parameters with the configured schedule; `config` needs
    lr, weight_decay, epochs, schedule, seed, modality_dropout, focal_gamma and label_sigma_beams
    (a TrainConfig). `loss(batch)` replaces the focal loss on the model's logits."""

    def __init__(self, model: nn.Module, config: Any, batches_per_epoch: int, loss: Loss | None = None):
        self.model, self.config = model, config
        self.loss = loss or self._supervised_loss
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimiser = torch.optim.AdamW(self.parameters, lr=config.lr, weight_decay=config.weight_decay)
        steps = config.epochs * batches_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda step: learning_rate_factor(config.schedule, step, steps)
        )
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.sensors = [n for n in getattr(model, "inputs", ()) if n != RF_INPUT]
        self.samples, self.seconds = 0, 0.0  # throughput of the optimisation steps alone

    def _supervised_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The model's own objective where it has one (e.g. the CVAE's ELBO), else the focal loss."""
        own = getattr(self.model, "training_loss", None)
        loss = own(batch) if own is not None else None
        if loss is not None:
            return loss
        c = self.config
        logits = self.model(batch["inputs"], batch["masks"])
        return focal_loss(logits, batch["target"], batch["target_mask"], c.focal_gamma, c.label_sigma_beams)

    def epoch(self, batches: Any, deadline: float | None) -> tuple[float, bool]:
        """Mean training loss of the epoch, and whether the deadline cut it short."""
        total, count = 0.0, 0
        for batch in batches:
            tick = time.perf_counter()
            drop_modalities(batch, self.sensors, self.config.modality_dropout, self.generator)
            loss = self.loss(batch)
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.parameters, 5.0)
            self.optimiser.step()
            self.scheduler.step()
            size = next(iter(batch["masks"].values())).shape[0]
            self.seconds += time.perf_counter() - tick
            self.samples += size
            total, count = total + loss.item() * size, count + size
            if hasattr(batches, "set_postfix"):
                batches.set_postfix(loss=f"{total / count:.3f}", refresh=False)
            if deadline is not None and time.perf_counter() > deadline:
                return total / count, True
        return total / max(count, 1), False

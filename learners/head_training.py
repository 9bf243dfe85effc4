"""Training loops on any window dataset, for the experiment scripts that build their own windows
(learners.jepa_real on real sweeps, learners.jepa_experiments on a run or random window split):
a model's first pretraining stage, and supervised epochs with chosen parameters frozen. The same seed
gives the same batches and weights; learners.train is the trainer of the command line."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import Dataset

from learners.models.registry import BeamPredictor
from learners.optimisation import Optimisation, batches
from learners.stages import _StageLoss
from learners.train import _freeze, train_config


def settings(epochs: int, lr: float, seed: int, batch_size: int) -> Any:
    """A TrainConfig for the Optimisation (no modality dropout: the scripts compare like with like);
    its model name only passes validation, the Optimisation never reads it."""
    return train_config({"model": "jepa", "epochs": max(epochs, 1), "lr": lr, "seed": seed,
                         "batch_size": batch_size, "modality_dropout": 0.0})  # fmt: skip


def pretrain(model: BeamPredictor, data: Dataset, epochs: int, batch_size: int, seed: int) -> list[float]:
    """The model's first pretraining stage (its own objective and learning rate) for `epochs`; the
    mean loss per epoch."""
    stage = model.pretraining_stages()[0]
    per_epoch = math.ceil(len(data) / batch_size)
    loss = _StageLoss(model, stage, epochs * per_epoch)
    run = Optimisation(model, settings(epochs, stage.lr, seed, batch_size), per_epoch, loss=loss)
    history = []
    for epoch in range(epochs):
        model.train()
        history.append(run.epoch(batches(data, batch_size, True, seed + epoch), None)[0])
    return history


def fit_heads(
    model: torch.nn.Module, data: Dataset, epochs: int, lr: float, batch_size: int, seed: int,
    frozen: tuple[str, ...] = (),
) -> list[float]:  # fmt: skip
    """Supervised epochs (the model's own loss, else the focal loss), `frozen` prefixes fixed (and
    their modules kept in eval mode); the mean loss per epoch."""
    fixed = _freeze(model, frozen)
    per_epoch = math.ceil(len(data) / batch_size)
    run = Optimisation(model, settings(epochs, lr, seed, batch_size), per_epoch)
    history = []
    for epoch in range(epochs):
        model.train()
        for m in fixed:
            m.eval()
        history.append(run.epoch(batches(data, batch_size, True, seed + epoch), None)[0])
    return history


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

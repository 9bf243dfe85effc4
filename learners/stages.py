"""The stage runner: a model's pretraining stages (each with its own objective, epochs and learning
rate, on unpaired or aligned windows), after which learners.train trains the supervised head on the
frozen backbone (`BeamPredictor.backbone_prefixes`).

Every stage epoch prints the training loss and the validation loss with its terms (on windows of the
same kind from the validation drives); the entries go into the checkpoint's `pretraining` history.
The same seed gives the same drive shares, windows, batches and noise, hence the same weights.
The command line that runs the stages alone is learners.pretrain.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from learners.data import FrameSet, UnpairedWindowDataset, WindowDataset
from learners.models.registry import BeamPredictor, PretrainStage
from learners.optimisation import Optimisation, batches
from twin.progress import progress_bar


def aligned_split(train_ids: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(aligned, unaligned) training drives: a seeded `fraction` of them, at least one, and the rest
    (all of them for both when the fraction is 1)."""
    if fraction >= 1 or len(train_ids) < 2:
        return list(train_ids), list(train_ids)
    order = np.random.default_rng(seed + 17).permutation(len(train_ids))
    count = min(max(1, math.ceil(fraction * len(train_ids))), len(train_ids) - 1)
    aligned = sorted(train_ids[i] for i in order[:count])
    return aligned, [i for i in train_ids if i not in set(aligned)]


def stage_windows(
    stage: PretrainStage, frames: FrameSet, drives: list[int], data: Any, training: bool, seed: int
) -> WindowDataset:
    if stage.windows == "unpaired":
        return UnpairedWindowDataset(frames, drives, data, seed=seed)
    return WindowDataset(frames, drives, data, training=training, seed=seed)


def _drives(stage: PretrainStage, train_ids: list[int], model: BeamPredictor, seed: int) -> list[int]:
    aligned, unaligned = aligned_split(train_ids, model.aligned_fraction(), seed)
    return {"all": list(train_ids), "aligned": aligned, "unaligned": unaligned}[stage.drives]


@torch.no_grad()
def stage_validation(
    model: BeamPredictor, stage: PretrainStage, windows: WindowDataset, batch_size: int, progress: float
) -> dict[str, float]:
    """Mean stage loss and terms over `windows` (model in eval mode, its noise drawn as in training)."""
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for batch in batches(windows, batch_size, False, 0):
        loss, terms = model.stage_loss(stage, batch, progress)
        size = next(iter(batch["masks"].values())).shape[0]
        for key, value in {"loss": float(loss.detach()), **terms}.items():
            sums[key] = sums.get(key, 0.0) + value * size
        count += size
    return {k: v / count for k, v in sums.items()} if count else {}


def run_stages(
    model: BeamPredictor,
    frames: FrameSet,
    train_ids: list[int],
    val_ids: list[int],
    config: Any,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every pretraining stage of `model` in order (config: the TrainConfig; a stage replaces its
    epochs and learning rate); returns one history entry per stage epoch."""
    history: list[dict[str, Any]] = []
    for number, stage in enumerate(model.pretraining_stages(), 1):
        if stage.epochs == 0:
            continue
        seed = config.seed + 1000 * number
        train_set = stage_windows(stage, frames, _drives(stage, train_ids, model, config.seed),
                                  config.data, True, seed)  # fmt: skip
        val_set = stage_windows(stage, frames, val_ids, config.data, False, config.seed)
        if not len(train_set):
            continue
        per_epoch = math.ceil(len(train_set) / config.batch_size)
        loss = _StageLoss(model, stage, stage.epochs * per_epoch)
        dropout = 0.0 if stage.windows == "unpaired" else config.modality_dropout
        settings = replace(config, lr=stage.lr, epochs=stage.epochs, seed=seed, modality_dropout=dropout)
        run = Optimisation(model, settings, per_epoch, loss=loss)
        for epoch in range(1, stage.epochs + 1):
            model.train()
            desc = f"{model.kind} {stage.name} epoch {epoch}/{stage.epochs}"
            epoch_batches = batches(train_set, config.batch_size, True, seed + epoch)
            with progress_bar(epoch_batches, desc=desc, unit="batch", enabled=progress, leave=False) as bar:
                train_loss, _ = run.epoch(bar, None)
            size = max(config.batch_size, 64)
            val = stage_validation(model, stage, val_set, size, loss.progress) if len(val_set) else {}
            entry = {"stage": stage.name, "epoch": epoch, "train_loss": train_loss, "val": val}
            history.append(entry)
            tqdm.write(_stage_line(model.kind, stage, entry))
    return history


class _StageLoss:
    """The stage objective as the optimiser's loss, told how far through the stage each step is."""

    def __init__(self, model: BeamPredictor, stage: PretrainStage, steps: int):
        self.model, self.stage, self.steps, self.step = model, stage, steps, 0

    @property
    def progress(self) -> float:
        return min(self.step / max(self.steps - 1, 1), 1.0)

    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        value, _ = self.model.stage_loss(self.stage, batch, self.progress)
        self.step += 1
        return value


def _stage_line(kind: str, stage: PretrainStage, entry: dict[str, Any]) -> str:
    line = f"{kind} {stage.name} epoch {entry['epoch']}/{stage.epochs}: train loss {entry['train_loss']:.3f}"
    val = dict(entry["val"])
    if val:
        line += f" | val loss {val.pop('loss'):.3f}, " + ", ".join(f"{k} {v:.3f}" for k, v in val.items())
    return line

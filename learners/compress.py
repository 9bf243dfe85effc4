"""Compress a trained BeamTransFuser: `python -m learners.compress checkpoint=<folder> ratio=0.4`.

Prunes the four fusion blocks (learners.pruning: KL importance over calibration windows, three
phases — residual channels, per-head q/k/v dimensions, FFN neurons — each followed by `epochs` of
fine-tuning with the checkpoint's own training settings, on its own drive split) to a parameter
budget and writes a new checkpoint whose pruned widths are in its config (it loads like any other).

`ratio` is the retention 1 − r, a fraction in (0, 1] of the parameters of the budget's `base`:
`fusion` (the fusion blocks, the only part pruned; default) or `model` (the whole model, which
pruning the fusion blocks alone reaches only while they hold enough of it: refused in one line
otherwise). Both retentions are printed, with validation top-1/top-3/DBA, parameters and the
decision latency (one window, p50/p99, on `threads` CPU threads) of the original and the pruned model.

`branches=true` goes beyond the paper's method: a fourth phase prunes the inner channels of every
residual block of the camera/LiDAR/radar CNN branches (learners.pruning), and the retention then
applies to the fusion blocks and those residual blocks alike, each keeping that share of its own
parameters; with `base=model` the pruned parts hold far more of the model, so far lower whole-model
retentions are reachable.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from learners.checkpoint import CheckpointError, load_checkpoint, read_config, save_checkpoint
from learners.data import FrameSet, WindowDataset, load_frames
from learners.metrics import evaluate_offline
from learners.models.beamtransfuser import BeamTransFuser
from learners.pruning import (
    BRANCH_PHASE,
    Batch,
    branch_block_parameter_count,
    branch_keeps,
    fusion_parameter_count,
    parameter_count,
    phase_keeps,
    phases,
    plan_branch_widths,
    plan_widths,
    prune,
)
from learners.train import fit, train_config, train_config_json
from twin.errors import ConfigError
from twin.validation import at_least, between, build, one_of, spec


def _retention(value: Any) -> str | None:
    return None if 0 < value <= 1 else "a fraction in (0, 1] (the share of parameters kept)"


@dataclass(frozen=True)
class CompressConfig:
    checkpoint: str = spec(check=lambda v: None if v else "a checkpoint folder")
    ratio: float = spec(check=_retention)  # retention 1 − r of the base's parameters
    base: str = spec("fusion", check=one_of("fusion", "model"))
    branches: bool = spec(False)  # beyond the paper: prune the CNN branches' residual blocks too
    importance: str = spec("grouped", check=one_of("exact", "grouped"))
    group: int = spec(4, check=between(1, 4096))  # structures masked together (grouped)
    calibration: int = spec(128, check=between(1, 1_000_000))  # windows of the training drives
    epochs: int = spec(1, check=between(0, 10_000))  # fine-tuning epochs after each phase
    lr: float = spec(3e-4, check=between(1e-7, 10))
    store: str = spec("")  # "": the store the checkpoint was trained on
    out: str = spec("")  # "": <checkpoint>-pruned<ratio>[-model]
    latency_windows: int = spec(50, check=between(1, 100_000))
    threads: int = spec(2, check=between(1, 256))
    seed: int = spec(0, check=at_least(0))


def compress_config(data: dict[str, Any] | CompressConfig, prefix: str = "compress") -> CompressConfig:
    if isinstance(data, CompressConfig):
        return data
    return build(CompressConfig, {k: v for k, v in data.items() if v is not None}, prefix)


@dataclass
class Measurement:
    parameters: int
    fusion_parameters: int
    metrics: dict[str, Any]
    latency_ms: tuple[float, float]  # p50, p99
    branch_parameters: int = 0  # of the CNN branches' residual blocks

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CompressResult:
    checkpoint: Path
    original: Measurement
    pruned: Measurement
    phases: list[dict[str, Any]] = field(default_factory=list)
    fusion_keep: float = 1.0

    @property
    def retained_model(self) -> float:
        return self.pruned.parameters / self.original.parameters

    @property
    def retained_fusion(self) -> float:
        return self.pruned.fusion_parameters / self.original.fusion_parameters

    @property
    def retained_branches(self) -> float:
        return self.pruned.branch_parameters / max(self.original.branch_parameters, 1)


def fusion_keep(model: BeamTransFuser, ratio: float, base: str, branches: bool = False) -> float:
    """The share of the pruned parts' parameters (the fusion blocks; with `branches`, the branches'
    residual blocks too) that each keeps for a retention `ratio` of `base`."""
    if base == "fusion":
        return ratio
    total, pruned = parameter_count(model), fusion_parameter_count(model)
    if branches:
        pruned += branch_block_parameter_count(model)
    keep = 1 - (1 - ratio) * total / pruned
    if keep < 0.05:
        floor = 1 - 0.95 * pruned / total
        parts = "the fusion and branch residual blocks" if branches else "the fusion blocks"
        raise ConfigError(
            f"compress.ratio = {ratio:g} with base=model: {parts} hold {pruned / total:.1%} of the "
            f"model's parameters, so pruning them keeps at least {floor:.3f} of it; use base=fusion or a "
            f"ratio of at least {floor:.3f}"
        )
    return keep


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, windows: list[Batch], threads: int) -> tuple[float, float]:
    """p50 and p99 of one decision's forward pass (one window), on `threads` torch threads."""
    model.eval()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for inputs, masks in windows[:3]:
            model(inputs, masks)
        times = []
        for inputs, masks in windows:
            tick = time.perf_counter()
            model(inputs, masks)
            times.append((time.perf_counter() - tick) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def measurement(model: BeamTransFuser, metrics: dict[str, Any], latency: tuple[float, float]) -> Measurement:
    return Measurement(
        parameter_count(model),
        fusion_parameter_count(model),
        metrics,
        latency,
        branch_block_parameter_count(model),
    )


def _batches(dataset: WindowDataset, count: int, batch_size: int) -> list[Batch]:
    """`count` windows spread evenly over the dataset, in batches."""
    if len(dataset) == 0:
        return []
    index = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))
    loader = DataLoader(Subset(dataset, index.tolist()), batch_size=batch_size, shuffle=False)
    return [(b["inputs"], b["masks"]) for b in loader]


class CompressData:
    """The checkpoint's data: its store, split, calibration, validation and latency windows (built
    once and shared by every retention of a study: loading a large store's frames dominates)."""

    def __init__(self, checkpoint: Any, config: CompressConfig):
        self.train = train_config(checkpoint.config.get("train") or {"model": checkpoint.kind})
        store = config.store or (checkpoint.config.get("store") or {}).get("path", "")
        if not store or not Path(store).is_file():
            raise ConfigError(
                f"compress.store = {store!r}: not a file (the checkpoint's training store is gone; "
                "give store=<file>)"
            )
        self.store = Path(store)
        data = self.config = checkpoint.data
        self.frames: FrameSet = load_frames(
            self.store, checkpoint.model.inputs, checkpoint.preprocess, data.label
        )
        train_ids, val_ids = self.frames.split(data, self.train.seed)
        self.val = WindowDataset(self.frames, val_ids, data, training=False)
        calibration = WindowDataset(self.frames, train_ids, data, training=False)
        self.calibration = _batches(calibration, config.calibration, 32)
        source = self.val if len(self.val) else calibration
        self.latency = _batches(source, config.latency_windows, 1)

    def measure(self, model: BeamTransFuser, threads: int) -> Measurement:
        loader = DataLoader(self.val, batch_size=64, shuffle=False)
        metrics = evaluate_offline(model, loader) if len(self.val) else {}
        return measurement(model, metrics, latency_ms(model, self.latency, threads))


def _fine_tune(
    model: BeamTransFuser, data: CompressData, config: CompressConfig, folder: Path, scratch: Path
) -> BeamTransFuser:
    """`config.epochs` of the checkpoint's own training (same split, loss, augmentation) from `model`."""
    if config.epochs == 0:
        return model
    start = scratch / "pruned"
    save_checkpoint(start, model.eval(), data.config, {"train": train_config_json(data.train)})
    settings = dataclasses.replace(
        data.train,
        options=json.loads(json.dumps(dataclasses.asdict(model.options))),
        epochs=config.epochs,
        lr=config.lr,
        init_from=str(start),
        freeze=(),
        time_budget_s=0.0,
    )
    fit(data.store, settings, folder, progress=False, frames=data.frames)
    return load_checkpoint(folder).model


def compress(config: CompressConfig | dict[str, Any], data: CompressData | None = None) -> CompressResult:
    """Prune, fine-tune after each phase, measure both models and write the pruned checkpoint;
    `data`: the checkpoint's data already loaded with the same store, calibration and latency settings."""
    config = compress_config(config)
    checkpoint = load_checkpoint(config.checkpoint)
    if not isinstance(checkpoint.model, BeamTransFuser):
        raise CheckpointError(
            f"{checkpoint.path}: a {checkpoint.kind} checkpoint; compress prunes beamtransfuser"
        )
    if checkpoint.model.pruned:
        raise CheckpointError(f"{checkpoint.path}: already pruned; compress the original checkpoint")
    model = checkpoint.model
    keep = fusion_keep(model, config.ratio, config.base, config.branches)
    data = data or CompressData(checkpoint, config)
    torch.manual_seed(config.seed)
    suffix = f"-pruned{config.ratio:g}" + ("-model" if config.base == "model" else "")
    suffix += "-branches" if config.branches else ""
    out = Path(config.out or f"{checkpoint.path}{suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    original = data.measure(model, config.threads)
    targets = plan_widths(model, keep)
    inner_targets = plan_branch_widths(model, keep) if config.branches else []
    done = []
    with tempfile.TemporaryDirectory(prefix=".compress-", dir=out.parent) as tmp:
        for phase in phases(config.branches):
            if phase == BRANCH_PHASE:
                keeps = branch_keeps(model, data.calibration, inner_targets, config.importance, config.group)
            else:
                keeps = phase_keeps(model, data.calibration, phase, targets, config.importance, config.group)
            if not keeps:
                continue
            model = prune(model, keeps)
            before = data.measure(model, config.threads).metrics
            model = _fine_tune(model, data, config, out, Path(tmp))
            after = data.measure(model, config.threads).metrics
            done.append(
                {
                    "phase": phase,
                    "fusion_parameters": fusion_parameter_count(model),
                    "branch_parameters": branch_block_parameter_count(model),
                    "pruned": before,
                    "tuned": after,
                }
            )
            print(
                f"phase          {phase}: fusion parameters {fusion_parameter_count(model):,}, "
                f"branch blocks {branch_block_parameter_count(model):,}, "
                f"validation DBA {before.get('dba', float('nan')):.3f} pruned, "
                f"{after.get('dba', float('nan')):.3f} fine-tuned"
            )
    pruned = data.measure(model, config.threads)
    result = CompressResult(out, original, pruned, done, keep)
    kept = ("train", "store", "split", "history")
    extra = {k: v for k, v in checkpoint.config.items() if k in kept}
    if config.epochs:  # the last fine-tuning wrote its own settings and history there
        extra.update({k: v for k, v in read_config(out).items() if k in kept})
        # It started from the pruned source, saved in a temporary folder now gone: name the source.
        extra["train"] = {**extra["train"], "init_from": str(checkpoint.path)}
    extra["metrics"] = pruned.metrics
    extra["compression"] = {
        "source": str(checkpoint.path),
        **{k: v for k, v in dataclasses.asdict(config).items() if k not in ("checkpoint", "out")},
        "fusion_keep": keep,
        "retained_model": result.retained_model,
        "retained_fusion": result.retained_fusion,
        "retained_branches": result.retained_branches,
        "original": original.to_json(),
        "pruned": pruned.to_json(),
        "phases": done,
    }
    save_checkpoint(out, model.eval(), checkpoint.data, extra)
    return result


def describe(result: CompressResult, config: CompressConfig) -> str:
    """The original and the pruned model side by side: parameters, accuracy and latency."""
    rows = [("original", result.original), ("pruned", result.pruned)]
    lines = [
        f"{'':10}{'parameters':>12}{'fusion':>10}{'top-1':>8}{'top-3':>8}{'DBA':>8}{'p50 ms':>9}{'p99 ms':>9}"
    ]
    for name, m in rows:
        metric = {k: m.metrics.get(k, float("nan")) for k in ("top1", "top3", "dba")}
        lines.append(
            f"{name:10}{m.parameters:>12,}{m.fusion_parameters:>10,}{metric['top1']:>8.3f}{metric['top3']:>8.3f}"
            f"{metric['dba']:>8.3f}{m.latency_ms[0]:>9.2f}{m.latency_ms[1]:>9.2f}"
        )
    branches = f", {result.retained_branches:.3f} of the branch residual blocks" if config.branches else ""
    parts = "fusion + branch blocks" if config.branches and config.base == "fusion" else config.base
    lines.append(
        f"retained  {result.retained_model:.3f} of the model, {result.retained_fusion:.3f} of the fusion "
        f"blocks{branches} (ratio={config.ratio:g} of the {parts}); "
        f"latency: one window, {config.threads} threads"
    )
    lines.append(f"checkpoint     {result.checkpoint}")
    return "\n".join(lines)


def _main() -> None:
    from omegaconf import DictConfig, OmegaConf

    from twin.cli import entry_point, run_task

    @run_task
    def task(cfg: DictConfig) -> None:
        data = {
            k: v
            for k, v in OmegaConf.to_container(cfg, resolve=True).items()
            if k not in ("hydra", "progress")
        }
        config = compress_config(data)
        result = compress(config)
        print(describe(result, config))

    entry_point(task, config_name="compress")()


if __name__ == "__main__":
    _main()

"""The RF-only JEPA's blockage head on DeepSense scenario 17's future-1/5/10 splits, scored beside
the blockage task's shipped GRUs and "always clear".

    python -m learners.jepa_blockage [--data ../shared/data/deepsense6g/scenario17] [--horizons 1 5 10]

Per horizon N, the windows of `future-N/scenario17_dev_series_{train,val,test}.csv` are read and
normalised by the blockage task itself (learners.blockage.windows: 8 sweeps of 64 beams in dB, each
window standardised by its own mean and standard deviation).
- Backbone: `SweepJEPA` (learners.jepa_real) pretrained self-supervised on the TRAIN windows'
  sweeps only, no labels. The window is 8 frames, all observed (history 8, no future frame): a
  series row holds only its 8 sweeps, so SweepJEPA's 8 + 5 window becomes 8 + 0, one contiguous block
  of ⌊ρ·8⌋ = 4 sweeps is masked and predicted, and the `future_share` pattern (mask every future
  frame) is off, having no frame to mask.
- Head: the backbone frozen with every sweep visible; the predictor's 8 frame tokens and the context
  encoder's global token (9 × D), standardised by their training-window statistics, → a one-hidden-
  layer MLP → one logit. It trains with the task's loop (learners.blockage.fit.fit_classifier: blocked
  windows weighted by the clear/blocked ratio, the epoch of the best validation F1 kept).
- Scoring: accuracy and F1 of "blocked" on the TEST split by learners.blockage.fit.evaluate
  (threshold 0.5), the function learners.blockage_shipped scores the shipped GRUs with; their
  checkpoints are loaded and scored here beside it, as is "always clear".
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from learners.blockage.checkpoint import load_blockage
from learners.blockage.fit import BlockageTrainConfig, evaluate, fit_classifier, scores
from learners.blockage.windows import SWEEPS, Windows, fraction, normalise, read_series, series_csv
from learners.blockage_shipped import default_data, shipped_blockage
from learners.data import RF_INPUT
from learners.head_training import pretrain, trainable_parameters
from learners.jepa_real import SweepJEPA, sweep_jepa
from learners.jepa_real import _option as jepa_option
from learners.train import seed_everything
from twin.errors import ConfigError

HORIZONS = (1, 5, 10)
SPLITS = ("train", "val", "test")
# No future frame: the blockage series end at the last observed sweep, so there is none to predict.
BACKBONE = {"future_share": 0.0}


class SeriesSweeps(Dataset):
    """Unlabelled pretraining windows: each normalised window's 8 sweeps, all present."""

    def __init__(self, windows: Windows):
        self.sweeps = torch.from_numpy(normalise(windows.sweeps))

    def __len__(self) -> int:
        return len(self.sweeps)

    def __getitem__(self, i: int) -> dict[str, Any]:
        present = torch.ones(self.sweeps.shape[1], dtype=torch.bool)
        return {"inputs": {RF_INPUT: self.sweeps[i]}, "masks": {RF_INPUT: present}}


class JEPABlockage(nn.Module):
    """(B, 8, K) normalised sweeps → (B,) logits of "blocked": a small MLP on the frozen backbone's
    states. The backbone's own beam / power heads are carried along unused."""

    def __init__(self, backbone: SweepJEPA, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.backbone = backbone
        for p in backbone.parameters():
            p.requires_grad_(False)
        width = (backbone.frames + 1) * backbone.options.dim
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.head = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def train(self, mode: bool = True) -> JEPABlockage:
        super().train(mode)
        self.backbone.eval()  # frozen: the same states in training as when scored
        return self

    @torch.no_grad()
    def states(self, sweeps: torch.Tensor) -> torch.Tensor:
        """(B, 9 D): the predictor's token of each observed sweep (RF only: one per frame, in frame
        order), every sweep visible, then the global token."""
        model = self.backbone
        present = torch.ones(sweeps.shape[:2], dtype=torch.bool)
        values, frames = model.history_values({RF_INPUT: sweeps}, {RF_INPUT: present})
        predicted, _ = model.predict(values, model.encoder.layout.token_mask(frames))
        return torch.cat([predicted.flatten(1), model._summary], 1)

    def standardise_on(self, windows: Windows, batch: int = 512) -> None:
        """Per-feature mean and std of the training windows' states (the states differ little
        between windows next to their common part, as the JEPA's own heads note)."""
        x = torch.from_numpy(normalise(windows.sweeps))
        self.backbone.eval()
        s = torch.cat([self.states(x[i : i + batch]) for i in range(0, len(x), batch)])
        self.mean.copy_(s.mean(0))
        self.std.copy_(s.std(0).clamp_min(1e-4))

    def forward(self, sweeps: torch.Tensor) -> torch.Tensor:
        return self.head((self.states(sweeps) - self.mean) / self.std).squeeze(-1)


@dataclass(frozen=True)
class Settings:
    data: str = ""  # the scenario17 folder; "" = learners.blockage_shipped.default_data()
    horizons: tuple[int, ...] = HORIZONS
    share: float = 1.0  # a seeded share of each split (tests: a tiny scale)
    pretrain_epochs: int = 20
    pretrain_batch: int = 64
    head_epochs: int = 80  # the task's default; patience and the rest as BlockageTrainConfig
    seed: int = 0
    jepa: tuple[tuple[str, Any], ...] = ()  # SweepJEPA options (tiny preset unless given)


def read_splits(folder: Path, share: float, seed: int) -> dict[str, Windows]:
    splits = {s: read_series(series_csv(folder, s)) for s in SPLITS}
    for windows in splits.values():
        if windows.labels is None:
            raise ConfigError(
                f"{windows.source}: unlabelled; the head trains and is scored on blockage labels"
            )
    if share < 1:
        splits = {s: fraction(w, share, seed + i) for i, (s, w) in enumerate(splits.items())}
    return splits


def fit_jepa_blockage(
    train: Windows, val: Windows, s: Settings, log: Any = print
) -> tuple[JEPABlockage, dict[str, Any]]:
    """Pretrain on `train`'s sweeps (no labels), freeze, train the head with the task's loop."""
    seed_everything(s.seed)
    backbone = sweep_jepa(train.sweeps.shape[2], {**BACKBONE, **dict(s.jepa)}, history=SWEEPS, future=1)
    losses = pretrain(backbone, SeriesSweeps(train), s.pretrain_epochs, s.pretrain_batch, s.seed)
    log(f"  pretraining loss per epoch: {', '.join(f'{v:.4f}' for v in losses)}")
    torch.manual_seed(s.seed)
    model = JEPABlockage(backbone)
    model.standardise_on(train)
    fitted = fit_classifier(
        model, train, val, replace(BlockageTrainConfig(), epochs=s.head_epochs, seed=s.seed)
    )
    log(f"  head: best epoch {fitted.best_epoch} of {len(fitted.history)}, val F1 {fitted.metrics['f1']:.4f}")
    return model, {"best_epoch": fitted.best_epoch, "pretrain_loss": losses}


def run_horizon(folder: Path, horizon: int, s: Settings, log: Any = print) -> dict[str, dict[str, float]]:
    """Test scores of the JEPA head, the shipped GRU and "always clear" at one horizon."""
    start = time.perf_counter()
    splits = read_splits(folder, s.share, s.seed)
    train, val, test = (splits[k] for k in SPLITS)
    log(f"future-{horizon}: " + ", ".join(f"{k} {len(w)} windows ({int(w.labels.sum())} blocked)"
                                          for k, w in splits.items()))  # fmt: skip
    model, info = fit_jepa_blockage(train, val, s, log)
    gru = load_blockage(shipped_blockage(horizon))
    if gru.horizon != horizon:
        raise ConfigError(f"{gru.path}: a future-{gru.horizon} predictor, expected future-{horizon}")
    return {
        "JEPA head (RF only, frozen)": {
            **evaluate(model, test),
            "trainable": trainable_parameters(model),
            "seconds": time.perf_counter() - start,
            **info,
        },
        "shipped GRU": {
            **evaluate(gru.model, test, gru.threshold),
            "trainable": trainable_parameters(gru.model),
        },
        "always clear": {**scores(test.labels, np.zeros(len(test), bool)), "trainable": 0},
    }


def run(s: Settings, log: Any = print) -> dict[int, dict[str, dict[str, float]]]:
    data = Path(s.data) if s.data else default_data()
    if not data.is_dir():
        raise ConfigError(f"data = {str(data)!r}: not found (expected DeepSense's scenario17 folder)")
    return {h: run_horizon(data / f"future-{h}", h, s, log) for h in s.horizons}


def table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    """A markdown table: per horizon, the test accuracy and F1 of each predictor."""
    lines = [
        "| horizon | predictor | trainable parameters | test accuracy | test F1 | precision | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for horizon, rows in results.items():
        for name, m in rows.items():
            lines.append(
                f"| future-{horizon} | {name} | {m['trainable']:,} | {m['accuracy']:.4f} | {m['f1']:.4f} "
                f"| {m['precision']:.4f} | {m['recall']:.4f} |"
            )
    return "\n".join(lines)


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Settings()
    parser.add_argument(
        "--data", default=d.data, help="DeepSense's scenario17 folder (default: ../shared/data)"
    )
    parser.add_argument("--horizons", type=int, nargs="+", default=list(d.horizons), choices=HORIZONS)
    for field in ("share", "pretrain_epochs", "pretrain_batch", "head_epochs", "seed"):
        parser.add_argument(
            "--" + field.replace("_", "-"), type=type(getattr(d, field)), default=getattr(d, field)
        )
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a JEPA option")
    parser.add_argument("--threads", type=int, default=1)
    args = vars(parser.parse_args())
    torch.set_num_threads(args.pop("threads"))
    jepa = tuple(jepa_option(o) for o in args.pop("option"))
    settings = Settings(**{**args, "horizons": tuple(args["horizons"])}, jepa=jepa)
    start = time.perf_counter()
    results = run(settings)
    print(table(results))
    print(f"total {time.perf_counter() - start:.0f} s on {torch.get_num_threads()} thread(s)")


if __name__ == "__main__":
    _main()

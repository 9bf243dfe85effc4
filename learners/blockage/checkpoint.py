"""Blockage checkpoints: the project's checkpoint layout (`model.safetensors` + `config.json`, no
pickle, one-line errors naming the file) with their own format name, since a blockage predictor
has no beam codebook, deployment or sensor inputs for learners.checkpoint to rebuild.

config.json holds the model options, beams per sweep, sweeps per window, horizon, normalisation,
decision threshold, training settings, data sources, the per-epoch history and the chosen metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from learners.blockage.model import BlockageGRU, blockage_options
from learners.blockage.windows import MIN_SPREAD_DB, SWEEPS
from learners.checkpoint import (
    CONFIG,
    WEIGHTS,
    CheckpointError,
    load_weights,
    read_format,
    read_weights,
    write_files,
)
from twin.errors import ConfigError

FORMAT = "blockage-predictor-checkpoint"
VERSION = 1
NORMALISATION = {
    "kind": "each window's dB standardised by its own mean and std",
    "min_spread_db": MIN_SPREAD_DB,
}


@dataclass
class BlockageCheckpoint:
    path: Path
    model: BlockageGRU
    config: dict[str, Any]

    @property
    def horizon(self) -> int:
        return int(self.config["horizon"])

    @property
    def threshold(self) -> float:
        return float(self.config["threshold"])


def save_blockage(folder: str | Path, model: BlockageGRU, horizon: int, extra: dict[str, Any]) -> Path:
    """Write weights and config into `folder` (created); each file is replaced atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.kind,
        "options": model.options.to_json(),
        "num_beams": model.num_beams,
        "sweeps": SWEEPS,
        "horizon": horizon,
        "normalisation": NORMALISATION,
        "threshold": 0.5,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "torch": torch.__version__,
        **extra,
    }
    return write_files(folder, model, config)


def _read_config(folder: Path) -> dict[str, Any]:
    expected = {"options": dict, "num_beams": int, "horizon": int, "sweeps": int, "threshold": float}
    config = read_format(folder, FORMAT, VERSION, expected)
    meta = folder / CONFIG
    if config["sweeps"] != SWEEPS or config.get("normalisation") != NORMALISATION:
        raise CheckpointError(
            f"{meta}: windows of {config['sweeps']} sweeps normalised as "
            f"{config.get('normalisation')}; this code reads {SWEEPS}, {NORMALISATION}"
        )
    return config


def load_blockage(path: str | Path) -> BlockageCheckpoint:
    """Rebuild the predictor of a checkpoint folder (or of its model.safetensors / config.json)."""
    folder = Path(path)
    if folder.is_file() and folder.name in (WEIGHTS, CONFIG):
        folder = folder.parent
    config = _read_config(folder)
    meta, weights = folder / CONFIG, folder / WEIGHTS
    try:
        model = BlockageGRU(blockage_options(config["options"], f"{meta}: options"), config["num_beams"])
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from exc
    load_weights(model, read_weights(weights), weights, "blockage")
    return BlockageCheckpoint(folder, model.eval(), config)

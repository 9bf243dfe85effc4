"""Blockage checkpoints: the project's checkpoint layout (`model.safetensors` + `config.json`, no
pickle, one-line errors naming the file) with their own format name, since a blockage predictor
has no beam codebook, deployment or sensor inputs for learners.checkpoint to rebuild.

config.json holds the model options, beams per sweep, sweeps per window, horizon, normalisation,
decision threshold, training settings, data sources, the per-epoch history and the chosen metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from learners.blockage.model import BlockageGRU, blockage_options
from learners.blockage.windows import MIN_SPREAD_DB, SWEEPS
from learners.checkpoint import CONFIG, WEIGHTS, CheckpointError
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
    tensors = {name: t.detach().contiguous().clone() for name, t in model.state_dict().items()}
    weights, meta = folder / WEIGHTS, folder / CONFIG
    save_file(tensors, str(weights) + ".tmp", metadata={"format": FORMAT, "model": model.kind})
    (folder / (CONFIG + ".tmp")).write_text(json.dumps(config, indent=2))
    Path(str(weights) + ".tmp").replace(weights)
    (folder / (CONFIG + ".tmp")).replace(meta)
    return folder


def _read_config(folder: Path) -> dict[str, Any]:
    meta = folder / CONFIG
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint {str(folder)!r}: not found (expected a folder with {WEIGHTS} and {CONFIG})"
        )
    if not meta.is_file():
        raise CheckpointError(f"{meta}: missing (a checkpoint folder holds {WEIGHTS} and {CONFIG})")
    try:
        config = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta}: not valid JSON ({exc})") from exc
    found = config.get("format") if isinstance(config, dict) else None
    if found != FORMAT:
        raise CheckpointError(f"{meta}: not a {FORMAT} config (key 'format' is {found!r})")
    if config.get("version") != VERSION:
        raise CheckpointError(f"{meta}: version {config.get('version')!r}, this code reads version {VERSION}")
    for key, kind in {
        "options": dict,
        "num_beams": int,
        "horizon": int,
        "sweeps": int,
        "threshold": float,
    }.items():
        if not isinstance(config.get(key), kind):
            raise CheckpointError(
                f"{meta}: key {key!r} must be a {kind.__name__}, got {config.get(key)!r:.60}"
            )
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
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from exc
    expected = model.state_dict()
    if set(tensors) != set(expected):
        raise CheckpointError(
            f"{weights}: tensors do not match a blockage model with the config's options "
            f"(missing {sorted(set(expected) - set(tensors))[:3]}, "
            f"unexpected {sorted(set(tensors) - set(expected))[:3]})"
        )
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape) or tensor.dtype != expected[name].dtype:
            raise CheckpointError(
                f"{weights}: tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, "
                f"the model expects {tuple(expected[name].shape)} {expected[name].dtype}"
            )
    model.load_state_dict(tensors)
    return BlockageCheckpoint(folder, model.eval(), config)

"""Checkpoints: a folder with `model.safetensors` (tensors only) and `config.json` (everything needed
to rebuild the model and preprocess its inputs: model name and options, preprocessing, data window,
the deployment it was trained for, training settings, metrics and the drive split).

Loading executes no code from the files (safetensors and JSON, no pickle); the JSON is validated and
the tensors are checked against the rebuilt model, key by key and shape by shape, and every problem
is one line naming the file.
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

from learners.data import DataConfig, data_config
from learners.models.registry import BeamPredictor, ModelContext, build_model, model_options, options_json
from learners.preprocess import PreprocessConfig, preprocess_config
from twin.errors import ConfigError, TwinError
from twin.store.deployment import Deployment

FORMAT = "beam-learner-checkpoint"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(TwinError):
    """A checkpoint is missing, malformed or does not match the model it describes."""


@dataclass
class Checkpoint:
    path: Path  # the folder
    model: BeamPredictor
    config: dict[str, Any]  # the parsed config.json

    @property
    def kind(self) -> str:
        return str(self.config["model"])

    @property
    def data(self) -> DataConfig:
        return data_config(self.config["data"])

    @property
    def preprocess(self) -> PreprocessConfig:
        return preprocess_config(self.config["preprocess"])

    @property
    def deployment(self) -> Deployment:
        return Deployment.from_json(self.config["deployment"])


def save_checkpoint(
    folder: str | Path, model: BeamPredictor, data: DataConfig, extra: dict[str, Any]
) -> Path:
    """Write weights and config into `folder` (created); files are replaced atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    context = model.context
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.kind,
        "options": options_json(model.options),
        "preprocess": context.preprocess.to_json(),
        "data": data.to_json(),
        "inputs": list(model.inputs),
        "num_beams": context.num_beams,
        "shapes": {name: list(shape) for name, shape in context.shapes.items()},
        "deployment": context.deployment.to_json(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "torch": torch.__version__,
        **extra,
    }
    return write_files(folder, model, config)


def write_files(folder: Path, model: torch.nn.Module, config: dict[str, Any]) -> Path:
    """The weights and config.json of a checkpoint of any format (`config["format"]`), each written
    to a temporary file first and then renamed over the old one, so nothing half-written is read."""
    tensors = {name: t.detach().contiguous().clone() for name, t in model.state_dict().items()}
    weights, meta = folder / WEIGHTS, folder / CONFIG
    save_file(tensors, str(weights) + ".tmp", metadata={"format": config["format"], "model": config["model"]})
    (folder / (CONFIG + ".tmp")).write_text(json.dumps(config, indent=2, default=_jsonable))
    Path(str(weights) + ".tmp").replace(weights)
    (folder / (CONFIG + ".tmp")).replace(meta)
    return folder


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _folder(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS, CONFIG):
        return path.parent
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The validated config.json of a checkpoint folder."""
    expected = {"model": str, "options": dict, "preprocess": dict, "data": dict, "shapes": dict,
                "deployment": dict}  # fmt: skip
    return read_format(_folder(path), FORMAT, VERSION, expected)


def read_format(folder: Path, form: str, version: int, expected: dict[str, type]) -> dict[str, Any]:
    """A checkpoint folder's config.json, checked to be of format `form` and `version` with the
    `expected` keys of the given types (one line naming the file otherwise)."""
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
    if found != form:
        raise CheckpointError(f"{meta}: not a {form} config (key 'format' is {found!r})")
    if config.get("version") != version:
        raise CheckpointError(f"{meta}: version {config.get('version')!r}, this code reads version {version}")
    for key, kind in expected.items():
        if not isinstance(config.get(key), kind):
            raise CheckpointError(
                f"{meta}: key {key!r} must be a {kind.__name__}, got {config.get(key)!r:.60}"
            )
    return config


def _context(config: dict[str, Any], meta: Path) -> ModelContext:
    try:
        data = data_config(config["data"], prefix=f"{meta}: data")
        preprocess = preprocess_config(config["preprocess"], prefix=f"{meta}: preprocess")
        deployment = Deployment.from_json(config["deployment"])
        shapes = {name: tuple(int(s) for s in shape) for name, shape in config["shapes"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{meta}: malformed entry ({exc!r})") from exc
    return ModelContext(deployment.num_beams, data.history, data.future, shapes, deployment, preprocess)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the model of a checkpoint folder (or of its model.safetensors / config.json)."""
    folder = _folder(path)
    config = read_config(folder)
    meta, weights = folder / CONFIG, folder / WEIGHTS
    try:
        options = model_options(config["model"], config["options"], prefix=f"{meta}: options")
        model = build_model(config["model"], options, _context(config, meta))
    except ConfigError as exc:
        raise CheckpointError(f"{meta}: {exc}") from exc
    load_weights(model, type(model).convert_state(read_weights(weights)), weights, config["model"])
    model.eval()
    return Checkpoint(folder, model, config)


def read_weights(weights: Path) -> dict[str, torch.Tensor]:
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing")
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from exc


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], weights: Path, kind: str) -> None:
    """Load `tensors` into `model` after checking them key by key and shape by shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: tensors do not match a {kind} model with the config's options "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
        )
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape) or tensor.dtype != expected[name].dtype:
            raise CheckpointError(
                f"{weights}: tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, "
                f"the model expects {tuple(expected[name].shape)} {expected[name].dtype}"
            )
    model.load_state_dict(tensors)

"""Train a beam predictor on a store: `python -m learners.train model=beamtransfuser scenario=urban_street`.

The store is the scenario's cached twin dataset (generated when missing) or any store given as
`store=<file>` (e.g. replayed recordings). Drives are split by run into training and validation
(learners.data); every epoch prints validation top-1/top-3, DBA and mean beam distance; training
stops after `epochs`, or early when validation DBA has not improved for `patience` epochs; the best
epoch's weights are saved (safetensors + config.json). The same seed gives the same split, batches,
augmentation and initial weights, hence the same checkpoint however fast the machine is. A wall-clock
cap, `time_budget_s`, is opt-in (default off): where it cuts training, the checkpoint records it
(`stopped: "time budget"`) and its numbers depend on the machine.

From Python: `train(store, {"model": "gru", "epochs": 5}, "outputs/checkpoints/gru", time_budget_s=60)`
returns the checkpoint folder; `train_or_load` reuses a folder trained with the same settings on the
same data.

Frozen backbone plus head (for pretrained encoders): `init_from=<checkpoint>` loads every tensor whose
name and shape match, and `freeze=[prefix, ...]` keeps parameters under those name prefixes fixed
(their batch-norm statistics too). A model with pretraining stages (VI-PoE) runs them first
(learners.stages, each with its own progress and validation lines), then trains its head here on
the frozen backbone; the epochs, learning rate and loss of this file are the head's.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from learners.checkpoint import CheckpointError, load_checkpoint, read_config, save_checkpoint
from learners.data import DataConfig, FrameSet, WindowDataset, data_config, load_frames
from learners.metrics import evaluate_offline
from learners.models.registry import BeamPredictor, ModelContext, model_class, model_options
from learners.optimisation import Optimisation, batches
from learners.preprocess import CHANNEL_INPUT, PreprocessConfig, check_channel_fits, preprocess_config
from learners.stages import run_stages
from twin.errors import ConfigError
from twin.progress import progress_bar
from twin.validation import at_least, between, build, one_of, spec, to_dict


@dataclass(frozen=True)
class TrainConfig:
    model: str = spec("beamtransfuser")
    epochs: int = spec(20, check=between(1, 100_000))  # 0 would save untrained weights as a checkpoint
    batch_size: int = spec(32, check=between(1, 65_536))
    lr: float = spec(1e-3, check=between(1e-7, 10))
    weight_decay: float = spec(1e-4, check=between(0, 10))
    focal_gamma: float = spec(2.0, check=between(0, 10))
    label_sigma_beams: float = spec(2.0, check=between(0, 100))  # soft labels; 0: the paper's one-hot
    patience: int = spec(5, check=between(1, 100_000))  # epochs without a better validation DBA
    schedule: str = spec("cosine", check=one_of("cosine", "constant"))  # learning rate over the epochs
    keep: str = spec("best", check=one_of("best", "last"))  # weights saved: best validation DBA or last
    seed: int = spec(0, check=at_least(0))
    time_budget_s: float = spec(0.0, check=at_least(0))  # opt-in wall-clock cap; 0: none (epochs decide)
    modality_dropout: float = spec(0.1, check=between(0, 0.9))  # per sample and sensor input
    threads: int = spec(0, check=between(0, 256))  # torch threads; 0: torch's default
    init_from: str = spec("")  # checkpoint whose matching tensors initialise the model
    # Share of the training windows the supervised stage learns from (a seeded subset: label-efficiency
    # runs); pretraining stages and validation use every window.
    label_fraction: float = spec(1.0, check=between(0.01, 1))
    freeze: tuple[str, ...] = spec(())  # parameter-name prefixes kept fixed
    data: DataConfig = spec(factory=DataConfig)
    # Free-form, validated by the model's and the preprocessor's own dataclasses:
    options: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)


def train_config(
    data: Mapping[str, Any] | TrainConfig | None, prefix: str = "train", command_line: bool = False
) -> TrainConfig:
    """Validate training settings; errors name keys as the caller wrote them (`train.options.x` from
    Python, `model.options.x` / `data.x` / `preprocess.x` on the command line)."""
    if isinstance(data, TrainConfig):
        return data
    data = dict(data or {})
    options = dict(data.pop("options", None) or {})
    preprocess = dict(data.pop("preprocess", None) or {})
    window = data.pop("data", None)
    keys = {k: f"{prefix}.{k}" for k in ("model", "options", "data", "preprocess")}
    if command_line:
        keys = {"model": "model.name", "options": "model.options", "data": "data", "preprocess": "preprocess"}
    model_class(data.get("model", TrainConfig.model), key=keys["model"])
    config = build(TrainConfig, data, prefix)
    model_options(config.model, options, prefix=keys["options"])  # fail early, one line
    preprocess_config(preprocess, prefix=keys["preprocess"])
    return replace(config, data=data_config(window, keys["data"]), options=options, preprocess=preprocess)


def train_config_json(config: TrainConfig) -> dict[str, Any]:
    out = to_dict(replace(config, options={}, preprocess={}))
    out["options"], out["preprocess"] = dict(config.options), dict(config.preprocess)
    return out


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict[str, Any]  # validation metrics of the saved weights
    history: list[dict[str, Any]]  # one entry per epoch
    samples_per_s: float  # training throughput (forward + backward + step)
    stopped: str  # epochs | early stop | time budget | nothing to train
    seconds: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _init_from(model: nn.Module, path: str, store: str | Path) -> int:
    """Copy every tensor of another checkpoint whose name (or, for a model holding another one, the
    name under the model's `init_prefix`) and shape match; returns how many. A checkpoint of another
    channel shape than the store's is refused in one line."""
    loaded = load_checkpoint(path)
    context = getattr(model, "context", None)
    if context is not None:  # encoders of another channel shape would load in part, silently
        trained, given = loaded.model.context.shapes, context.shapes
        key = f"train.init_from = {path!r}"
        check_channel_fits(trained.get(CHANNEL_INPUT), given.get(CHANNEL_INPUT), key, store)
    source = loaded.model.state_dict()
    own = model.state_dict()
    prefix = getattr(model, "init_prefix", "")
    matched = {}
    for k, v in source.items():
        for name in (k, prefix + k):
            if name in own and own[name].shape == v.shape:
                matched[name] = v
                break
    model.load_state_dict(matched, strict=False)
    return len(matched)


def _freeze(model: nn.Module, prefixes: tuple[str, ...]) -> list[nn.Module]:
    """Stop gradients under the prefixes; returns the fully frozen modules (kept in eval mode)."""
    if not prefixes:
        return []
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            raise ConfigError(f"train.freeze: no parameter starts with {prefix!r}")
    for name, parameter in model.named_parameters():
        if name.startswith(prefixes):
            parameter.requires_grad_(False)
    return [
        m
        for name, m in model.named_modules()
        if name and name.startswith(prefixes) and all(not p.requires_grad for p in m.parameters())
    ]


def store_identity(path: Path) -> dict[str, Any]:
    """What identifies the training data: the twin's digests when present, else size and mtime."""
    with h5py.File(path, "r") as f:
        attrs = f.attrs
        identity = {
            k: str(attrs[k])
            for k in ("scenario_name", "config_digest", "code_digest", "source")
            if k in attrs
        }
    if "config_digest" not in identity:
        stat = path.stat()
        identity.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    return identity


@dataclass
class _Setup:
    model: BeamPredictor
    frames: FrameSet
    train_ids: list[int]
    val_ids: list[int]
    frozen: list[nn.Module]


def model_inputs(
    config: TrainConfig,
) -> tuple[type[BeamPredictor], Any, PreprocessConfig, tuple[str, ...]]:
    """The model class, its validated options, its preprocessing (preset defaults under the
    config's overrides) and the inputs it reads."""
    cls = model_class(config.model, key="train.model")
    options = model_options(config.model, config.options, prefix="train.options")
    defaults = cls.preprocess_defaults(options)
    preprocess = preprocess_config({**defaults, **config.preprocess}, "train.preprocess")
    return cls, options, preprocess, cls.inputs_of(options)


def _setup(store: str | Path, config: TrainConfig, frames: FrameSet | None) -> _Setup:
    """Data (preprocessed for the model's inputs), split, model, initial weights and frozen parts."""
    cls, options, preprocess, inputs = model_inputs(config)
    data = config.data
    if frames is None or frames.inputs != inputs:
        frames = load_frames(store, inputs, preprocess, data.label)
    train_ids, val_ids = frames.split(data, config.seed)
    deployment = frames.deployment
    context = ModelContext(
        deployment.num_beams, data.history, data.future, frames.shapes, deployment, preprocess
    )
    model: BeamPredictor = cls(options, context)
    if config.init_from:
        _init_from(model, config.init_from, store)
    frozen = _freeze(model, (*config.freeze, *model.frozen_prefixes()))
    return _Setup(model, frames, train_ids, val_ids, frozen)


def fit(
    store: str | Path,
    config: TrainConfig | Mapping[str, Any],
    checkpoint_dir: str | Path,
    progress: bool = True,
    frames: FrameSet | None = None,
    head: bool = True,
) -> TrainResult:
    """Train, validate every epoch, save the chosen weights to `checkpoint_dir`. `frames` reuses data
    already loaded for the same inputs and preprocessing; `head=False` stops after the pretraining
    stages (the command line of learners.pretrain)."""
    start = time.perf_counter()
    config = train_config(config)
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    setup = _setup(store, config, frames)
    model, data = setup.model, config.data
    pretraining: list[dict[str, Any]] = []
    if model.pretraining_stages():  # representation stages first, then the head on the frozen backbone
        pretraining = run_stages(model, setup.frames, setup.train_ids, setup.val_ids, config, progress)
        setup.frozen = _freeze(model, (*config.freeze, *model.backbone_prefixes()))
    train_set = WindowDataset(
        setup.frames, setup.train_ids, data, training=True, seed=config.seed, share=config.label_fraction
    )
    val_set = WindowDataset(setup.frames, setup.val_ids, data, training=False)
    val_loader = batches(val_set, max(config.batch_size, 64), False, config.seed)
    task_metrics = getattr(model, "evaluate_task", None)  # a non-beam head's own metrics (WMFM)
    if task_metrics is not None:
        validate = (lambda: task_metrics(val_loader)) if len(val_set) else dict
    else:
        validate = (lambda: evaluate_offline(model, val_loader)) if len(val_set) else dict
    deadline = start + config.time_budget_s if config.time_budget_s else None
    history: list[dict[str, Any]] = []
    chosen: dict[str, Any] = {}
    stopped, samples_per_s = "epochs", float("nan")
    if not head:
        stopped = "pretraining only"
    elif not model.trainable or config.epochs == 0 or len(train_set) == 0:
        stopped, chosen = "nothing to train", validate()
    else:
        run = Optimisation(model, config, math.ceil(len(train_set) / config.batch_size))
        best_key, best_state, stale = None, None, 0
        for epoch in range(1, config.epochs + 1):
            model.train()
            for module in setup.frozen:
                module.eval()
            epoch_batches = batches(train_set, config.batch_size, True, config.seed + epoch)
            desc = f"{config.model} epoch {epoch}/{config.epochs}"
            with progress_bar(epoch_batches, desc=desc, unit="batch", enabled=progress, leave=False) as bar:
                loss, out_of_time = run.epoch(bar, deadline)
            metrics = validate()
            history.append({"epoch": epoch, "train_loss": loss, **metrics})
            tqdm.write(_epoch_line(config.model, history[-1]))  # always: validation is the point of the run
            key = _monitored(metrics, loss)
            if best_key is None or _improves(key, best_key):
                best_key, chosen, stale = key, metrics, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
            if out_of_time or stale >= config.patience:
                stopped = "time budget" if out_of_time else "early stop"
                break
        if config.keep == "best" and best_state is not None:
            model.load_state_dict(best_state)
        else:
            chosen = {k: v for k, v in history[-1].items() if k not in ("epoch", "train_loss")}
        samples_per_s = run.samples / run.seconds if run.seconds else float("nan")
    extra = {
        "train": train_config_json(config),
        "metrics": chosen,
        "history": history,
        "pretraining": pretraining,
        "stopped": stopped,
        "samples_per_s": samples_per_s,
        "store": {"path": str(store), **store_identity(Path(store))},
        "split": {
            "train": [setup.frames.drives[i].id for i in setup.train_ids],
            "val": [setup.frames.drives[i].id for i in setup.val_ids],
        },
    }
    folder = save_checkpoint(checkpoint_dir, model.eval(), data, extra)
    return TrainResult(folder, chosen, history, samples_per_s, stopped, time.perf_counter() - start)


def _monitored(metrics: dict[str, Any], train_loss: float) -> tuple[float, float]:
    """(score, loss) the early stopping watches: validation DBA (or a task head's `score`) and loss,
    else the training loss."""
    if metrics.get("samples"):
        return metrics.get("score", metrics.get("dba")), metrics["loss"]
    return 0.0, train_loss


def _improves(key: tuple[float, float], best: tuple[float, float]) -> bool:
    """A higher DBA, or the same DBA with a loss lower by more than 0.1 % (not mere jitter)."""
    (score, loss), (best_score, best_loss) = key, best
    if abs(score - best_score) > 1e-9:
        return score > best_score
    return loss < best_loss - 1e-3 * abs(best_loss)


def _epoch_line(model: str, entry: dict[str, Any]) -> str:
    line = f"{model} epoch {entry['epoch']}: train loss {entry['train_loss']:.3f}"
    if entry.get("samples") and "score" in entry:  # a task head: its scalar metrics
        scalars = {
            k: v for k, v in entry.items() if isinstance(v, float) and k not in ("train_loss", "score")
        }
        return line + " | val " + ", ".join(f"{k} {v:.3f}" for k, v in scalars.items())
    if entry.get("samples"):
        line += (
            f" | val loss {entry['loss']:.3f}, top-1 {entry['top1']:.3f}, top-3 {entry['top3']:.3f}, "
            f"DBA {entry['dba']:.3f}, distance {entry['distance']:.2f} beams"
        )
    return line


def train(
    store: str | Path,
    config: TrainConfig | Mapping[str, Any],
    checkpoint_dir: str | Path,
    time_budget_s: float | None = None,
    progress: bool = True,
) -> Path:
    """Train and return the checkpoint folder; `time_budget_s` overrides the config's budget."""
    config = train_config(config)
    if time_budget_s is not None:
        config = replace(config, time_budget_s=float(time_budget_s))
    return fit(store, config, checkpoint_dir, progress).checkpoint


def settings_key(store: str | Path, config: TrainConfig) -> str:
    """A short hash of the training settings (budget aside) and the data's identity."""
    settings = train_config_json(replace(config, time_budget_s=0.0))
    blob = json.dumps({"settings": settings, "store": store_identity(Path(store))}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def train_or_load(
    store: str | Path,
    config: TrainConfig | Mapping[str, Any],
    checkpoint_root: str | Path,
    time_budget_s: float | None = None,
    progress: bool = True,
    log: Callable[[str], Any] | None = None,
) -> Path:
    """The checkpoint of these settings on this store: reused from `checkpoint_root/<model>-<hash>`
    when it exists and loads, otherwise trained there (within `time_budget_s`, when given). A
    checkpoint a time budget cut short is reused only under a budget again: without one, training
    runs to its epochs. `log` (e.g. print) receives one line saying which, and the training time."""
    config = train_config(config)
    folder = checkpoint_folder(store, config, checkpoint_root)
    budget = config.time_budget_s if time_budget_s is None else time_budget_s
    if checkpoint_exists(store, config, checkpoint_root):
        if budget or not cut_by_time_budget(folder):
            if log:
                log(f"reusing        {config.model} trained with these settings on {store}")
            return folder
        if log:
            log(f"retraining     {config.model}: its checkpoint was cut short by a time budget")
    if log:
        log(f"training       {config.model} on {store}" + (f" (at most {budget:.0f} s)" if budget else ""))
    start = time.perf_counter()
    train(store, config, folder, time_budget_s, progress)
    if log:
        log(f"trained        {config.model} in {time.perf_counter() - start:.1f} s")
    return folder


def cut_by_time_budget(checkpoint: str | Path) -> bool:
    """Whether a time budget stopped this checkpoint's training before its epochs were done."""
    return read_config(checkpoint).get("stopped") == "time budget"


def checkpoint_folder(store: str | Path, config: TrainConfig, checkpoint_root: str | Path) -> Path:
    """Where train_or_load keeps the checkpoint of these settings on this store."""
    return Path(checkpoint_root) / f"{config.model}-{settings_key(store, config)}"


def checkpoint_exists(store: str | Path, config: TrainConfig, checkpoint_root: str | Path) -> bool:
    """Whether train_or_load would reuse a checkpoint (one that loads) instead of training."""
    try:
        load_checkpoint(checkpoint_folder(store, config, checkpoint_root))
    except CheckpointError:
        return False
    return True


# --- command line -----------------------------------------------------------------------------------


def _config_from_hydra(cfg: Any) -> TrainConfig:
    from omegaconf import OmegaConf

    model = OmegaConf.to_container(cfg.model, resolve=True)
    train_section = OmegaConf.to_container(cfg.train, resolve=True)
    options = {k: v for k, v in (model.get("options") or {}).items() if v is not None}  # null: default
    settings = {
        **train_section,
        "model": model.get("name"),
        "options": options,
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "preprocess": OmegaConf.to_container(cfg.preprocess, resolve=True) or {},
    }
    if settings["model"] == "cvae":
        settings = generator_settings(settings, cfg.get("predictor"), cfg.get("target"))
    elif cfg.get("predictor") or cfg.get("target"):
        raise ConfigError(f"target, predictor: only for model=cvae, not model={settings['model']}")
    return train_config(settings, command_line=True)


def generator_settings(
    settings: dict[str, Any], predictor: str | Path | None, target: str | None
) -> dict[str, Any]:
    """Training settings of a CVAE that fills `target` for the BeamTransFuser checkpoint `predictor`:
    its options, preprocessing and data window, its weights (frozen), no modality dropout."""
    if not predictor:
        raise ConfigError("predictor: missing; model=cvae needs predictor=<beamtransfuser checkpoint folder>")
    meta = read_config(predictor)
    if meta["model"] != "beamtransfuser":
        raise CheckpointError(
            f"{predictor}: a {meta['model']} checkpoint; model=cvae fills beamtransfuser inputs"
        )
    options = {**settings.get("options", {}), "predictor_options": meta["options"]}
    if target:
        options["target"] = target
    return {
        **settings,
        "options": options,
        "preprocess": meta["preprocess"],
        "data": meta["data"],
        "init_from": str(predictor),
        "freeze": ["predictor"],
        "modality_dropout": 0.0,
    }


def _describe(result: TrainResult, config: TrainConfig) -> str:
    m = result.metrics
    lines = [f"stopped        {result.stopped} after {len(result.history)} epochs, {result.seconds:.1f} s"]
    if result.stopped == "time budget":
        lines[0] += (
            f": train.time_budget_s = {config.time_budget_s:g} s cut it before epoch {config.epochs} "
            "(another machine trains further and gets other weights)"
        )
    if not math.isnan(result.samples_per_s):
        lines.append(f"throughput     {result.samples_per_s:.0f} training samples/s")
    if m.get("samples") and "score" in m:
        scalars = {k: v for k, v in m.items() if isinstance(v, float) and k != "score"}
        lines.append("validation     " + ", ".join(f"{k} {v:.3f}" for k, v in scalars.items()))
    elif m.get("samples"):
        lines.append(
            f"validation     top-1 {m['top1']:.3f}, top-3 {m['top3']:.3f}, DBA {m['dba']:.3f}, "
            f"distance {m['distance']:.2f} beams ({m['samples']} windows)"
        )
    lines.append(f"checkpoint     {result.checkpoint}")
    return "\n".join(lines)


def task(cfg: Any) -> None:
    from twin.dataset.resolve import resolve_store

    if cfg.model.get("name") == "blockage":  # another task on the same stores and recordings
        from learners.blockage.command import train_task

        return train_task(cfg)
    if cfg.get("series"):
        raise ConfigError(f"series: only for model=blockage, not model={cfg.model.get('name')}")
    config = _config_from_hydra(cfg)
    resolved = resolve_store(cfg, progress=cfg.progress)
    preset = config.options.get("preset")
    folder = cfg.get("checkpoint_dir") or Path("outputs/checkpoints") / resolved.slug / (
        config.model + (f"-{preset}" if preset else "")
    )
    print(f"dataset        {resolved.path}")
    result = fit(resolved.path, config, folder, progress=cfg.progress)
    print(_describe(result, config))


def _main() -> None:
    from twin.cli import entry_point, run_task

    entry_point(run_task(task))()


if __name__ == "__main__":
    _main()

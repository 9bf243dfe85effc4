"""The learners' step of the main job (`python -m twin.run`), plugged in as the `learned` entry point
of the `twin.run` group (twin.plugins) and configured by the top-level `learned:` section.

Before the closed-loop evaluation, every model in `learned.train` is trained on the store for its
epochs (or its checkpoint reused: same settings, same data) and joins the policies with its
checkpoint: the same command gives the same weights and report however fast or busy the machine is.
A wall-clock cap, `learned.time_budget_s`, is opt-in; where it (or a checkpoint's own training
budget) cut training short, the console and the report's notes say so. A checkpoint configured by
hand (`evaluation.policy_options.<model>.checkpoint`) joins the same way. Whenever a learned policy
was trained on this very store, every policy is scored on the drives it held out for validation
only, so no number in the report comes from a drive a model learned from (all policies on the same
drives keeps the comparison paired).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learners.checkpoint import read_config
from learners.data import input_fields
from learners.models.registry import MODELS, model_options
from learners.policy import register_learned_policies
from learners.shipped import TRAINING_FIRST_RUN, check_fits, shipped_kind, shipped_models
from learners.train import (
    TrainConfig,
    cut_by_time_budget,
    model_inputs,
    store_identity,
    train_config,
    train_or_load,
)
from twin.errors import ConfigError
from twin.loop.drives import load_drives
from twin.loop.evaluate import EvaluationConfig
from twin.loop.plan import EvaluationPlan
from twin.store import TwinStore
from twin.validation import at_least, build, spec


@dataclass(frozen=True)
class LearnedRunConfig:
    train: tuple[str, ...] = spec(())  # models trained on this store before the evaluation
    shipped: bool = spec(True)  # also run every shipped checkpoint of the store's scenario (learners.shipped)
    time_budget_s: float | None = spec(None, check=at_least(1))  # opt-in cap per model; None: epochs decide
    checkpoint_dir: str = spec("outputs/checkpoints")
    settings: dict[str, Any] = field(default_factory=dict)  # TrainConfig keys for every model
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per model: its options


def learned_run_config(data: Mapping[str, Any] | None, prefix: str = "learned") -> LearnedRunConfig:
    """Validate the `learned` section, including each model's training settings (before any tracing)."""
    data = dict(data or {})
    settings = dict(data.pop("settings", None) or {})
    options = {k: dict(v or {}) for k, v in (data.pop("options", None) or {}).items()}
    config = build(LearnedRunConfig, data, prefix)
    for i, name in enumerate(config.train):
        if name not in MODELS:
            available = ", ".join(MODELS)
            raise ConfigError(f"{prefix}.train[{i}] = {name!r}: unknown model; available: {available}")
        if name in config.train[:i]:
            raise ConfigError(f"{prefix}.train[{i}] = {name!r}: listed twice; expected each model once")
    for name in options:
        if name not in config.train:
            trained = ", ".join(config.train) or "none"
            raise ConfigError(f"{prefix}.options.{name}: not a model in {prefix}.train ({trained})")
    config = dataclasses.replace(config, settings=settings, options=options)
    for name in config.train:
        model_options(name, options.get(name), prefix=f"{prefix}.options.{name}")
        train_config({**settings, "model": name}, prefix=f"{prefix}.settings")
    return config


def _settings(config: LearnedRunConfig, name: str) -> dict[str, Any]:
    return {**config.settings, "model": name, "options": config.options.get(name, {})}


class LearnedStep:
    """The `learned` step: train or reuse the configured models, then evaluate on held-out drives."""

    def __init__(self, section: Mapping[str, Any] | None, key: str = "learned"):
        self.config = learned_run_config(section, prefix=key) if section is not None else None

    def prepare(self, store: Path, plan: EvaluationPlan, progress: bool) -> EvaluationPlan:
        if self.config is None:
            return plan
        prepared = prepare_learned(store, self.config, plan.evaluation, plan.policies, progress)
        prepared.notes[:0] = plan.notes
        return prepared


def prepare_learned(
    store: str | Path,
    config: LearnedRunConfig,
    evaluation: EvaluationConfig,
    policies: Sequence[str],
    progress: bool = True,
) -> EvaluationPlan:
    """Train (or reuse) the configured models, attach their checkpoints, choose the drives."""
    register_learned_policies()
    store = Path(store)
    options = {k: dict(v) for k, v in evaluation.policy_options.items()}
    names = list(policies)
    notes: list[str] = []
    root = Path(config.checkpoint_dir) / store.stem
    for name in config.train:
        settings = train_config(_settings(config, name))
        missing = missing_fields(store, settings)
        if missing:
            notes.append(f"{name} not trained: the store has no {', '.join(missing)}")
            print(f"skipped        {notes[-1]}")
            continue
        folder = train_or_load(store, settings, root, config.time_budget_s, progress, log=print)
        metrics = read_config(folder).get("metrics", {})
        if metrics.get("samples"):
            print(
                f"checkpoint     {folder}: validation top-1 {metrics['top1']:.3f}, top-3 "
                f"{metrics['top3']:.3f}, DBA {metrics['dba']:.3f}"
            )
        options.setdefault(name, {})["checkpoint"] = str(folder)
        if name not in names:
            names.append(name)
    if config.shipped:
        attach_shipped(store, config, options, names, notes)
    for name in names:  # a checkpoint given by hand must fit too
        checkpoint = options.get(name, {}).get("checkpoint")
        if name in MODELS and checkpoint:
            check_fits(checkpoint, load_drives(store).context)
    evaluation = dataclasses.replace(evaluation, policy_options=options)
    for note in budget_notes(names, options):
        notes.append(note)
        print(f"note           {note}")
    drive_ids = held_out_drives(store, names, options, notes)
    return EvaluationPlan(names, evaluation, drive_ids, notes)


def attach_shipped(
    store: Path,
    config: LearnedRunConfig,
    options: dict[str, dict[str, Any]],
    names: list[str],
    notes: list[str],
) -> None:
    """Add the shipped checkpoint of every family the store's scenario has one for (and the Kalman
    filter, which needs none), unless this job trains or was given that model itself."""
    context = load_drives(store).context
    scenario = _scenario_name(store)
    shipped = shipped_models(scenario)
    if not shipped:
        return
    for name, folder in shipped.items():
        if (
            name in config.train
            or options.get(name, {}).get("checkpoint")
            or shipped_kind(name) not in MODELS
        ):
            continue
        check_fits(folder, context)  # one line naming the checkpoint when it does not
        options.setdefault(name, {})["checkpoint"] = str(folder)
        if name not in names:
            names.append(name)
        print(f"shipped        {name}: {folder.relative_to(folder.parents[3])}")
    if "kalman" not in names and any(m in context.sensors for m in ("gps", "position")):
        names.append("kalman")  # GPS through a Kalman filter to the geometric beam: nothing to train
    notes.append(
        f"learned policies from the checkpoints shipped for {scenario} (trained on its runs "
        f"{TRAINING_FIRST_RUN} on, none of which is evaluated here); learned.train=[...] retrains them here"
    )


def _scenario_name(store: Path) -> str:
    """The twin scenario a store was generated from ("" for replayed recordings)."""
    with TwinStore(store) as opened:
        return str(opened.attrs.get("scenario_name", ""))


def budget_notes(policies: Sequence[str], options: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One note per learned policy whose checkpoint's training a time budget cut short: its
    numbers depend on how fast and how busy the training machine was."""
    notes = []
    for name in policies:
        checkpoint = options.get(name, {}).get("checkpoint")
        if name not in MODELS or not checkpoint or not cut_by_time_budget(checkpoint):
            continue
        meta = read_config(checkpoint)
        train = meta.get("train") or {}
        notes.append(
            f"{name}: training stopped by its time budget ({train.get('time_budget_s', 0):g} s) after "
            f"{len(meta.get('history') or [])} of {train.get('epochs', '?')} epochs; its numbers depend on "
            "the machine's speed (learned.time_budget_s=null trains for the epochs)"
        )
    return notes


def missing_fields(store: Path, settings: TrainConfig) -> list[str]:
    """The store fields a model's sensor inputs need that the store lacks."""
    _, _, preprocess, inputs = model_inputs(settings)
    fields = set(load_drives(store).context.fields)
    needed = input_fields(inputs, preprocess, fields)
    return [f"{field!r} ({name})" for name, field in needed.items() if field not in fields]


def held_out_drives(
    store: Path, policies: Sequence[str], options: Mapping[str, Mapping[str, Any]], notes: list[str]
) -> list[str] | None:
    """The store's drives none of the policies' checkpoints trained on (None: no checkpoint trained
    on this store). Notes say what was chosen and why."""
    identity = store_identity(store)
    trained: dict[str, set[str]] = {}
    for name in policies:
        checkpoint = options.get(name, {}).get("checkpoint")
        if name not in MODELS or not checkpoint:
            continue
        meta = read_config(checkpoint)
        origin = {k: v for k, v in (meta.get("store") or {}).items() if k != "path"}
        if origin == identity:
            split = meta.get("split") or {}
            trained[name] = set(split.get("train") or [])
    if not trained:
        return None
    ids = [drive.id for drive in load_drives(store).drives]
    seen = set().union(*trained.values())
    held_out = [i for i in ids if i not in seen]
    models = ", ".join(trained)
    if not held_out:
        notes.append(
            f"every drive trained {models}: all policies scored on training drives (optimistic for the "
            "learned ones; more drives or data.val_fraction > 0 give held-out drives)"
        )
        return None
    notes.append(f"all policies scored on the {len(held_out)} of {len(ids)} drives {models} never trained on")
    return held_out

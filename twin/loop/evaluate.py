"""Closed-loop evaluation: every policy over every drive, seed and fault condition of a small grid.

Conditions: `clean` (no injected faults), `scenario` (the scenario's `faults` section, the default
schedule), blockage-only conditions at a few event rates, and dropout-only conditions per sensor
modality the store has at a few probabilities (all other settings of a fault as the scenario
configures it). The same seed gives the same fault draws in every condition (common random numbers),
so differences between conditions are the faults', not the dice's.

A policy that cannot read a modality scores exactly the same with or without that modality's
dropout (independent fault streams), so such runs are computed once and reused. The drives of one
(policy, condition, seed) run in lockstep (twin.loop.lockstep), the policy deciding for all at once;
each such group (or batch of `drives_per_task` drives) is one unit of work of the executor
(twin.executor: here, forked processes or Ray tasks), and the results are gathered in grid order.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import ConfigError
from twin.executor import Executor, LocalExecutor
from twin.loop.drives import Drive, TwinContext, load_drives
from twin.loop.env import BeamSelectionEnv
from twin.loop.faults import schedules
from twin.loop.faults.blockage import uses_path_table
from twin.loop.lockstep import EnvLanes, rollout_batch
from twin.loop.metrics import METRIC_NAMES, Estimate, FrameRecord, aggregate, frame_metrics, unit_sums
from twin.loop.policies import Policy, available_policies, make_policy, policy_entry
from twin.loop.rollout import rollout
from twin.observations import OBSERVED_MODALITIES as SENSOR_MODALITIES
from twin.progress import progress_bar
from twin.scenario.faults import NO_FAULTS, FaultsConfig, describe
from twin.validation import at_least, between, build, each_between, spec

CONDITION_KINDS = ("clean", "scenario")
PLOTTED = ("snr_loss_db", "rate", "effective_rate")  # per-frame arrays kept for the figures


def _each_known(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        bad = [v for v in value if v not in choices]
        return None if not bad else "values among " + ", ".join(repr(c) for c in choices)

    return check


@dataclass(frozen=True)
class EvaluationConfig:
    seeds: tuple[int, ...] = spec((0, 1))  # fault and policy seeds; CIs pool drives x seeds
    conditions: tuple[str, ...] = spec(CONDITION_KINDS, check=_each_known(*CONDITION_KINDS))
    blockage_rates_per_s: tuple[float, ...] = spec((0.1, 0.3, 1.0), check=each_between(0, 100))
    dropout_probabilities: tuple[float, ...] = spec((0.2, 0.5, 1.0), check=each_between(0, 1))
    dropout_modalities: tuple[str, ...] = spec(SENSOR_MODALITIES, check=_each_known(*SENSOR_MODALITIES))
    outage_snr_db: float = spec(0.0, check=between(-50, 50))
    beam_measurement_s: float = spec(1e-4, check=between(0, 1))  # airtime of one beam measurement
    # Per-element SNR of the uplink channel estimate (twin.loop.srs): null the link budget's, inf none.
    srs_snr_db: float | None = spec(None, check=at_least(-50))
    max_drives: int = spec(0, check=at_least(0))  # 0: every drive of the store
    confidence: float = spec(0.95, check=between(0.5, 0.999))
    bootstrap: int = spec(1000, check=between(0, 100_000))
    workers: int = spec(0, check=between(0, 256))  # processes; 0: min(2, CPU cores)
    drives_per_task: int = spec(0, check=at_least(0))  # drives of one unit of work; 0: all of them
    plots: bool = spec(True)
    snapshot: bool = spec(True)  # PyVista 3D view of the scene
    policy_options: dict[str, dict[str, Any]] = spec(factory=dict)  # per policy, validated by its options

    def validate(self, prefix: str) -> None:
        if not self.seeds:
            raise ConfigError(f"{prefix}.seeds = []: expected at least one seed")
        for i, seed in enumerate(self.seeds):
            if seed < 0:
                raise ConfigError(f"{prefix}.seeds[{i}] = {seed}: expected a seed >= 0")
            if seed in self.seeds[:i]:  # the same draws again: counted twice, CIs would narrow falsely
                raise ConfigError(
                    f"{prefix}.seeds[{i}] = {seed}: listed twice; expected distinct seeds (a repeated "
                    "seed replays the same faults and noise, so it is no independent sample)"
                )
        for name in self.policy_options:
            policy_entry(name, key=f"{prefix}.policy_options.{name}")


def evaluation_from(data: Mapping[str, Any] | None, prefix: str = "evaluation") -> EvaluationConfig:
    data = dict(data or {})
    options = data.pop("policy_options", None) or {}
    config = build(EvaluationConfig, data, prefix)
    # Options keep their YAML types (ints stay ints); each policy's dataclass validates them.
    for name, values in options.items():
        policy_entry(name, key=f"{prefix}.policy_options.{name}")
        make_policy(name, values)
    return dataclasses.replace(config, policy_options={k: dict(v) for k, v in options.items()})


def check_policy_names(names: Sequence[str], key: str = "policies") -> list[str]:
    """The names, each a known policy listed once (scored twice, it would count twice everywhere)."""
    for i, name in enumerate(names):
        make_policy(name, key=f"{key}[{i}]")
        if name in names[:i]:
            raise ConfigError(f"{key}[{i}] = {name!r}: listed twice; expected each policy once")
    return list(names)


@dataclass(frozen=True)
class Condition:
    name: str
    kind: str  # clean, scenario, blockage, dropout
    faults: FaultsConfig
    modality: str = ""
    level: float = float("nan")  # blockage events per second or dropout probability


def fault_grid(scenario: FaultsConfig, config: EvaluationConfig, sensors: Sequence[str]) -> list[Condition]:
    grid = []
    if "clean" in config.conditions:
        grid.append(Condition("clean", "clean", NO_FAULTS))
    if "scenario" in config.conditions:
        grid.append(Condition("scenario", "scenario", scenario))
    base_blockage = scenario.blockage
    for rate in config.blockage_rates_per_s:
        blockage = dataclasses.replace(base_blockage, rate_per_s=rate)
        grid.append(Condition(f"blockage {rate:g}/s", "blockage", FaultsConfig(blockage=blockage), "", rate))
    for modality in config.dropout_modalities:
        if modality not in sensors:
            continue
        for p in config.dropout_probabilities:
            configured = dataclasses.asdict(getattr(scenario.dropout, modality))
            faults = NO_FAULTS.with_dropout(modality, **{**configured, "probability": p})
            grid.append(Condition(f"{modality} dropout {p:g}", "dropout", faults, modality, p))
    return grid


@dataclass
class Timeline:
    """One drive of the scenario condition, for the rate-over-time plot."""

    drive: str
    t: np.ndarray
    rate: dict[str, np.ndarray]  # policy → (T,) rate of the served beam
    served: dict[str, np.ndarray]  # policy → (T,) served beam
    oracle_rate: np.ndarray
    oracle: np.ndarray
    physical_blocked: np.ndarray
    injected: np.ndarray
    dropouts: dict[str, np.ndarray]  # modality → (T,) active
    events_s: list[tuple[float, float]]


@dataclass
class Evaluation:
    context: TwinContext
    policies: list[str]
    conditions: list[Condition]
    seeds: tuple[int, ...]
    drives: list[str]
    config: EvaluationConfig
    scenario_faults: FaultsConfig
    rows: list[dict[str, Any]] = field(default_factory=list)
    frames: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)  # pooled per-frame
    timeline: Timeline | None = None
    notes: list[str] = field(default_factory=list)
    decisions_per_s: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0

    def estimate(self, policy: str, condition: str) -> dict[str, Estimate]:
        for row in self.rows:
            if row["policy"] == policy and row["condition"] == condition:
                return {m: Estimate(**row[m]) for m in METRIC_NAMES}
        raise KeyError((policy, condition))


@dataclass
class _Runner:
    """A policy and its environments (one per lockstep lane), observing only what the policy reads."""

    policy: Policy
    env: BeamSelectionEnv
    reads: frozenset[str]
    act_seconds: float = 0.0
    decisions: int = 0
    lanes: EnvLanes = field(init=False)

    def __post_init__(self) -> None:
        self.lanes = EnvLanes(self.env)

    def timed(self, latencies: list[float]) -> None:
        self.act_seconds += sum(latencies)
        self.decisions += len(latencies)


def replay_drive(runner: _Runner, drive: Drive, faults: FaultsConfig, seed: int) -> FrameRecord:
    """Run one policy closed-loop over one drive (the reference loop, twin.loop.rollout), timed."""
    latencies: list[float] = []
    record = rollout(runner.env, runner.policy, drive, faults, seed, latencies)
    runner.timed(latencies)
    return record


def replay_drives(
    runner: _Runner, drives: Sequence[Drive], faults: FaultsConfig, seed: int
) -> list[FrameRecord]:
    """Run one policy closed-loop over many drives in lockstep (twin.loop.lockstep), timed."""
    latencies: list[float] = []
    records = rollout_batch(runner.lanes, runner.policy, drives, faults, seed, latencies)
    runner.timed(latencies)
    return records


def evaluate(
    store: str | Path,
    scenario_faults: FaultsConfig,
    config: EvaluationConfig,
    policy_names: Sequence[str],
    progress: bool = True,
    drive_ids: Sequence[str] | None = None,
    notes: Sequence[str] = (),
    executor: Executor | None = None,
) -> Evaluation:
    """Every policy over the store's drives (or only `drive_ids`, e.g. those a learned policy never
    trained on) under every condition and seed; `notes` go into the report. The units of work run
    on `executor` (default: local, `config.workers` forked processes); results do not depend on it."""
    start = time.perf_counter()
    replay = load_drives(store)
    context = replay.context
    drives = _chosen(replay.drives, drive_ids, context.path)[: config.max_drives or None]
    notes = [*notes, f"store {context.path}: {len(drives)} drives; truth from {context.truth} RSRP"]
    notes += _blockage_model_notes(drives, context)
    runners = _runners(context, store, config, policy_names, notes)
    grid = fault_grid(scenario_faults, config, context.sensors)
    result = Evaluation(
        context=context,
        policies=[r.policy.name for r in runners],
        conditions=grid,
        seeds=config.seeds,
        drives=[d.id for d in drives],
        config=config,
        scenario_faults=scenario_faults,
        notes=notes,
    )
    # Work out the distinct replays first: (policy, faults it can notice, seed, drive); each unit of
    # work replays one policy's new replays of a (condition, seed) over a batch of drives in lockstep.
    plan: dict[tuple[Any, ...], tuple[int, FaultsConfig, int, int]] = {}
    units: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    work: list[ReplayUnit] = []
    fault_ids: dict[FaultsConfig, int] = {}  # hashing a nested frozen dataclass is slow: do it once
    batch = config.drives_per_task or len(drives)
    for condition in grid:
        noticed = [fault_ids.setdefault(condition.faults.only(r.reads), len(fault_ids)) for r in runners]
        for seed in config.seeds:
            for i, runner in enumerate(runners):
                new = []
                for drive in drives:
                    key = (i, noticed[i], seed, drive.index)
                    if key not in plan:
                        plan[key] = (i, condition.faults, seed, drive.index)
                        new.append(key)
                    units.setdefault((runner.policy.name, condition.name), []).append(key)
                for first in range(0, len(new), batch):
                    keys = tuple(new[first : first + batch])
                    label = f"{runner.policy.name} under {condition.name}, seed {seed}, drives {first}.."
                    work.append(
                        ReplayUnit(i, condition.faults, seed, keys, f"{label}{first + len(keys) - 1}")
                    )
    done: dict[tuple[Any, ...], tuple[dict[str, float], dict[str, np.ndarray]]] = {}
    setup = ReplaySetup(
        uuid.uuid4().hex, str(context.path), config, tuple(policy_names), tuple(d.id for d in drives)
    )
    executor = executor or LocalExecutor()
    workers = config.workers or min(2, os.cpu_count() or 1)
    _STATE.clear()
    _STATE[setup.token] = (runners, {d.index: d for d in drives}, config)  # forked workers inherit it
    desc = "closed loop" + ("" if executor.kind == "local" else f" on {executor.kind}")
    try:
        with progress_bar(total=len(plan), unit="replay", desc=desc, enabled=progress) as bar:
            jobs = [(setup, unit) for unit in work]
            labels = [unit.label for unit in work]
            processes = workers if len(plan) >= 64 else 1
            for finished, (index, (metrics, (seconds, decisions))) in enumerate(
                executor.map(replay_unit, jobs, labels, processes=processes, start_method="fork"), 1
            ):
                done.update(metrics)
                runners[work[index].runner].act_seconds += seconds
                runners[work[index].runner].decisions += decisions
                if executor.kind != "local":
                    bar.set_postfix_str(f"{finished}/{len(work)} tasks", refresh=False)
                bar.update(len(work[index].keys))
    finally:
        _STATE.clear()
    result.steps = sum(next(d for d in drives if d.index == k[3]).num_frames for k in plan)
    for condition in grid:
        for runner in runners:
            keys = units[(runner.policy.name, condition.name)]
            pooled = [done[k][0] for k in keys]
            estimates = aggregate(pooled, config.confidence, config.bootstrap, seed=0)
            result.rows.append(_row(runner.policy.name, condition, pooled, estimates, len(drives), config))
            result.frames[(runner.policy.name, condition.name)] = {
                m: np.concatenate([done[k][1][m] for k in keys]) for m in PLOTTED
            }
    result.decisions_per_s = {
        r.policy.name: r.decisions / r.act_seconds if r.act_seconds else float("nan") for r in runners
    }
    result.timeline = _timeline(runners, drives, scenario_faults, config)
    result.seconds = time.perf_counter() - start
    return result


def _blockage_model_notes(drives: Sequence[Drive], context: TwinContext) -> list[str]:
    """Which model injected blockage runs on (the report says so whenever it is not the path table)."""
    cut = sum(uses_path_table(d, context) for d in drives)
    fallback = "injected blockage attenuates the measured RSRP of beams aimed at the UE"
    if cut == len(drives):
        return []
    if cut:
        return [f"path table on {cut} of {len(drives)} drives; on the others {fallback}"]
    if any(d.paths is not None for d in drives):
        return [f"path table unused (the store lacks the base-station pose or codebook weights): {fallback}"]
    return [f"no path table: {fallback}"]


def _chosen(drives: list[Drive], ids: Sequence[str] | None, path: str | Path) -> list[Drive]:
    if ids is None:
        return drives
    known = {d.id: d for d in drives}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ConfigError(f"store {path}: no drives {unknown[:5]}; it has {', '.join(list(known)[:5])}, ...")
    if not ids:
        raise ConfigError(f"store {path}: no drives chosen for the evaluation")
    return [known[i] for i in dict.fromkeys(ids)]


@dataclass(frozen=True)
class ReplaySetup:
    """What a worker needs to rebuild an evaluation's runners and drives (a Ray task, maybe on another
    host: the store's path must be readable there too)."""

    token: str  # one evaluation: a worker builds its state once per token
    store: str
    config: EvaluationConfig
    policies: tuple[str, ...]
    drive_ids: tuple[str, ...]


@dataclass(frozen=True)
class ReplayUnit:
    """One unit of work: a policy's replays of a batch of drives under one condition's faults and seed."""

    runner: int
    faults: FaultsConfig
    seed: int
    keys: tuple[tuple[Any, ...], ...]  # (runner, faults noticed, seed, drive index) of each replay
    label: str  # names the unit in a failure report


# This process's evaluation state, by setup token: the evaluating process puts its own here (forked
# workers inherit it); any other worker (spawned, a Ray task) builds it from the setup once.
_STATE: dict[str, tuple[list[_Runner], dict[int, Drive], EvaluationConfig]] = {}


def _state(setup: ReplaySetup) -> tuple[list[_Runner], dict[int, Drive], EvaluationConfig]:
    if setup.token not in _STATE:
        replay = load_drives(setup.store)
        drives = _chosen(replay.drives, setup.drive_ids, setup.store)
        runners = _runners(replay.context, setup.store, setup.config, setup.policies, [])
        _STATE.clear()  # one evaluation at a time: let an earlier one's policies go
        _STATE[setup.token] = (runners, {d.index: d for d in drives}, setup.config)
    return _STATE[setup.token]


def replay_unit(
    job: tuple[ReplaySetup, ReplayUnit],
) -> tuple[dict[tuple[Any, ...], tuple[dict[str, float], dict[str, np.ndarray]]], tuple[float, int]]:
    """Replay one unit: per replay key its metric sums and plotted per-frame arrays, and the policy's
    decision time and count (the caller adds them to its own runner)."""
    setup, unit = job
    runners, by_index, config = _state(setup)
    runner = runners[unit.runner]
    seconds, decisions = runner.act_seconds, runner.decisions
    records = replay_drives(runner, [by_index[key[3]] for key in unit.keys], unit.faults, unit.seed)
    metrics = {}
    for key, record in zip(unit.keys, records):
        frames = frame_metrics(record, config.outage_snr_db)
        metrics[key] = (unit_sums(frames), {m: frames[m] for m in PLOTTED})
    timing = (runner.act_seconds - seconds, runner.decisions - decisions)
    runner.act_seconds, runner.decisions = seconds, decisions
    return metrics, timing


def _runners(
    context: TwinContext, store: str | Path, config: EvaluationConfig, names: Sequence[str], notes: list[str]
) -> list[_Runner]:
    if not names:
        raise ConfigError(
            "policies = []: expected at least one policy; available: " + ", ".join(available_policies())
        )
    check_policy_names(names)
    runners = []
    for i, name in enumerate(names):
        policy = make_policy(name, config.policy_options.get(name), key=f"policies[{i}]")
        reads = policy.reads(context.sensors)
        try:
            policy.reset(context, np.random.default_rng(0))
        except ConfigError as exc:
            notes.append(f"{exc}: policy {name} skipped")
            continue
        if name == "gps" and not reads:
            notes.append("policy gps skipped: the store has neither gps nor ue_pos")
            continue
        if name == "gps" and "gps" not in reads:
            notes.append("policy gps: the store has no GPS; it uses the stored UE position (ue_pos) instead")
        env = BeamSelectionEnv(
            store,
            modalities=sorted(reads),
            beam_measurement_s=config.beam_measurement_s,
            srs_snr_db=config.srs_snr_db,
        )
        runners.append(_Runner(policy, env, reads))
    return runners


def _row(
    policy: str,
    condition: Condition,
    pooled: list[dict[str, float]],
    estimates: dict[str, Estimate],
    drives: int,
    config: EvaluationConfig,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "policy": policy,
        "condition": condition.name,
        "kind": condition.kind,
        "modality": condition.modality,
        "level": None if np.isnan(condition.level) else condition.level,
        "faults": describe(condition.faults),
        "drives": drives,
        "seeds": len(config.seeds),
        "frames": int(sum(u["frames"] for u in pooled)),
    }
    for name, estimate in estimates.items():
        row[name] = {"mean": estimate.mean, "low": estimate.low, "high": estimate.high}
    return row


def _timeline(
    runners: list[_Runner], drives: list[Drive], faults: FaultsConfig, config: EvaluationConfig
) -> Timeline:
    """The first drive with injected blockage under the scenario's faults (else the first drive)."""
    seed = config.seeds[0]
    context = runners[0].env.context
    sensors = tuple(m for m in SENSOR_MODALITIES if m in context.sensors)
    chosen, injected = drives[0], None
    for drive in drives:
        injected = schedules(faults, drive.t, sensors, context.frame_rate_hz, seed, drive.index)
        if injected.blockage.active.any():
            chosen = drive
            break
    injected = schedules(faults, chosen.t, sensors, context.frame_rate_hz, seed, chosen.index)
    rates, served = {}, {}
    oracle_rate = oracle = None
    for runner in runners:
        record = replay_drive(runner, chosen, faults, seed)
        rates[runner.policy.name] = frame_metrics(record, config.outage_snr_db)["rate"]
        served[runner.policy.name] = record.ranked[:, 0].copy()
        oracle_rate = frame_metrics(record, config.outage_snr_db)["oracle_rate"]
        oracle = record.oracle
    return Timeline(
        drive=chosen.id,
        t=chosen.t,
        rate=rates,
        served=served,
        oracle_rate=oracle_rate,
        oracle=oracle,
        physical_blocked=chosen.blocked,
        injected=injected.blockage.active,
        dropouts={m: s.active for m, s in injected.dropouts.items()},
        events_s=injected.blockage.as_list(),
    )

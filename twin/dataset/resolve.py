"""The store an entry point works on, resolved one way for all of them (twin.run, twin.generate,
twin.compare, learners.train): `store=<file>`, else `replay=<kind>` (recorded data converted once and
cached), else the scenario's twin data (generated when missing, resumed when interrupted)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twin.dataset.generation import GenerationStats, generate
from twin.errors import ConfigError
from twin.executor import Executor, executor_from
from twin.replay import replay_from_config
from twin.replay.config import ReplayConfig, replay_config_from
from twin.scenario.config import ScenarioConfig, scenario_from_dict


@dataclass(frozen=True)
class ResolvedStore:
    path: Path
    label: str  # for people: the scenario's name, or "deepsense scenario17" for a replay
    slug: str  # for folder names: the scenario's name, "deepsense-scenario17", or the file's stem
    scenario: ScenarioConfig  # the composed scenario (its faults also apply to a replay)
    replay: ReplayConfig | None = None
    stats: GenerationStats | None = None  # what was traced now (None: nothing)


def scenario_of(cfg: DictConfig) -> ScenarioConfig:
    """The validated scenario of a composed Hydra config (errors name keys as `scenario.<key>`)."""
    return scenario_from_dict(OmegaConf.to_container(cfg.scenario, resolve=True), source="scenario")


def replay_of(cfg: DictConfig) -> ReplayConfig | None:
    """The `replay` group's options when recorded data is replayed instead of the twin's."""
    if cfg.get("replay") is None:
        return None
    return replay_config_from(OmegaConf.to_container(cfg.replay, resolve=True), prefix="replay")


def resolve_store(
    cfg: DictConfig | Any,
    progress: bool = True,
    quiet: bool = False,
    scenario: ScenarioConfig | None = None,
    executor: Executor | None = None,
) -> ResolvedStore:
    """Find, convert or generate the store `cfg` asks for; prints what was traced unless `quiet`.
    `scenario` replaces the composed one (e.g. a variant without sensor rendering); generation runs
    on `executor` (default: the one `cfg` names, `executor` and `ray` keys, started only if needed)."""
    scenario = scenario or scenario_of(cfg)
    store = cfg.get("store")
    if store:
        path = Path(store)
        if not path.is_file():
            raise ConfigError(f"store = {str(store)!r}: file not found")
        return ResolvedStore(path, path.stem, path.stem, scenario)
    replay = replay_of(cfg)
    if replay is not None:
        path = replay_from_config(replay, cfg.cache_dir)
        source = replay.scenario or Path(replay.path).name
        return ResolvedStore(path, f"{replay.kind} {source}", f"{replay.kind}-{source}", scenario, replay)
    workers = int(cfg.get("trace_workers") or 0)
    if executor is None:
        with executor_from(cfg) as own:
            path, stats = generate(scenario, cfg.cache_dir, progress=progress, workers=workers, executor=own)
    else:
        path, stats = generate(scenario, cfg.cache_dir, progress=progress, workers=workers, executor=executor)
    if stats.frames and not quiet:
        print(stats.describe())
    return ResolvedStore(path, scenario.name, scenario.name, scenario, stats=stats if stats.frames else None)

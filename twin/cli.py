"""Hydra wiring shared by the entry points: the `scenario` config group and one-line errors."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from twin.errors import ConfigError, TwinError
from twin.scenario.config import scenario_from_dict, scenario_to_dict
from twin.validation import to_dict

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def available_scenarios(directory: Path = SCENARIO_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def register_scenarios(directory: Path = SCENARIO_DIR) -> None:
    """Make every scenarios/<name>.yaml selectable as `scenario=<name>`.

    Valid files are registered with every default filled in, so any key can be overridden on the
    command line; an invalid file is registered as written and reports its error when selected.
    """
    store = ConfigStore.instance()
    for path in sorted(directory.glob("*.yaml")):
        try:
            node = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        with contextlib.suppress(ConfigError):
            node = scenario_to_dict(scenario_from_dict(node, source=path.stem))
        store.store(group="scenario", name=path.stem, node=node)


def register_replays() -> None:
    """Make `replay=deepsense|deepverse` selectable, every ReplayConfig option overridable."""
    from twin.replay.config import KINDS, ReplayConfig

    store = ConfigStore.instance()
    for kind in KINDS:
        store.store(group="replay", name=kind, node=to_dict(ReplayConfig(kind=kind)))


def _check_scenario_argument(argv: list[str]) -> None:
    """Hydra's own message for an unknown group option spans a dozen lines; give one."""
    names = available_scenarios()
    for arg in argv:
        if arg.startswith("scenario="):
            value = arg.split("=", 1)[1]
            for name in value.split(","):  # multirun: scenario=a,b
                if name not in names:
                    raise ConfigError(f"scenario={name}: unknown scenario; available: {', '.join(names)}")


def entry_point(task: Callable[[DictConfig], Any], config_name: str = "config") -> Callable[[], Any]:
    """Wrap a task as a Hydra app (its config: `conf/<config_name>.yaml` beside the task's module)
    whose user errors print one line and exit with status 2."""
    import hydra

    hydra_task = hydra.main(version_base="1.3", config_path="conf", config_name=config_name)(task)

    @functools.wraps(task)
    def main() -> Any:
        try:
            _check_scenario_argument(sys.argv[1:])
            register_scenarios()
            register_replays()
            return hydra_task()
        except TwinError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return main


def run_task(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Inside Hydra: turn TwinErrors into one line and exit status 2 (Hydra would print a traceback)."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except TwinError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return wrapped

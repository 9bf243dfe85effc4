"""Hydra wiring shared by the entry points: the `scenario` config group and one-line errors.

Before Hydra runs (and creates a run folder), the command line is composed once with Hydra's compose
API, so every mistake Hydra would report in several lines (an unknown key or group option, a
malformed override) or silently accept (`+unknown=...`) gets one line and exit status 2, and the
scenario is validated before its name becomes part of a folder path.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from twin.errors import ConfigError, TwinError
from twin.executor import executor_config
from twin.scenario.config import read_scenario_file, scenario_from_dict, scenario_to_dict
from twin.validation import to_dict

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"

# Mappings whose keys are open-ended (each policy or model validates its own options): `key=value`
# there adds the key, as `++key=value` does, instead of failing Hydra's struct check.
OPEN_SECTIONS = ("evaluation.policy_options.", "learned.options.", "learned.settings.")

# Hydra flags that print instead of running, or that move the config: the command is left to Hydra.
_HYDRA_ONLY_FLAGS = (
    "-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion",
    "--version", "-p", "--package", "--resolve", "-cn", "--config-name", "-cp", "--config-path",
    "-cd", "--config-dir",
)  # fmt: skip
_MULTIRUN_FLAGS = ("-m", "--multirun")
INTERRUPTED_EXIT = 130  # the shell's status for a command stopped by Ctrl-C

_BROKEN_SCENARIOS: dict[str, str] = {}  # scenario name → why its file cannot be read


def available_scenarios(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or SCENARIO_DIR).glob("*.yaml"))


def register_scenarios(directory: Path | None = None) -> None:
    """Make every scenarios/<name>.yaml selectable as `scenario=<name>`.

    Valid files are registered with every default filled in, so any key can be overridden on the
    command line; an invalid file is registered as written and reports its error when selected; a
    file that is not a YAML mapping reports its error only when selected, so it breaks no other.
    """
    store = ConfigStore.instance()
    for path in sorted((directory or SCENARIO_DIR).glob("*.yaml")):
        _BROKEN_SCENARIOS.pop(path.stem, None)
        try:
            node = read_scenario_file(path)
        except ConfigError as exc:
            _BROKEN_SCENARIOS[path.stem] = str(exc)
            store.store(group="scenario", name=path.stem, node={})
            continue
        with contextlib.suppress(ConfigError):
            node = scenario_to_dict(scenario_from_dict(node, source=path.stem))
        store.store(group="scenario", name=path.stem, node=node)


def register_replays() -> None:
    """Make `replay=deepsense|deepverse` selectable, every ReplayConfig option overridable."""
    from twin.replay.config import KINDS, ReplayConfig

    store = ConfigStore.instance()
    for kind in KINDS:
        store.store(group="replay", name=kind, node=to_dict(ReplayConfig(kind=kind)))


def _check_scenario_argument(argv: list[str], directory: Path | None = None) -> None:
    """Hydra's own message for an unknown group option spans a dozen lines; give one."""
    names = available_scenarios(directory)
    for arg in argv:
        if arg.startswith("scenario="):
            value = arg.split("=", 1)[1]
            for name in value.split(","):  # multirun: scenario=a,b
                if name not in names:
                    raise ConfigError(f"scenario={name}: unknown scenario; available: {', '.join(names)}")


def open_sections(argv: list[str]) -> list[str]:
    """`evaluation.policy_options.<policy>.<option>=v` (and the other OPEN_SECTIONS) as `++...`."""
    return [f"++{arg}" if arg.startswith(OPEN_SECTIONS) and "=" in arg else arg for arg in argv]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _overrides(argv: list[str]) -> Iterator[str]:
    """The overrides of a command line, each sweep (`a=1,2`) as its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in argv:
        if arg in _MULTIRUN_FLAGS:
            continue
        try:
            (override,) = parser.parse_overrides([arg])
        except OverrideParseException as exc:
            raise ConfigError(f"{arg}: not a valid override ({_first_line(exc)})") from None
        if override.is_sweep_override():
            prefix = arg[: len(arg) - len(arg.lstrip("+~"))]
            value = next(iter(override.sweep_string_iterator()), "")
            yield f"{prefix}{override.get_key_element().lstrip('+~')}={value}"
        else:
            yield arg


def _allowed_top_level(config_file: Path) -> list[str]:
    """The keys and config groups the primary config defines, with those of the configs of the same
    folder it extends (`defaults: [config, _self_]`); nothing else may be added."""
    data = yaml.safe_load(config_file.read_text()) or {}
    defaults = data.get("defaults", [])
    groups = [next(iter(d)) for d in defaults if isinstance(d, dict)]
    extended = [k for d in defaults if isinstance(d, str) and d != "_self_"
                for k in _allowed_top_level(config_file.with_name(f"{d}.yaml"))]  # fmt: skip
    return list(dict.fromkeys([*extended, *groups, *(k for k in data if k not in ("defaults", "hydra"))]))


def _allowed_below(config_dir: Path, config_name: str, key: str, overrides: list[str]) -> str:
    """The keys next to `key` in the composed config without the override that named it."""
    from hydra import compose, initialize_config_dir

    parent = key.rpartition(".")[0]
    kept = [o for o in overrides if not o.lstrip("+~").startswith(f"{key}=")]
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=kept)
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except Exception:  # only for the message: the original error is what gets reported
        return ""
    return ", ".join(str(k) for k in node) if isinstance(node, DictConfig) else ""


def compose_command_line(argv: list[str], config_dir: Path, config_name: str) -> DictConfig:
    """The config Hydra composes from `argv` (sweeps at their first value), hydra node included; a
    mistake Hydra would report in several lines raises one ConfigError line instead."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException

    overrides = list(_overrides(argv))
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    except MissingConfigException as exc:
        group, _, option = (exc.missing_cfg_file or "").rpartition("/")
        if group and exc.options is not None:
            available = ", ".join(sorted(exc.options))
            raise ConfigError(f"{group}={option}: unknown option; available: {available}") from None
        raise ConfigError(_first_line(exc)) from None
    except ConfigCompositionException as exc:
        missing = re.match(r"Could not override '([^']+)'", str(exc))
        if missing:
            key = missing.group(1)
            if "." in key:
                allowed = _allowed_below(config_dir, config_name, key, overrides)
            else:
                allowed = ", ".join(_allowed_top_level(config_dir / f"{config_name}.yaml"))
            raise ConfigError(
                f"{key}: unknown key" + (f"; allowed keys: {allowed}" if allowed else "")
            ) from None
        raise ConfigError(_first_line(exc)) from None
    except HydraException as exc:
        raise ConfigError(_first_line(exc)) from None
    return cfg


def check_command_line(argv: list[str], config_dir: Path, config_name: str) -> None:
    """Compose `argv` as Hydra will and raise one ConfigError line for anything wrong with it: what
    Hydra refuses, top-level keys the config does not define, an unreadable or invalid scenario."""
    if any(arg in _HYDRA_ONLY_FLAGS or arg.startswith("--config") for arg in argv):
        return
    cfg = compose_command_line(argv, config_dir, config_name)
    allowed = _allowed_top_level(config_dir / f"{config_name}.yaml")
    for key in cfg:
        if key != "hydra" and key not in allowed:
            raise ConfigError(f"{key}: unknown key; allowed keys: {', '.join(allowed)}")
    choice = OmegaConf.select(cfg, "hydra.runtime.choices.scenario")
    if choice in _BROKEN_SCENARIOS:
        raise ConfigError(_BROKEN_SCENARIOS[choice])
    if "executor" in cfg or "ray" in cfg:
        executor_config(OmegaConf.to_container(OmegaConf.masked_copy(cfg, ["executor", "ray"]), resolve=True))
    if "scenario" in cfg:  # its name becomes folder names: check it before Hydra makes the run folder
        scenario_from_dict(OmegaConf.to_container(cfg.scenario, resolve=True), source="scenario")


def _exit_with(message: str, status: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


INTERRUPTED = "interrupted; whole results written so far are kept (rerun the command: generation resumes)"


def entry_point(task: Callable[[DictConfig], Any], config_name: str = "config") -> Callable[[], Any]:
    """Wrap a task as a Hydra app (its config: `conf/<config_name>.yaml` beside the task's module)
    whose user errors print one line and exit with status 2."""
    import hydra

    hydra_task = hydra.main(version_base="1.3", config_path="conf", config_name=config_name)(task)
    config_dir = Path(inspect.getfile(inspect.unwrap(task))).resolve().parent / "conf"

    @functools.wraps(task)
    def main() -> Any:
        try:
            argv = open_sections(sys.argv[1:])
            _check_scenario_argument(argv)
            register_scenarios()
            register_replays()
            check_command_line(argv, config_dir, config_name)
            sys.argv = [sys.argv[0], *argv]
            return hydra_task()
        except TwinError as exc:
            _exit_with(str(exc), 2)
        except KeyboardInterrupt:
            _exit_with(INTERRUPTED, INTERRUPTED_EXIT)

    return main


def run_task(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Inside Hydra: turn TwinErrors into one line and exit status 2 (Hydra would print a traceback),
    and Ctrl-C into one line and status 130."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except TwinError as exc:
            _exit_with(str(exc), 2)
        except KeyboardInterrupt:
            _exit_with(INTERRUPTED, INTERRUPTED_EXIT)

    return wrapped

"""Plug-ins: packages that add to the twin without the twin importing them.

A package declares entry points in its `pyproject.toml`; the twin loads them on first need:

    [project.entry-points."twin.policies"]
    mine = "mypkg.policy:MinePolicy"        # a Policy subclass, selectable as `policies=[...,mine]`
    several = "mypkg.policy:register"       # or a callable that calls twin.loop.policies.register_policy

    [project.entry-points."twin.run"]
    learned = "mypkg.steps:LearnedStep"     # a main-job step, configured by the top-level `learned:`

The learners of this project plug in exactly this way (see this project's pyproject.toml).
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import Any

from twin.errors import ConfigError

POLICY_GROUP = "twin.policies"
RUN_STEP_GROUP = "twin.run"


@cache
def load(group: str) -> tuple[tuple[str, Any], ...]:
    """(name, loaded object) of every entry point in `group`, sorted by name; loaded once per process.
    A plug-in that fails to import stops with one line naming it."""
    loaded = []
    for entry in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        try:
            loaded.append((entry.name, entry.load()))
        except Exception as exc:  # a broken third-party package: name it, do not print its traceback
            raise ConfigError(
                f"plug-in {entry.name!r} ({entry.value}, entry point group {group!r}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return tuple(loaded)

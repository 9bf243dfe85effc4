"""The policy registry: names → policy factories with their options dataclass.

The registry imports none of the policies it holds: built-in ones register where they are defined
(twin.loop.policies.classical), plug-ins through the `twin.policies` entry-point group (twin.plugins),
loaded the first time a name is not found or the available names are listed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twin import plugins
from twin.errors import ConfigError
from twin.loop.policies.base import Policy
from twin.validation import build


@dataclass(frozen=True)
class _NoOptions:
    pass


@dataclass(frozen=True)
class PolicyEntry:
    factory: Callable[..., Policy]
    options: type = _NoOptions


POLICIES: dict[str, PolicyEntry] = {}  # filled where policies are defined, and by plug-ins


def register_policy(name: str, factory: Callable[..., Policy], options: type | None = None) -> None:
    """Make a policy selectable by name; `options` is a dataclass of its settings (validated)."""
    POLICIES[name] = PolicyEntry(factory, options or _NoOptions)


def load_plugins() -> None:
    """Register the policies of every `twin.policies` entry point (once; idempotent)."""
    for name, plugin in plugins.load(plugins.POLICY_GROUP):
        if isinstance(plugin, type) and issubclass(plugin, Policy):
            if name not in POLICIES:
                register_policy(name, plugin, getattr(plugin, "Options", None))
        elif callable(plugin):
            plugin()
        else:
            raise ConfigError(
                f"plug-in {name!r} (entry point group {plugins.POLICY_GROUP!r}): expected a Policy subclass "
                f"or a callable that registers policies, got {type(plugin).__name__}"
            )


def available_policies() -> list[str]:
    """Every selectable policy name, plug-ins included."""
    load_plugins()
    return list(POLICIES)


def policy_entry(name: str, key: str = "policies") -> PolicyEntry:
    """The registered policy `name` (plug-ins are looked up when it is not built in); errors name
    `key`, followed by the value unless the key already ends with it (`policy_options.<name>`)."""
    if name not in POLICIES:
        load_plugins()
    if name not in POLICIES:
        where = key if key.endswith(f".{name}") else f"{key} = {name!r}"
        raise ConfigError(f"{where}: unknown policy; available: {', '.join(POLICIES)}")
    return POLICIES[name]


def make_policy(name: str, options: Mapping[str, Any] | None = None, key: str = "policies") -> Policy:
    """Build a policy by name; unknown names and bad options raise a one-line ConfigError."""
    entry = policy_entry(name, key)
    settings = build(entry.options, dict(options or {}), f"evaluation.policy_options.{name}")
    if entry.options is _NoOptions:
        return entry.factory()
    return entry.factory(settings)

"""Beam-selection policies: the interface (`base`), the registry (`registry`, with plug-ins) and the
classical policies (`classical`, registered on import of this package)."""

from twin.loop.policies import classical
from twin.loop.policies.base import Decision, Link, Memoryless, Observation, Policy, mask_of, ranked
from twin.loop.policies.registry import (
    POLICIES,
    PolicyEntry,
    available_policies,
    load_plugins,
    make_policy,
    policy_entry,
    register_policy,
)

__all__ = [
    "POLICIES",
    "Decision",
    "Link",
    "Memoryless",
    "Observation",
    "Policy",
    "PolicyEntry",
    "available_policies",
    "classical",
    "load_plugins",
    "make_policy",
    "mask_of",
    "policy_entry",
    "ranked",
    "register_policy",
]

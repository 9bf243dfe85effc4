"""What the main job's closed-loop evaluation runs, and the steps plug-ins add before it.

A run step is configured by the top-level config section named like its entry point in the
`twin.run` group (twin.plugins): the learners' `learned` step trains or reuses predictors, adds them
to the policies and restricts the drives to those they never trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from twin.loop.evaluate import EvaluationConfig


@dataclass
class EvaluationPlan:
    policies: list[str]
    evaluation: EvaluationConfig  # policy options included (e.g. the checkpoints a step attached)
    drive_ids: list[str] | None = None  # None: every drive of the store
    notes: list[str] = field(default_factory=list)  # shown in the report


class RunStep(Protocol):
    def prepare(self, store: Path, plan: EvaluationPlan, progress: bool) -> EvaluationPlan:
        """The plan the evaluation runs after this step (e.g. with trained policies added)."""
        ...


# A step factory validates its config section (before any tracing) and returns the step:
# factory(section, key) where `key` names the section in error messages.
RunStepFactory = Callable[[Mapping[str, Any] | None, str], RunStep]

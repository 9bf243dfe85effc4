"""The main job: `python -m twin.run scenario=urban_street`.

Generates (or loads the cached) twin dataset — or, with `replay=deepsense replay.path=...`, converts
recorded data into the same schema — and summarises it; runs the steps plug-ins add (the learners'
`learned` step trains or reuses predictors and has every policy scored on the drives they never
trained on); then runs every configured policy closed-loop under the scenario's faults and a small
grid of fault levels, and writes the report (results.csv, results.json, summary.md, figures, 3D
snapshot) into the run's folder. The faults of a replay come from the selected scenario. With
`executor=ray` the tracing and the closed loop run as Ray tasks (twin.executor); the merge of the
store and the report are made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from twin import plugins
from twin.cli import entry_point, run_task
from twin.dataset.resolve import resolve_store
from twin.errors import ConfigError
from twin.executor import executor_from
from twin.loop.evaluate import check_policy_names, evaluate, evaluation_from
from twin.loop.plan import EvaluationPlan, RunStep
from twin.report import format_table, write_report
from twin.report.summary import plot_summary, summarize
from twin.store import TwinStore


def policy_names(cfg: DictConfig) -> list[str]:
    """The `policies` list, each name checked (before any tracing is spent)."""
    value = cfg.get("policies", [])
    names = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    if isinstance(names, str):  # policies=genie: one policy
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"policies = {names!r}: expected a list of policy names")
    return check_policy_names(names)


def run_steps(cfg: DictConfig) -> list[RunStep]:
    """The plug-ins' steps, each validated against its config section (before any tracing)."""
    steps = []
    for name, factory in plugins.load(plugins.RUN_STEP_GROUP):
        section: Mapping[str, Any] | None = (
            OmegaConf.to_container(cfg[name], resolve=True) if name in cfg else None
        )
        steps.append(factory(section, name))
    return steps


@run_task
def task(cfg: DictConfig) -> None:
    policies = policy_names(cfg)
    evaluation = evaluation_from(
        OmegaConf.to_container(cfg.evaluation, resolve=True) if "evaluation" in cfg else {}
    )
    with executor_from(cfg) as executor:  # one Ray session for the tracing and the closed loop
        steps = run_steps(cfg)
        resolved = resolve_store(cfg, progress=cfg.progress, executor=executor)
        output_dir = Path(HydraConfig.get().runtime.output_dir)
        with TwinStore(resolved.path) as store:
            summary = summarize(store)
            figure = plot_summary(store, summary, output_dir / "dataset_summary.png")
        print(summary.format())
        print(f"plot           {figure}")
        if not policies:
            return
        plan = EvaluationPlan(policies, evaluation)
        for step in steps:
            plan = step.prepare(resolved.path, plan, cfg.progress)
        result = evaluate(
            resolved.path,
            resolved.scenario.faults,
            plan.evaluation,
            plan.policies,
            progress=cfg.progress,
            drive_ids=plan.drive_ids,
            notes=plan.notes,
            executor=executor,
        )
    files = write_report(result, output_dir, resolved.label)
    print(format_table(result))
    print(f"report         {files['summary']} ({result.steps:,} steps in {result.seconds:.1f} s)")


main = entry_point(task)

if __name__ == "__main__":
    main()

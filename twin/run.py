"""The main job: `python -m twin.run scenario=urban_street`.

Generates (or loads the cached) twin dataset — or, with `replay=deepsense replay.path=...`, converts
recorded data into the same schema — and summarises it, trains the learned models of `learned.train`
on it within a time budget (learners.twin_run; checkpoints are reused), then runs every configured
policy closed-loop under the scenario's faults and a small grid of fault levels, and writes the report
(results.csv, results.json, summary.md, figures, 3D snapshot) into the run's folder. When a learned
policy trained on this store, every policy is scored on the drives it never trained on. The faults of
a replay come from the selected scenario (default urban_street).
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from learners.policy import register_learned_policies
from learners.twin_run import LearnedRunConfig, learned_run_config, prepare_learned
from twin.cli import entry_point, run_task, scenario_of
from twin.dataset.generation import generate
from twin.errors import ConfigError
from twin.loop.evaluate import evaluate, evaluation_from
from twin.loop.policies import make_policy
from twin.replay import replay_from_config
from twin.replay.config import ReplayConfig, replay_config_from
from twin.report import format_table, write_report
from twin.report.summary import plot_summary, summarize
from twin.store import TwinStore


def policy_names(cfg: DictConfig) -> list[str]:
    """The `policies` list, each name checked (before any tracing is spent)."""
    names = OmegaConf.to_container(cfg.policies, resolve=True) if "policies" in cfg else []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"policies = {names!r}: expected a list of policy names")
    for i, name in enumerate(names):
        make_policy(name, key=f"policies[{i}]")
    return names


def replay_options(cfg: DictConfig) -> ReplayConfig | None:
    """The `replay` group's options when recorded data is replayed instead of the twin's."""
    if cfg.get("replay") is None:
        return None
    return replay_config_from(OmegaConf.to_container(cfg.replay, resolve=True), prefix="replay")


def learned_options(cfg: DictConfig) -> LearnedRunConfig:
    """The `learned` section: which models to train before the evaluation, and how."""
    if "learned" not in cfg:
        return LearnedRunConfig(train=())
    return learned_run_config(OmegaConf.to_container(cfg.learned, resolve=True))


@run_task
def task(cfg: DictConfig) -> None:
    scenario = scenario_of(cfg)
    register_learned_policies()  # model names (beamtransfuser, gru, ...) are policy names too
    policies = policy_names(cfg)
    evaluation = evaluation_from(
        OmegaConf.to_container(cfg.evaluation, resolve=True) if "evaluation" in cfg else {}
    )
    learned = learned_options(cfg)
    replay = replay_options(cfg)
    if replay is not None:
        path, name = (
            replay_from_config(replay, cfg.cache_dir),
            f"{replay.kind} {replay.scenario or replay.path}",
        )
    else:
        path, stats = generate(scenario, cfg.cache_dir, progress=cfg.progress)
        name = scenario.name
        if stats.frames:
            print(stats.describe())
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    with TwinStore(path) as store:
        summary = summarize(store)
        figure = plot_summary(store, summary, output_dir / "dataset_summary.png")
    print(summary.format())
    print(f"plot           {figure}")
    if policies:
        plan = prepare_learned(path, learned, evaluation, policies, progress=cfg.progress)
        result = evaluate(
            path,
            scenario.faults,
            plan.evaluation,
            plan.policies,
            progress=cfg.progress,
            drive_ids=plan.drive_ids,
            notes=plan.notes,
        )
        files = write_report(result, output_dir, name)
        print(format_table(result))
        print(f"report         {files['summary']} ({result.steps:,} steps in {result.seconds:.1f} s)")


main = entry_point(task)

if __name__ == "__main__":
    main()

"""The main job: `python -m twin.run scenario=urban_street`.

Generates (or loads the cached) twin dataset and summarises it. The closed-loop evaluation of
policies under injected faults builds on this entry point.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from twin.cli import entry_point, run_task, scenario_of
from twin.generation import generate
from twin.store import TwinStore
from twin.summary import plot_summary, summarize


@run_task
def task(cfg: DictConfig) -> None:
    scenario = scenario_of(cfg)
    path, stats = generate(scenario, cfg.cache_dir, progress=cfg.progress)
    if stats.frames:
        print(
            f"traced {stats.frames} frames in {stats.seconds:.1f} s ({stats.frames_per_second:.1f} frames/s)"
        )
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    with TwinStore(path) as store:
        summary = summarize(store)
        figure = plot_summary(store, summary, output_dir / "dataset_summary.png")
    print(summary.format())
    print(f"plot           {figure}")


main = entry_point(task)

if __name__ == "__main__":
    main()

"""`python -m twin.generate scenario=<name>`: build or load the cached dataset and print its path."""

from __future__ import annotations

from omegaconf import DictConfig

from twin.cli import entry_point, run_task, scenario_of
from twin.dataset.generation import generate


@run_task
def task(cfg: DictConfig) -> None:
    scenario = scenario_of(cfg)
    path, stats = generate(scenario, cfg.cache_dir, progress=cfg.progress)
    if stats.frames:
        print(stats.describe())
    print(path)


main = entry_point(task)

if __name__ == "__main__":
    main()

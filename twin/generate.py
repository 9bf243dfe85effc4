"""`python -m twin.generate scenario=<name>`: build or load the cached dataset and print its path
(`executor=ray`: the runs are traced as Ray tasks, twin.executor)."""

from __future__ import annotations

from omegaconf import DictConfig

from twin.cli import entry_point, run_task
from twin.dataset.resolve import resolve_store


@run_task
def task(cfg: DictConfig) -> None:
    print(resolve_store(cfg, progress=cfg.progress).path)


main = entry_point(task)

if __name__ == "__main__":
    main()

"""Pretraining alone, from the command line (the stage runner itself is learners.stages):

    python -m learners.pretrain model=wmfm scenario=urban_street

takes the options of learners.train, runs the model's pretraining stages and writes a checkpoint
without training its head; a head variant loads its encoders with
`python -m learners.train model=wmfm_los train.init_from=<folder>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learners.checkpoint import read_config
from learners.stages import aligned_split, run_stages, stage_validation, stage_windows
from learners.train import _config_from_hydra, fit
from twin.errors import ConfigError

__all__ = ["aligned_split", "run_stages", "stage_validation", "stage_windows"]  # the runner, re-exported


def _task(cfg: Any) -> None:
    from twin.dataset.resolve import resolve_store

    config = _config_from_hydra(cfg)
    resolved = resolve_store(cfg, progress=cfg.progress)
    preset = config.options.get("preset")
    folder = cfg.get("checkpoint_dir") or Path("outputs/checkpoints") / resolved.slug / (
        config.model + (f"-{preset}" if preset else "") + "-pretrained"
    )
    print(f"dataset        {resolved.path}")
    result = fit(resolved.path, config, folder, progress=cfg.progress, head=False)
    if not result.checkpoint or not read_pretraining(result.checkpoint):
        raise ConfigError(f"model.name = {config.model!r}: has no pretraining stages to run")
    print(f"pretrained     {config.model} in {result.seconds:.1f} s")
    print(f"checkpoint     {result.checkpoint}")


def read_pretraining(checkpoint: Any) -> list[dict[str, Any]]:
    return list(read_config(checkpoint).get("pretraining") or [])


def _main() -> None:
    from twin.cli import entry_point, run_task

    entry_point(run_task(_task))()


if __name__ == "__main__":
    _main()

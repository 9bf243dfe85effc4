"""The shipped blockage predictors: one GRU per horizon trained on DeepSense scenario 17's real
`future-N` train split (best epoch on its val split), the model group's default settings, seed 0.

    python -m learners.blockage_shipped    # assets/checkpoints/scenario17/blockage-future-{1,5,10}/

Each run is also `python -m learners.train model=blockage series=<data>/future-N
checkpoint_dir=assets/checkpoints/scenario17/blockage-future-N train.threads=1`; the test split is
scored at the end for the README table and never chooses anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learners.blockage.checkpoint import load_blockage
from learners.blockage.command import describe, real_splits
from learners.blockage.fit import BlockageTrainConfig, evaluate, fit_blockage
from learners.blockage.windows import read_series, series_csv
from learners.shipped import REPO, SHIPPED_DIR
from twin.errors import ConfigError

SCENARIO = "scenario17"


def default_data() -> Path:
    """../shared/data/deepsense6g/scenario17 beside the repository (or beside its worktree folder)."""
    for base in (REPO.parent, REPO.parent.parent):
        folder = base / "shared" / "data" / "deepsense6g" / SCENARIO
        if folder.is_dir():
            return folder
    return REPO.parent / "shared" / "data" / "deepsense6g" / SCENARIO


def shipped_blockage(horizon: int) -> Path:
    return SHIPPED_DIR / SCENARIO / f"blockage-future-{horizon}"


def ship(
    data: Path, horizons: list[int], out: Path, threads: int, progress: bool
) -> dict[int, dict[str, Any]]:
    config = BlockageTrainConfig(threads=threads)
    results = {}
    for horizon in horizons:
        folder = data / f"future-{horizon}"
        train, val = real_splits(folder, 1.0, config.seed)
        result = fit_blockage(
            train, val, config, out / f"blockage-future-{horizon}", horizon, progress=progress
        )
        test = evaluate(load_blockage(result.checkpoint).model, read_series(series_csv(folder, "test")))
        print(f"future-{horizon}\n{describe(result, test)}", flush=True)
        results[horizon] = test
    return results


def task(cfg: Any) -> None:
    data = Path(cfg.data) if cfg.get("data") else default_data()
    if not data.is_dir():
        raise ConfigError(f"data = {str(data)!r}: not found (expected DeepSense's scenario17 folder)")
    out = Path(cfg.out) if cfg.get("out") else SHIPPED_DIR / SCENARIO
    ship(data, [int(h) for h in cfg.horizons], out, int(cfg.threads), bool(cfg.progress))


def _main() -> None:
    from twin.cli import entry_point, run_task

    entry_point(run_task(task), config_name="blockage_shipped")()


if __name__ == "__main__":
    _main()

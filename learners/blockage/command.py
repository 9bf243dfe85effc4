"""`python -m learners.train model=blockage ...`: the blockage predictor on real or twin windows.

    series=<future-N folder>                      real: its train CSV, best epoch on its val CSV
    store=<h5> horizon=N  (or scenario=<name>)    twin only: the store's drives, split by run
    series=... train.init_from=<ckpt> fraction=0.2   fine-tune on a seeded 20 % of the real splits

Where the series folder (or, for a twin run, `series` left out) has a test CSV it is scored at the end
for information; it never chooses the epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from learners.blockage.checkpoint import load_blockage
from learners.blockage.fit import BlockageResult, BlockageTrainConfig, blockage_train_config, evaluate
from learners.blockage.windows import (
    Windows,
    fraction,
    horizon_of,
    read_series,
    series_csv,
    split_groups,
    store_windows,
)
from twin.errors import ConfigError


def hydra_settings(cfg: Any) -> BlockageTrainConfig:
    """The model group's options and training settings, with train.seed/threads/init_from."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    unknown = sorted(set(model) - {"name", "options", "training"})
    if unknown:
        raise ConfigError(f"model.{unknown[0]}: unknown key; model=blockage has name, options, training")
    settings = dict(model.get("training") or {})
    settings["options"] = model.get("options") or {}
    for key in ("seed", "threads", "init_from"):
        settings[key] = cfg.train[key]
    return blockage_train_config(settings, "model.training")


def real_splits(folder: str | Path, share: float, seed: int) -> tuple[Windows, Windows]:
    train = read_series(series_csv(folder, "train"))
    val = read_series(series_csv(folder, "val"))
    if share < 1:
        train, val = fraction(train, share, seed), fraction(val, share, seed + 1)
    return train, val


def twin_splits(store: str | Path, horizon: int, val_fraction: float, seed: int) -> tuple[Windows, Windows]:
    windows = store_windows(store, horizon)
    train_rows, val_rows = split_groups(windows, val_fraction, seed)
    return windows.subset(train_rows), windows.subset(val_rows)


def describe(result: BlockageResult, test: dict[str, float] | None = None) -> str:
    m = result.metrics
    lines = [
        f"stopped        after {len(result.history)} epochs, {result.seconds:.1f} s; "
        f"best epoch {result.best_epoch}",
        f"validation     accuracy {m['accuracy']:.4f}, F1 {m['f1']:.4f} ({m['samples']} windows)",
    ]
    if test is not None:
        lines.append(
            f"test           accuracy {test['accuracy']:.4f}, F1 {test['f1']:.4f} ({test['samples']} windows)"
        )
    lines.append(f"checkpoint     {result.checkpoint}")
    return "\n".join(lines)


def train_task(cfg: Any) -> None:
    from learners.blockage.fit import fit_blockage

    config = hydra_settings(cfg)
    share = float(cfg.get("fraction", 1.0))
    if cfg.get("series"):
        if cfg.get("store"):
            raise ConfigError("series, store: give one (real windows from series, twin windows from store)")
        folder = Path(cfg.series)
        horizon = horizon_of(folder)
        if cfg.get("horizon") not in (None, horizon):
            raise ConfigError(f"horizon = {cfg.horizon}: the series folder {folder} is future-{horizon}")
        train, val = real_splits(folder, share, config.seed)
        slug = folder.resolve().parent.name
        test_csv = next(iter(sorted(folder.glob("*_series_test.csv"))), None)
    else:
        from twin.dataset.resolve import resolve_store

        if cfg.get("horizon") is None:
            raise ConfigError("horizon: missing; model=blockage on a twin store needs horizon=<frames ahead>")
        if share != 1.0:
            raise ConfigError("fraction: only with series (a share of the real splits)")
        horizon = int(cfg.horizon)
        resolved = resolve_store(cfg, progress=cfg.progress)
        train, val = twin_splits(resolved.path, horizon, float(cfg.data.val_fraction), config.seed)
        slug, test_csv = resolved.slug, None
    name = f"blockage-future-{horizon}" + (f"-fraction{share:g}" if share < 1 else "")
    out = cfg.get("checkpoint_dir") or Path("outputs/checkpoints") / slug / name
    for label, windows in (("training", train), ("validation", val)):
        blocked = int(windows.labels.sum()) if windows.labels is not None else 0
        print(f"{label:<14} {windows.source}: {len(windows)} windows, {blocked} blocked")
    result = fit_blockage(train, val, config, out, horizon, {"fraction": share}, progress=cfg.progress)
    test = evaluate(load_blockage(result.checkpoint).model, read_series(test_csv)) if test_csv else None
    print(describe(result, test))

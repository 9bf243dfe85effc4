"""Does blockage prediction transfer from the twin to real data? Per horizon, four GRUs (same
settings and seed) scored on DeepSense scenario 17's real test split:

- real-trained: the real train split, epoch chosen on the real val split (the shipped recipe);
- twin-only: the twin store's windows, epoch chosen on held-out twin runs (no real data at all);
- twin-pretrained + share: the twin-only weights fine-tuned on a seeded share of the real train and
  val splits;
- share from scratch: the same share without the twin.

    python -m learners.blockage_study twin_store=outputs/cache/<store>.h5 [fraction=0.2]

The twin-only gap to real-trained is the twin's sim-to-real distance for this task in one number.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from learners.blockage.checkpoint import load_blockage
from learners.blockage.command import real_splits, twin_splits
from learners.blockage.fit import BlockageTrainConfig, evaluate, fit_blockage
from learners.blockage.windows import Windows, read_series, series_csv
from learners.blockage_shipped import default_data
from twin.errors import ConfigError
from twin.store import TwinStore

VARIANTS = ("real-trained", "twin-only", "twin-pretrained + share", "share from scratch")


def study_horizon(
    twin_store: Path,
    data: Path,
    horizon: int,
    share: float,
    val_fraction: float,
    out: Path,
    config: BlockageTrainConfig,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """The four variants' test scores at one horizon (checkpoints under `out/future-N/`)."""
    folder, root = data / f"future-{horizon}", out / f"future-{horizon}"
    test = read_series(series_csv(folder, "test"))
    real_train, real_val = real_splits(folder, 1.0, config.seed)
    part_train, part_val = real_splits(folder, share, config.seed)
    twin_train, twin_val = twin_splits(twin_store, horizon, val_fraction, config.seed)
    runs: dict[str, tuple[Windows, Windows, BlockageTrainConfig]] = {
        "real-trained": (real_train, real_val, config),
        "twin-only": (twin_train, twin_val, config),
        "twin-pretrained + share": (part_train, part_val, replace(config, init_from=str(root / "twin-only"))),
        "share from scratch": (part_train, part_val, config),
    }
    out_scores = {}
    for name in VARIANTS:  # twin-only before its fine-tuning
        train, val, settings = runs[name]
        result = fit_blockage(train, val, settings, root / name, horizon, {"study": name}, progress=progress)
        scores = evaluate(load_blockage(result.checkpoint).model, test)
        out_scores[name] = {**scores, "train_windows": len(train), "best_epoch": result.best_epoch}
    out_scores["majority"] = {"accuracy": float(1 - test.labels.mean()), "f1": 0.0}
    return out_scores


def table(results: dict[int, dict[str, dict[str, float]]], share: float) -> str:
    lines = [f"{'horizon':<10} {'predictor':<28} {'train windows':>13} {'accuracy':>9} {'F1':>7}"]
    for horizon, rows in results.items():
        for name in VARIANTS:
            m = rows[name]
            label = name.replace("share", f"{share:.0%} real")
            numbers = f"{m['train_windows']:>13} {m['accuracy']:>9.4f} {m['f1']:>7.4f}"
            lines.append(f"future-{horizon:<3} {label:<28} {numbers}")
        real, twin = rows["real-trained"], rows["twin-only"]
        lines.append(
            f"{'':<10} {'(all clear)':<28} {'':>13} {rows['majority']['accuracy']:>9.4f} {0:>7.4f}"
            f"   twin-only gap {real['accuracy'] - twin['accuracy']:+.4f} accuracy, "
            f"{real['f1'] - twin['f1']:+.4f} F1"
        )
    return "\n".join(lines)


def task(cfg: Any) -> None:
    if not cfg.get("twin_store"):
        raise ConfigError("twin_store: missing; usage: python -m learners.blockage_study twin_store=<h5>")
    store = Path(cfg.twin_store)
    data = Path(cfg.data) if cfg.get("data") else default_data()
    if not data.is_dir():
        raise ConfigError(f"data = {str(data)!r}: not found (expected DeepSense's scenario17 folder)")
    if not 0 < float(cfg.fraction) <= 1:
        raise ConfigError(f"fraction = {cfg.fraction}: expected a share in (0, 1]")
    with TwinStore(store) as twin:  # one line if it is missing or not a store
        scenario = str(twin.attrs.get("scenario_name", "?"))
    out = Path(cfg.out) if cfg.get("out") else Path("outputs/blockage_study") / store.stem
    config = BlockageTrainConfig(threads=int(cfg.threads))
    print(f"twin store     {store} (scenario {scenario})")
    print(f"real data      {data} (test split scored)")
    results = {}
    for horizon in cfg.horizons:
        results[int(horizon)] = study_horizon(
            store, data, int(horizon), float(cfg.fraction), float(cfg.val_fraction), out, config, cfg.progress
        )
        print(f"future-{horizon}: done", flush=True)
    print(table(results, float(cfg.fraction)))


def _main() -> None:
    from twin.cli import entry_point, run_task

    entry_point(run_task(task), config_name="blockage_study")()


if __name__ == "__main__":
    _main()

"""Blockage decisions for a DeepSense series CSV: `python -m learners.predict checkpoint=<folder>
series=<csv> out=<file.csv>` writes `index,prediction` (1: blocked N frames after the row's last
sweep, N the checkpoint's horizon) for every row, and prints accuracy and F1 when the CSV is labelled.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

from learners.blockage.checkpoint import load_blockage
from learners.blockage.fit import probabilities, scores
from learners.blockage.windows import horizon_of, read_series
from twin.errors import ConfigError
from twin.replay.formats import ReplayError


def predict(
    checkpoint: str | Path, series: str | Path, out: str | Path, root: str | Path | None = None
) -> dict:
    """Write the decisions; returns the scores when the CSV is labelled (else {"samples": N})."""
    loaded = load_blockage(checkpoint)
    windows = read_series(series, root, beams=loaded.model.num_beams)
    try:
        csv_horizon = horizon_of(series)
    except ReplayError:
        csv_horizon = None  # a CSV outside a future-N folder: the checkpoint's horizon is assumed
    if csv_horizon is not None and csv_horizon != loaded.horizon:
        raise ConfigError(
            f"series {series}: a future-{csv_horizon} CSV, "
            f"the checkpoint predicts {loaded.horizon} frames ahead"
        )
    decisions = (probabilities(loaded.model, windows) >= loaded.threshold).astype(int)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "prediction"])
        writer.writerows(zip(windows.index.tolist(), decisions.tolist(), strict=True))
    if windows.labels is None:
        return {"samples": len(windows)}
    return scores(windows.labels, decisions)


def task(cfg: Any) -> None:
    for key in ("checkpoint", "series", "out"):
        if not cfg.get(key):
            raise ConfigError(
                f"{key}: missing; usage: python -m learners.predict checkpoint=<folder> "
                "series=<csv> out=<file.csv>"
            )
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    result = predict(cfg.checkpoint, cfg.series, cfg.out, cfg.get("root"))
    print(f"predictions    {result['samples']} rows -> {cfg.out}")
    if "f1" in result:
        print(
            f"scores         accuracy {result['accuracy']:.4f}, F1 {result['f1']:.4f}, "
            f"precision {result['precision']:.4f}, recall {result['recall']:.4f}"
        )


def _main() -> None:
    from twin.cli import entry_point, run_task

    entry_point(run_task(task), config_name="predict")()


if __name__ == "__main__":
    _main()

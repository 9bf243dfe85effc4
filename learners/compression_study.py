"""The Fig. 6 analogue: `python -m learners.compression_study checkpoint=<beamtransfuser folder>`.

Prunes one trained BeamTransFuser to every retention of `ratios` (learners.compress: KL importance,
three phases, `epochs` of fine-tuning after each) and prints, per retention, the parameters kept (whole
model and fusion blocks), validation top-1/2/3 and DBA, and the p50/p99 decision latency (one window,
`threads` CPU threads), beside the unpruned model (retention 1.0). `base=model` reads the retention as
a share of the whole model; retentions the fusion blocks alone cannot reach are listed as refused.
Without a checkpoint, `preset=paper` measures structure only: an untrained model of the preset, its
fusion blocks cut to each retention's widths, gives the parameter counts and latency (which depend on
the widths, not on which structures are kept or on training), with no accuracy: the paper preset's
78 M parameters do not train on this project's CPUs. The rows also go to
`<out>/compression_study.csv` and, as accuracy and latency against retention, to
`<out>/compression_study.png`. Every pruned checkpoint stays in `<out>` (`ratio<r>/`).
`branches=true` (beyond the paper) prunes the CNN branches' residual blocks too (learners.compress),
the retention then shared by the fusion blocks and those blocks.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learners.checkpoint import load_checkpoint
from learners.compress import (
    CompressData,
    CompressResult,
    Measurement,
    compress,
    compress_config,
    fusion_keep,
    latency_ms,
    measurement,
)
from learners.models.beamtransfuser import PREPROCESS_PRESETS, BeamTransFuser
from learners.models.registry import ModelContext, build_model
from learners.preprocess import GPS_FEATURES, preprocess_config
from learners.pruning import (
    BlockKeep,
    plan_branch_widths,
    plan_widths,
    pruned_options,
)
from twin.errors import ConfigError
from twin.store.deployment import Deployment
from twin.validation import at_least, between, build, one_of, spec

PAPER_RETENTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


def _ratios(value: Any) -> str | None:
    ok = isinstance(value, (list, tuple)) and value and all(0 < float(r) <= 1 for r in value)
    return None if ok else "a list of retentions in (0, 1], e.g. [1.0, 0.8, 0.6, 0.4]"


@dataclass(frozen=True)
class StudyConfig:
    checkpoint: str = spec("")  # a trained beamtransfuser folder; "": structure only, of `preset`
    preset: str = spec("", check=one_of("", "tiny", "mid", "paper"))
    ratios: tuple[float, ...] = spec(PAPER_RETENTIONS, check=_ratios)
    base: str = spec("fusion", check=one_of("fusion", "model"))
    branches: bool = spec(False)  # beyond the paper: prune the CNN branches' residual blocks too
    importance: str = spec("grouped", check=one_of("exact", "grouped"))
    group: int = spec(8, check=between(1, 4096))
    calibration: int = spec(64, check=between(1, 1_000_000))
    epochs: int = spec(1, check=between(0, 10_000))
    lr: float = spec(3e-4, check=between(1e-7, 10))
    store: str = spec("")
    out: str = spec("")  # "": <checkpoint>-study
    latency_windows: int = spec(50, check=between(1, 100_000))
    threads: int = spec(2, check=between(1, 256))
    seed: int = spec(0, check=at_least(0))


@dataclass
class Row:
    retention: float
    measurement: Measurement | None  # None: the retention is out of reach (`refused` says why)
    original: Measurement
    refused: str = ""
    phases: list[dict[str, Any]] = field(default_factory=list)

    def to_csv(self) -> dict[str, Any]:
        m = self.measurement
        row: dict[str, Any] = {"retention": self.retention, "refused": self.refused}
        if m is not None:
            row.update(
                parameters=m.parameters,
                model_share=m.parameters / self.original.parameters,
                fusion_parameters=m.fusion_parameters,
                fusion_share=m.fusion_parameters / self.original.fusion_parameters,
                branch_parameters=m.branch_parameters,
                branch_share=m.branch_parameters / max(self.original.branch_parameters, 1),
                **{k: m.metrics.get(k) for k in ("top1", "top2", "top3", "dba")},
                p50_ms=m.latency_ms[0],
                p99_ms=m.latency_ms[1],
            )
        return row


def study_config(data: dict[str, Any] | StudyConfig) -> StudyConfig:
    if isinstance(data, StudyConfig):
        return data
    values = {k: v for k, v in data.items() if v is not None}
    if "ratios" in values:
        values["ratios"] = tuple(values["ratios"]) if isinstance(values["ratios"], (list, tuple)) else None
    config = build(StudyConfig, values, "compression_study")
    if bool(config.checkpoint) == bool(config.preset):
        raise ConfigError(
            "compression_study: give checkpoint=<beamtransfuser folder> (accuracy and latency) or "
            "preset=tiny|mid|paper (structure only: parameters and latency of an untrained model), not both"
        )
    return config


def output_folder(config: StudyConfig) -> Path:
    if config.out:
        return Path(config.out)
    return (
        Path(f"{config.checkpoint}-study")
        if config.checkpoint
        else Path(f"outputs/compression_study/{config.preset}")
    )


def structure_model(preset: str, retention: float, base: str, branches: bool = False) -> BeamTransFuser:
    """An untrained model of `preset` whose fusion blocks (with `branches`, also the branches' residual
    blocks) have the widths of `retention` (of `base`)."""
    preprocess = preprocess_config(PREPROCESS_PRESETS[preset])
    shapes = {"camera": (3, *preprocess.camera_size), "lidar": (1, *preprocess.bev_size),
              "radar": (2, *preprocess.radar_size), "gps": (GPS_FEATURES,)}  # fmt: skip
    beams = 64
    deployment = Deployment(beams, tuple(np.linspace(-45, 45, beams)), 10.0, -90.0)
    torch.manual_seed(0)
    model = build_model(
        "beamtransfuser", {"preset": preset}, ModelContext(beams, 5, 1, shapes, deployment, preprocess)
    )
    heads = model.options.heads
    keep = fusion_keep(model, retention, base, branches)
    inner = plan_branch_widths(model, keep) if branches else [None] * len(model.fusion)
    keeps = {
        stage: BlockKeep(
            embed=torch.arange(w.embed),
            head_dims=[torch.arange(heads * d) for d in w.head_dims],
            ffn=[torch.arange(f) for f in w.ffn],
            branch=[torch.arange(n) for n in widths] if widths else None,
        )
        for stage, (w, widths) in enumerate(zip(plan_widths(model, keep), inner))
    }
    return BeamTransFuser(pruned_options(model, keeps), model.context).eval()


def random_windows(
    model: BeamTransFuser, count: int, generator: torch.Generator
) -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """`count` single windows of random frames of the model's input sizes, every frame present
    (what a latency measurement needs: the values do not change the work)."""
    shapes, history = model.context.shapes, model.context.history
    return [
        ({m: torch.randn(1, history, *s, generator=generator) for m, s in shapes.items()},
         {m: torch.ones(1, history, dtype=torch.bool) for m in shapes})
        for _ in range(count)
    ]  # fmt: skip


def structure_rows(config: StudyConfig) -> list[Row]:
    """Parameters and latency per retention of an untrained `config.preset` model (no accuracy)."""
    generator = torch.Generator().manual_seed(config.seed)
    rows: list[Row] = []
    original: Measurement | None = None
    for ratio in sorted({float(r) for r in config.ratios}, reverse=True):
        try:
            model = structure_model(config.preset, ratio, config.base, config.branches)
        except ConfigError as error:
            if original is None:
                raise
            rows.append(Row(ratio, None, original, refused=str(error).split(": ", 1)[-1]))
            continue
        windows = random_windows(model, config.latency_windows, generator)
        measured = measurement(model, {}, latency_ms(model, windows, config.threads))
        original = original or measured
        rows.append(Row(ratio, measured, original))
        p50 = measured.latency_ms[0]
        print(f"retention      {ratio:g}: {measured.parameters:,} parameters, p50 {p50:.1f} ms")
    return rows


def run_study(config: StudyConfig | dict[str, Any]) -> list[Row]:
    """One row per retention (descending), 1.0 being the unpruned model."""
    config = study_config(config)
    out = output_folder(config)
    if config.preset:
        out.mkdir(parents=True, exist_ok=True)
        rows = structure_rows(config)
        write_outputs(rows, out)
        return rows
    checkpoint = load_checkpoint(config.checkpoint)  # refuses a damaged or foreign folder in one line
    out.mkdir(parents=True, exist_ok=True)
    data: CompressData | None = None  # loaded once, for every retention
    rows: list[Row] = []
    original: Measurement | None = None
    for ratio in sorted({float(r) for r in config.ratios}, reverse=True):
        settings = {
            "checkpoint": config.checkpoint, "ratio": ratio, "base": config.base, "branches": config.branches,
            "importance": config.importance, "group": config.group, "calibration": config.calibration,
            "epochs": config.epochs if ratio < 1 else 0, "lr": config.lr, "store": config.store,
            "out": str(out / f"ratio{ratio:g}"), "latency_windows": config.latency_windows,
            "threads": config.threads, "seed": config.seed,
        }  # fmt: skip
        try:
            data = data or CompressData(checkpoint, compress_config(settings))
            result: CompressResult = compress(settings, data)
        except ConfigError as error:  # base=model below what pruning the fusion blocks can reach
            if original is None:  # nothing measured yet to compare with: the user's retentions are off
                raise
            rows.append(Row(ratio, None, original, refused=str(error).split(": ", 1)[-1]))
            continue
        original = original or result.original
        measurement = result.original if ratio >= 1 else result.pruned
        rows.append(Row(ratio, measurement, original, phases=result.phases))
        print(f"retention      {ratio:g}: DBA {measurement.metrics.get('dba', float('nan')):.3f}")
    write_outputs(rows, out)
    return rows


def _cell(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def describe(rows: list[Row], config: StudyConfig) -> str:
    scored = f"structure only, an untrained {config.preset} model" if config.preset else "validation drives"
    base = "fusion + branch blocks" if config.branches and config.base == "fusion" else config.base
    lines = [
        f"Fig. 6 analogue ({base} retention; {scored}; latency: one window, {config.threads} threads)",
        "",
        "| retention | parameters (share) | fusion (share) | branch blocks (share) "
        "| top-1 | top-2 | top-3 | DBA | p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        m = row.measurement
        if m is None:
            lines.append(f"| {row.retention:g} | refused: {row.refused} | | | | | | | |")
            continue
        c = row.to_csv()
        lines.append(
            f"| {row.retention:g} | {m.parameters:,} ({c['model_share']:.3f}) | {m.fusion_parameters:,} "
            f"({c['fusion_share']:.3f}) | {m.branch_parameters:,} ({c['branch_share']:.3f}) | "
            f"{_cell(c['top1'])} | {_cell(c['top2'])} | {_cell(c['top3'])} | "
            f"{_cell(c['dba'])} | {m.latency_ms[0]:.1f} / {m.latency_ms[1]:.1f} |"
        )
    return "\n".join(lines)


def write_outputs(rows: list[Row], out: Path) -> None:
    records = [row.to_csv() for row in rows]
    names = list(dict.fromkeys(k for r in records for k in r))
    with open(out / "compression_study.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(records)
    plot(rows, out / "compression_study.png")


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = [r for r in rows if r.measurement is not None]
    x = [r.retention for r in kept]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("top1", "top-1"), ("top3", "top-3"), ("dba", "DBA")):
        if not all(key in r.measurement.metrics for r in kept):  # type: ignore[union-attr]
            continue  # structure only: no accuracy
        left.plot(x, [r.measurement.metrics.get(key) for r in kept], "o-", label=label)  # type: ignore[union-attr]
    left.set(xlabel="retention", ylabel="validation score", ylim=(0, 1))
    left.invert_xaxis()
    if left.lines:
        left.legend()
    else:
        left.text(0.5, 0.5, "structure only: no accuracy", ha="center", transform=left.transAxes)
    right.plot(x, [r.measurement.latency_ms[0] for r in kept], "o-", label="p50")  # type: ignore[union-attr]
    right.plot(x, [r.measurement.latency_ms[1] for r in kept], "s--", label="p99")  # type: ignore[union-attr]
    right.set(xlabel="retention", ylabel="decision latency (ms)")
    right.invert_xaxis()
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _main() -> None:
    from omegaconf import DictConfig, OmegaConf

    from twin.cli import entry_point, run_task

    @run_task
    def task(cfg: DictConfig) -> None:
        data = OmegaConf.to_container(cfg, resolve=True)
        data = {k: v for k, v in data.items() if k not in ("hydra", "progress")}
        config = study_config(data)
        rows = run_study(config)
        print(describe(rows, config))
        out = output_folder(config)
        print(f"written        {out / 'compression_study.csv'}, {out / 'compression_study.png'}")

    entry_point(task, config_name="compression_study")()


if __name__ == "__main__":
    _main()

"""The Fig. 6 analogue: `python -m learners.compression_study checkpoint=<beamtransfuser folder>`.

Prunes one trained BeamTransFuser to every retention of `ratios` (learners.compress: KL importance,
three phases, `epochs` of fine-tuning after each) and prints, per retention, the parameters kept (whole
model and fusion blocks), validation top-1/2/3 and DBA, and the p50/p99 decision latency (one window,
`threads` CPU threads), beside the unpruned model (retention 1.0). `base=model` reads the retention as
a share of the whole model; retentions the fusion blocks alone cannot reach are listed as refused.
The rows also go to `<out>/compression_study.csv` and, as DBA and latency against retention, to
`<out>/compression_study.png`. Every pruned checkpoint stays in `<out>` (`ratio<r>/`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learners.checkpoint import load_checkpoint
from learners.compress import CompressResult, Measurement, compress
from twin.errors import ConfigError
from twin.validation import at_least, between, build, one_of, spec

PAPER_RETENTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


def _ratios(value: Any) -> str | None:
    ok = isinstance(value, (list, tuple)) and value and all(0 < float(r) <= 1 for r in value)
    return None if ok else "a list of retentions in (0, 1], e.g. [1.0, 0.8, 0.6, 0.4]"


@dataclass(frozen=True)
class StudyConfig:
    checkpoint: str = spec(check=lambda v: None if v else "a beamtransfuser checkpoint folder")
    ratios: tuple[float, ...] = spec(PAPER_RETENTIONS, check=_ratios)
    base: str = spec("fusion", check=one_of("fusion", "model"))
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
    return build(StudyConfig, values, "compression_study")


def run_study(config: StudyConfig | dict[str, Any]) -> list[Row]:
    """One row per retention (descending), 1.0 being the unpruned model."""
    config = study_config(config)
    checkpoint = load_checkpoint(config.checkpoint)  # refuses a damaged or foreign folder in one line
    out = Path(config.out or f"{checkpoint.path}-study")
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    original: Measurement | None = None
    for ratio in sorted({float(r) for r in config.ratios}, reverse=True):
        settings = {
            "checkpoint": config.checkpoint, "ratio": ratio, "base": config.base,
            "importance": config.importance, "group": config.group, "calibration": config.calibration,
            "epochs": config.epochs if ratio < 1 else 0, "lr": config.lr, "store": config.store,
            "out": str(out / f"ratio{ratio:g}"), "latency_windows": config.latency_windows,
            "threads": config.threads, "seed": config.seed,
        }  # fmt: skip
        try:
            result: CompressResult = compress(settings)
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
    lines = [
        f"Fig. 6 analogue ({config.base} retention; validation drives; latency: one window, "
        f"{config.threads} threads)",
        "",
        "| retention | parameters (share) | fusion (share) | top-1 | top-2 | top-3 | DBA | p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        m = row.measurement
        if m is None:
            lines.append(f"| {row.retention:g} | refused: {row.refused} | | | | | | |")
            continue
        c = row.to_csv()
        lines.append(
            f"| {row.retention:g} | {m.parameters:,} ({c['model_share']:.3f}) | {m.fusion_parameters:,} "
            f"({c['fusion_share']:.3f}) | {_cell(c['top1'])} | {_cell(c['top2'])} | {_cell(c['top3'])} | "
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
        left.plot(x, [r.measurement.metrics.get(key) for r in kept], "o-", label=label)  # type: ignore[union-attr]
    left.set(xlabel="retention", ylabel="validation score", ylim=(0, 1))
    left.invert_xaxis()
    left.legend()
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
        out = Path(config.out or f"{Path(config.checkpoint)}-study")
        print(f"written        {out / 'compression_study.csv'}, {out / 'compression_study.png'}")

    entry_point(task, config_name="compression_study")()


if __name__ == "__main__":
    _main()

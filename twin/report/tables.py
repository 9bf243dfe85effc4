"""The evaluation's numbers as files and text: results.csv, results.json, summary.md and the console table.

Every number in summary.md is read from the same rows as results.json and results.csv, so the three
always agree.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from twin.loop.evaluate import Evaluation
from twin.loop.metrics import METRICS
from twin.scenario.faults import describe
from twin.validation import to_dict

MAIN_CONDITION = "scenario"
TABLE_METRICS = (
    "effective_rate",
    "rate",
    "snr_loss_db",
    "rsrp_diff_db",
    "top1",
    "top3",
    "dba",
    "outage",
    "overhead",
)
CONDITION_METRICS = ("effective_rate", "snr_loss_db", "outage")


def fmt(value: float, digits: int) -> str:
    return (
        "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


def main_condition(evaluation: Evaluation) -> str:
    names = [c.name for c in evaluation.conditions]
    return MAIN_CONDITION if MAIN_CONDITION in names else names[0]


def write_csv(evaluation: Evaluation, path: Path) -> Path:
    head = ["policy", "condition", "kind", "modality", "level", "faults", "drives", "seeds", "frames"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(head + [f"{m.name}{s}" for m in METRICS for s in ("", "_low", "_high")])
        for row in evaluation.rows:
            values = [row[k] if row[k] is not None else "" for k in head]
            for m in METRICS:
                values += [repr(row[m.name]["mean"]), repr(row[m.name]["low"]), repr(row[m.name]["high"])]
            writer.writerow(values)
    return path


def write_json(
    evaluation: Evaluation, path: Path, scenario: str, notes: list[str], files: dict[str, Path]
) -> Path:
    context = evaluation.context
    document = {
        "scenario": scenario,
        "store": {
            "path": context.path,
            "source": context.source,
            "truth": context.truth,
            "sensors": list(context.sensors),
            "num_beams": context.num_beams,
            "frame_rate_hz": context.frame_rate_hz,
            "noise_power_dbm": context.noise_power_dbm,
        },
        "drives": evaluation.drives,
        "seeds": list(evaluation.seeds),
        "policies": evaluation.policies,
        "main_condition": main_condition(evaluation),
        "conditions": [
            {
                "name": c.name,
                "kind": c.kind,
                "modality": c.modality,
                "level": None if math.isnan(c.level) else c.level,
                "faults": to_dict(c.faults),
                "label": describe(c.faults),
            }
            for c in evaluation.conditions
        ],
        "scenario_faults": to_dict(evaluation.scenario_faults),
        "evaluation": to_dict(evaluation.config),
        "metrics": {
            m.name: {"label": m.label, "unit": m.unit, "higher_is_better": m.higher_is_better}
            for m in METRICS
        },
        "rows": evaluation.rows,
        "decisions_per_s": evaluation.decisions_per_s,
        "timing": {"evaluation_s": evaluation.seconds, "env_steps": evaluation.steps},
        "timeline_drive": evaluation.timeline.drive if evaluation.timeline else None,
        "notes": notes,
        "files": {name: p.name for name, p in files.items()},
    }
    path.write_text(json.dumps(document, indent=1, allow_nan=True))
    return path


def _cell(row: dict[str, Any], name: str, with_ci: bool = True) -> str:
    digits = next(m.digits for m in METRICS if m.name == name)
    e = row[name]
    if not with_ci:
        return fmt(e["mean"], digits)
    return f"{fmt(e['mean'], digits)} [{fmt(e['low'], digits)}, {fmt(e['high'], digits)}]"


def _rows_for(evaluation: Evaluation, condition: str) -> list[dict[str, Any]]:
    return [r for r in evaluation.rows if r["condition"] == condition]


def write_summary(
    evaluation: Evaluation, path: Path, scenario: str, notes: list[str], files: dict[str, Path]
) -> Path:
    context = evaluation.context
    main = main_condition(evaluation)
    main_row = _rows_for(evaluation, main)
    frames = main_row[0]["frames"] if main_row else 0
    label = {m.name: m.label + (f" [{m.unit}]" if m.unit else "") for m in METRICS}
    lines = [
        f"# Closed-loop beam management: {scenario or Path(context.path).stem}",
        "",
        f"Store `{context.path}` ({context.source}): {len(evaluation.drives)} drives, "
        f"{context.num_beams} beams, truth from {context.truth} RSRP; seeds "
        f"{', '.join(map(str, evaluation.seeds))}; {frames} frames per policy and condition.",
        "",
        f"## Condition `{main}`: {describe(next(c.faults for c in evaluation.conditions if c.name == main))}",
        "",
        "| policy | " + " | ".join(label[m] for m in TABLE_METRICS) + " |",
        "|---" * (len(TABLE_METRICS) + 1) + "|",
    ]
    for row in main_row:
        lines.append(f"| {row['policy']} | " + " | ".join(_cell(row, m) for m in TABLE_METRICS) + " |")
    level = round(100 * evaluation.config.confidence)
    lines += [
        "",
        f"Means pooled over frames of every drive and seed; [low, high]: {level} % cluster-bootstrap "
        "interval over (drive, seed). Effective rate = rate x (1 - sweep overhead); outage: SNR < "
        f"{evaluation.config.outage_snr_db:g} dB; L1-RSRP difference on the measured sweep; DBA with "
        "Δ = 5 over the top-3.",
    ]
    by_key = {(r["policy"], r["condition"]): r for r in evaluation.rows}
    for metric in CONDITION_METRICS:
        lines += [
            "",
            f"## {label[metric]} per fault condition",
            "",
            "| condition | " + " | ".join(evaluation.policies) + " |",
            "|---" * (len(evaluation.policies) + 1) + "|",
        ]
        for c in evaluation.conditions:
            cells = [_cell(by_key[(p, c.name)], metric, False) for p in evaluation.policies]
            lines.append(f"| {c.name} | " + " | ".join(cells) + " |")
    lines += ["", "## Conditions", ""]
    lines += [f"- `{c.name}`: {describe(c.faults)}" for c in evaluation.conditions]
    lines += ["", "## Decisions per second", "", "| policy | decisions/s |", "|---|---|"]
    lines += [f"| {p} | {v:,.0f} |" for p, v in evaluation.decisions_per_s.items()]
    lines += [
        "",
        f"{evaluation.steps:,} environment steps in {evaluation.seconds:.1f} s.",
    ]
    figures = [(n, t) for n, t in FIGURE_TITLES.items() if n in files]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{title}]({files[name].name})" for name, title in figures]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in notes]
    path.write_text("\n".join(lines) + "\n")
    return path


FIGURE_TITLES = {
    "snr_loss_cdf": "CDF of SNR loss per policy",
    "rate_over_time": "Rate over time on one drive",
    "degradation": "Degradation versus fault level",
    "scene": "3D scene snapshot",
}


def format_table(evaluation: Evaluation) -> str:
    """A compact console table of the main condition."""
    main = main_condition(evaluation)
    rows = _rows_for(evaluation, main)
    width = max([13, *(len(row["policy"]) + 1 for row in rows)])  # long policy names keep the columns
    head = (
        f"{'policy':<{width}}{'eff. rate':>10}{'SNR loss':>10}{'top-1':>8}{'DBA':>8}{'outage':>8}"
        f"{'overhead':>10}"
    )
    lines = [
        f"closed loop    condition '{main}', {len(evaluation.drives)} drives x {len(evaluation.seeds)} seeds",
        head,
    ]
    for row in rows:
        lines.append(
            f"{row['policy']:<{width}}{row['effective_rate']['mean']:>10.2f}{row['snr_loss_db']['mean']:>10.2f}"
            f"{row['top1']['mean']:>8.3f}{row['dba']['mean']:>8.3f}{row['outage']['mean']:>8.3f}"
            f"{row['overhead']['mean']:>10.4f}"
        )
    return "\n".join(lines)

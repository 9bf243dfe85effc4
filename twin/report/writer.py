"""The report of an evaluation, written into one folder: tables (twin.report.tables), figures
(twin.report.figures) and the scene view (twin.report.scene_view). A figure that cannot be drawn is
noted in the report; it never costs the numbers."""

from __future__ import annotations

from pathlib import Path

from twin.loop.evaluate import Evaluation
from twin.report.figures import plot_degradation, plot_rate_over_time, plot_snr_loss_cdf
from twin.report.scene_view import snapshot
from twin.report.tables import write_csv, write_json, write_summary


def write_report(evaluation: Evaluation, out_dir: str | Path, scenario: str = "") -> dict[str, Path]:
    """Write every report file into `out_dir`; returns name → path of what was written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    notes = list(evaluation.notes)
    if evaluation.config.plots:
        for name, plot in (
            ("snr_loss_cdf", plot_snr_loss_cdf),
            ("rate_over_time", plot_rate_over_time),
            ("degradation", plot_degradation),
        ):
            try:
                path = plot(evaluation, out / f"{name}.png")
            except Exception as exc:  # a figure must never cost the numbers
                notes.append(f"figure {name} not drawn: {exc}")
                continue
            if path is not None:
                files[name] = path
    if evaluation.config.snapshot:
        try:
            files["scene"] = snapshot(evaluation, out / "scene.png")
        except Exception as exc:  # e.g. no OpenGL on the machine
            notes.append(f"3D snapshot not drawn: {type(exc).__name__}: {exc}")
    files["results_csv"] = write_csv(evaluation, out / "results.csv")
    files["results_json"] = out / "results.json"
    files["summary"] = out / "summary.md"
    write_json(evaluation, files["results_json"], scenario, notes, files)
    write_summary(evaluation, files["summary"], scenario, notes, files)
    return files

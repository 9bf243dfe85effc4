"""The evaluation's figures: the CDF of SNR loss per policy, rate over time on one drive with blockage and
dropout marked, and degradation versus blockage rate and dropout probability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from twin.loop.evaluate import Evaluation
from twin.report.tables import main_condition


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(evaluation: Evaluation, policy: str) -> Any:
    """One colour per policy across every figure."""
    import matplotlib

    return matplotlib.colormaps["tab10"](evaluation.policies.index(policy) % 10)


def plot_snr_loss_cdf(evaluation: Evaluation, path: Path) -> Path:
    plt = _pyplot()
    main = main_condition(evaluation)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    top = 1.0
    for policy in evaluation.policies:
        loss = np.sort(evaluation.frames[(policy, main)]["snr_loss_db"])
        cdf = np.arange(1, len(loss) + 1) / len(loss)
        ax.step(
            np.concatenate([[0.0], loss]),
            np.concatenate([[0.0], cdf]),
            where="post",
            label=policy,
            color=_color(evaluation, policy),
        )
        top = max(top, float(np.percentile(loss, 99)))
    # Start left of 0 so the genie's step at exactly 0 dB stays visible.
    ax.set(xlabel="SNR loss [dB]", ylabel="CDF", xlim=(-0.02 * top, min(top * 1.05, 60)), ylim=(0, 1.01))
    ax.set_title(f"SNR loss per policy, condition '{main}'")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _spans(
    ax: Any, t: np.ndarray, active: np.ndarray, y: tuple[float, float], color: str, label: str
) -> None:
    """Shade the runs of `active` frames between axes fractions y."""
    if not active.any():
        return
    period = float(np.median(np.diff(t))) if len(t) > 1 else 0.1
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(int), [0]])))
    for i, (a, b) in enumerate(zip(edges[::2], edges[1::2])):
        ax.axvspan(
            t[a],
            t[b - 1] + period,
            ymin=y[0],
            ymax=y[1],
            color=color,
            alpha=0.25,
            lw=0,
            label=label if i == 0 else None,
        )


def plot_rate_over_time(evaluation: Evaluation, path: Path) -> Path | None:
    timeline = evaluation.timeline
    if timeline is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2), constrained_layout=True)
    t = timeline.t
    _spans(ax, t, timeline.physical_blocked, (0, 1), "grey", "blocked (traced)")
    _spans(ax, t, timeline.injected, (0, 1), "tab:red", "blockage (injected)")
    bands = ("tab:cyan", "tab:olive", "tab:pink", "tab:brown", "tab:gray")
    for i, (modality, active) in enumerate(timeline.dropouts.items()):
        _spans(ax, t, active, (0.05 * i, 0.05 * i + 0.05), bands[i % len(bands)], f"{modality} dropout")
    ax.plot(t, timeline.oracle_rate, "k--", lw=1.2, label="oracle (genie)")
    for policy, rate in timeline.rate.items():
        if policy != "genie":
            ax.plot(t, rate, lw=1.2, label=policy, color=_color(evaluation, policy))
    ax.set(
        xlabel="time [s]",
        ylabel="rate [bit/s/Hz]",
        title=f"Rate on drive {timeline.drive} (condition 'scenario')",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_degradation(evaluation: Evaluation, path: Path) -> Path | None:
    """Effective rate versus fault level: blockage event rate, and dropout probability per modality."""
    panels: list[tuple[str, str]] = []
    if any(c.kind == "blockage" for c in evaluation.conditions):
        panels.append(("blockage", ""))
    panels += sorted({("dropout", c.modality) for c in evaluation.conditions if c.kind == "dropout"})
    if not panels:
        return None
    plt = _pyplot()
    columns = min(3, len(panels))
    rows_count = -(-len(panels) // columns)
    fig, axes = plt.subplots(
        rows_count, columns, figsize=(4.4 * columns, 3.6 * rows_count), constrained_layout=True, squeeze=False
    )
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    clean = {r["policy"]: r for r in evaluation.rows if r["condition"] == "clean"}
    for ax, (kind, modality) in zip(axes.flat, panels):
        for policy in evaluation.policies:
            rows = [
                r
                for r in evaluation.rows
                if r["policy"] == policy and r["kind"] == kind and r["modality"] == modality
            ]
            if policy in clean:
                rows = [{**clean[policy], "level": 0.0}, *rows]
            rows.sort(key=lambda r: r["level"])
            x = [r["level"] for r in rows]
            y = np.array([r["effective_rate"]["mean"] for r in rows])
            err = np.array(
                [
                    [y[i] - r["effective_rate"]["low"], r["effective_rate"]["high"] - y[i]]
                    for i, r in enumerate(rows)
                ]
            ).T
            ax.errorbar(
                x,
                y,
                yerr=np.maximum(err, 0),
                marker="o",
                ms=3,
                capsize=2,
                label=policy,
                color=_color(evaluation, policy),
            )
        xlabel = (
            "injected blockage events per second" if kind == "blockage" else f"{modality} dropout probability"
        )
        ax.set(xlabel=xlabel, ylabel="effective rate [bit/s/Hz]")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Degradation versus fault level (mean, 95 % CI)")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

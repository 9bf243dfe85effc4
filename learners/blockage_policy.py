"""The proactive policy on replayed DeepSense scenario 17: train its served-power blockage predictor
on the real train split, then score tracking, exhaustive and `blockage_aware` in the closed loop.

    python -m learners.blockage_policy                 # the table (trains the predictor if absent)
    python -m learners.blockage_policy retrain=true    # retrain assets/.../blockage-served-future-1

The replayed store's drives are whole recording stretches and DeepSense's train/val/test windows are
interleaved inside them, so no drive is unseen; the table reports all frames and, separately, the
held-out frames: those in no training window of the predictor (its 8 observed frames and its label
frame), whose powers the predictor's weights never saw.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from learners.blockage.command import real_splits
from learners.blockage.fit import BlockageTrainConfig, fit_blockage, scores
from learners.blockage.policy import (
    SERVED_INPUT,
    SHIPPED_SERVED,
    BlockageAware,
    BlockageAwareOptions,
    load_served_predictor,
    served_windows,
)
from learners.blockage.windows import POWER_COLUMNS, read_series, series_csv
from learners.blockage_shipped import default_data
from twin.errors import ConfigError
from twin.loop.drives import load_drives
from twin.loop.env import BeamSelectionEnv
from twin.loop.lockstep import EnvLanes, rollout_batch
from twin.loop.metrics import frame_metrics
from twin.loop.policies import Policy, make_policy
from twin.scenario.faults import faults_from

HORIZON = 1
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
_FILE = re.compile(r"power_(\d+)\.txt$")


def train_served(data: Path, out: Path, threads: int, progress: bool) -> Path:
    """The served-power predictor on the real future-1 train split (best epoch on val)."""
    folder = data / f"future-{HORIZON}"
    train, val = real_splits(folder, 1.0, 0)
    result = fit_blockage(
        served_windows(train),
        served_windows(val),
        BlockageTrainConfig(threads=threads),
        out,
        HORIZON,
        {"input": SERVED_INPUT},
        progress=progress,
    )
    load_served_predictor(result.checkpoint)  # fails here, not in the loop, if it does not read back
    return result.checkpoint


def training_frames(data: Path, horizon: int = HORIZON) -> set[int]:
    """Power-file numbers of every frame a train-split window observes or labels."""
    frames: set[int] = set()
    with series_csv(data / f"future-{horizon}", "train").open(newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            numbers = [int(_FILE.search(row[c].strip()).group(1)) for c in POWER_COLUMNS]
            frames.update(range(min(numbers), max(numbers) + horizon + 1))
    return frames


def score(store: Path, policy: Policy, train_frames: set[int]) -> dict[str, dict[str, float]]:
    """Outage frames, mean SNR loss and overhead over all frames, the held-out frames and the
    predictor's training frames."""
    env = BeamSelectionEnv(store, modalities=[])
    records = rollout_batch(EnvLanes(env), policy, env.drives, faults_from(None), 0)
    pooled: dict[str, list[np.ndarray]] = {"outage": [], "snr_loss_db": [], "overhead": [], "train": []}
    with h5py.File(store, "r") as f:
        for drive, record in zip(env.drives, records):
            m = frame_metrics(record, 0.0)
            for name in ("outage", "snr_loss_db", "overhead"):
                pooled[name].append(m[name])
            index = f["episodes"][drive.id]["source"]["index"][()]
            pooled["train"].append(np.isin(index, sorted(train_frames)))
    values = {k: np.concatenate(v) for k, v in pooled.items()}
    train = values["train"]
    rows = {}
    for label, mask in (("all", np.ones_like(train)), ("held-out", ~train), ("train", train)):
        rows[label] = {
            "frames": int(mask.sum()),
            "outage_frames": int(values["outage"][mask].sum()),
            "snr_loss_db": float(values["snr_loss_db"][mask].mean()),
            "overhead": float(values["overhead"][mask].mean()),
        }
    return rows


def select_threshold(store: Path, checkpoint: Path, train_frames: set[int], budget: float) -> float:
    """The lowest threshold of THRESHOLDS whose airtime on the predictor's training frames stays
    within `budget` (tracking's there): chosen without looking at a held-out frame."""
    for threshold in THRESHOLDS:
        policy = BlockageAware(BlockageAwareOptions(str(checkpoint), clear_width=1, threshold=threshold))
        if score(store, policy, train_frames)["train"]["overhead"] <= budget:
            return threshold
    return THRESHOLDS[-1]


def table(store: Path, checkpoint: Path, data: Path) -> str:
    train = training_frames(data)
    tracking = make_policy("tracking")
    budget = score(store, tracking, train)["train"]["overhead"]
    chosen = select_threshold(store, checkpoint, train, budget)
    options = BlockageAwareOptions(checkpoint=str(checkpoint))
    # Tracking's airtime as a budget (the target's constraint, not tuned on outage): its overhead in
    # beams per frame, an exhaustive sweep's overhead being K beams per frame.
    exhaustive = make_policy("exhaustive")
    per_beam = score(store, exhaustive, train)["all"]["overhead"] / load_drives(store).context.num_beams
    beams = score(store, tracking, train)["all"]["overhead"] / per_beam
    policies: list[tuple[str, Policy]] = [
        ("tracking", tracking),
        ("tracking width=1", make_policy("tracking", {"width": 1})),
        ("exhaustive", make_policy("exhaustive")),
        ("blockage_aware (defaults)", BlockageAware(options)),
        ("blockage_aware every_frame", BlockageAware(replace(options, every_frame=True))),
        (
            f"blockage_aware cw=1 thr={chosen:g} *",
            BlockageAware(replace(options, clear_width=1, threshold=chosen)),
        ),
        (
            f"blockage_aware cw=1 budget={beams:.2f} +",
            BlockageAware(replace(options, clear_width=1, budget=round(beams, 2))),
        ),
    ]
    lines = [
        f"{'policy':<34} {'frames':>6} {'outage frames':>13} {'SNR loss dB':>11} {'overhead':>9} "
        f"{'| held-out':>10} {'outage':>6} {'SNR loss':>8} {'overhead':>9}"
    ]
    for label, policy in policies:
        rows = score(store, policy, train)
        a, h = rows["all"], rows["held-out"]
        lines.append(
            f"{label:<34} {a['frames']:>6} {a['outage_frames']:>13} {a['snr_loss_db']:>11.3f} "
            f"{a['overhead']:>9.5f} {h['frames']:>10} {h['outage_frames']:>6} {h['snr_loss_db']:>8.3f} "
            f"{h['overhead']:>9.5f}"
        )
    lines.append(
        f"* threshold: the lowest of {list(THRESHOLDS)} keeping overhead on the predictor's training frames "
        f"within tracking's there ({budget:.5f})"
    )
    lines.append(
        f"+ budget: tracking's mean beams measured per frame on the store ({beams:.2f}); a proactive "
        "sweep only where it keeps the drive's mean within it"
    )
    return "\n".join(lines)


def task(cfg: Any) -> None:
    data = Path(cfg.data) if cfg.get("data") else default_data()
    if not data.is_dir():
        raise ConfigError(f"data = {str(data)!r}: not found (expected DeepSense's scenario17 folder)")
    store = Path(cfg.store)
    if not store.is_file():
        raise ConfigError(f"store = {str(store)!r}: not found (python -m twin.run replay=deepsense ...)")
    checkpoint = Path(cfg.checkpoint) if cfg.get("checkpoint") else SHIPPED_SERVED
    if bool(cfg.retrain) or not checkpoint.is_dir():
        train_served(data, checkpoint, int(cfg.threads), bool(cfg.progress))
    predictor = load_served_predictor(checkpoint)[0]
    test = served_windows(read_series(series_csv(data / f"future-{HORIZON}", "test")))
    probabilities = predictor(test.sweeps)
    m = scores(test.labels, probabilities >= 0.5)
    print(
        f"predictor {checkpoint}: real future-{HORIZON} test split, served-power input: "
        f"accuracy {m['accuracy']:.4f}, F1 {m['f1']:.4f} ({m['samples']} windows)"
    )
    print(table(store, checkpoint, data))


def _main() -> None:
    from twin.cli import entry_point, run_task

    entry_point(run_task(task), config_name="blockage_policy")()


if __name__ == "__main__":
    _main()

"""RF-only JEPA world model on a replayed real store (DeepSense scenario 17), against beam history.

    python -m learners.jepa_real [--store outputs/cache/deepsense-scenario17-c109539a7418.h5]

A window is 13 consecutive frames of one drive: the 64-beam sweeps of frames t−7 … t observed, the
frames t+1 … t+5 predicted (horizons 1–5). On the real data every frame is a FULL sweep (the
recording measures every beam), so the JEPA's RF token reads the whole sweep (`SweepJEPA`), not the
closed loop's sparse one. Sweeps are in the store's calibrated dBm, standardised by the training
frames' mean and standard deviation. Drives are split whole (`--test-fraction`, seeded), and the
numbers are on the held-out drives' windows.

Scored per horizon τ:
- beam top-1 / top-3: the true best beam of frame t+τ (argmax of its sweep) among the predicted
  1 / 3 best;
- power MAE / RMSE (dB): the error of the predicted received power of the best beam of frame t+τ,
  max_k P_{t+τ}[k] (the JEPA: the max of its predicted power profile).
Predictors: the JEPA's heads on the frozen, pretrained backbone; persistence (the last sweep's best
beam, top-3 and max power); the project's `ar` and `gru` beam-history models (learners.models.
baselines: the best beams of t−7 … t and their normalised powers in, beams out); and for power a
least-squares AR on the best-beam powers of t−7 … t, one per horizon (beam history has no power head
in the project)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from learners.data import RF_INPUT
from learners.head_training import fit_heads, pretrain
from learners.horizon_metrics import power_errors, top_k
from learners.models.jepa import JEPA
from learners.models.registry import BeamPredictor, ModelContext, Tensors, build_model, model_options
from learners.optimisation import batches
from learners.preprocess import preprocess_config
from learners.train import seed_everything
from twin.errors import ConfigError, StoreError
from twin.store import TwinStore
from twin.store.deployment import Deployment

HISTORY = 8  # observed sweeps t−7 … t
HORIZONS = 5  # predicted frames t+1 … t+5
FUTURE = HORIZONS + 1  # the models' outputs cover t … t+5 (index 0 is the present frame)
DEFAULT_STORE = "outputs/cache/deepsense-scenario17-c109539a7418.h5"


# --- data ------------------------------------------------------------------------------------------


def read_drives(path: str | Path) -> dict[str, np.ndarray]:
    """Per drive, its (N, K) sweeps in dBm (`rsrp_dbm`); one error line for a store without them."""
    if not Path(path).is_file():
        raise StoreError(f"{path}: store not found (expected a replayed store, e.g. {DEFAULT_STORE})")
    drives = {}
    with TwinStore(path) as store:
        for episode_id in store.episode_ids:
            try:
                sweeps = np.asarray(store.episode(episode_id, ["rsrp_dbm"])["rsrp_dbm"], np.float32)
            except KeyError:
                raise StoreError(
                    f"{path}: drive {episode_id} has no 'rsrp_dbm' (expected full sweeps)"
                ) from None
            if not np.isfinite(sweeps).all():
                raise StoreError(f"{path}: drive {episode_id} has non-finite rsrp_dbm (expected full sweeps)")
            drives[episode_id] = sweeps
    if not drives:
        raise StoreError(f"{path}: no drives")
    return drives


def split_drives(ids: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Training and held-out drives, whole drives only, seeded; at least one on each side."""
    if len(ids) < 2:
        raise StoreError(f"{len(ids)} drive(s): a split by drive needs at least 2")
    count = min(max(1, math.ceil(test_fraction * len(ids))), len(ids) - 1)
    held = set(np.random.default_rng(seed).permutation(len(ids))[:count].tolist())
    return [d for i, d in enumerate(ids) if i not in held], [d for i, d in enumerate(ids) if i in held]


def windows(drives: dict[str, np.ndarray], ids: list[str], stride: int = 1) -> np.ndarray:
    """(W, HISTORY + HORIZONS, K) dBm: every `stride`-th run of 13 consecutive frames within a drive."""
    length = HISTORY + HORIZONS
    parts = []
    for d in ids:
        sweeps = drives[d]
        starts = np.arange(0, len(sweeps) - length + 1, stride)
        parts.append(sweeps[starts[:, None] + np.arange(length)[None, :]])
    k = next(iter(drives.values())).shape[1]
    return np.concatenate(parts) if parts else np.empty((0, length, k), np.float32)


@dataclass(frozen=True)
class Scale:
    """dBm ↔ the models' units: standardised by the training frames' mean and standard deviation."""

    mean: float
    std: float

    @classmethod
    def of(cls, sweeps: np.ndarray) -> Scale:
        return cls(float(sweeps.mean()), float(max(sweeps.std(), 1e-3)))

    def norm(self, db: np.ndarray) -> np.ndarray:
        return ((db - self.mean) / self.std).astype(np.float32)

    def db(self, value: np.ndarray) -> np.ndarray:
        return value * self.std + self.mean


class SweepWindows(Dataset):
    """Windows as the project's batch dicts: `beams` is the full normalised sweep for the JEPA
    (`SweepJEPA`), `best_beams` / `best_rsrp` the beam history for the baselines."""

    def __init__(self, sweeps_db: np.ndarray, scale: Scale):
        x = torch.from_numpy(scale.norm(sweeps_db))
        self.sweeps = x
        self.best = x.argmax(-1)

    def __len__(self) -> int:
        return len(self.sweeps)

    def __getitem__(self, i: int) -> dict[str, Any]:
        x, best = self.sweeps[i], self.best[i]
        present = torch.ones(HISTORY, dtype=torch.bool)
        targets = slice(HISTORY - 1, HISTORY + HORIZONS)
        return {
            "inputs": {
                RF_INPUT: x[:HISTORY],
                "best_beams": best[:HISTORY],
                "best_rsrp": x[:HISTORY].max(-1).values,
            },
            "masks": {RF_INPUT: present},
            "future_inputs": {RF_INPUT: x[HISTORY:]},
            "future_masks": {RF_INPUT: torch.ones(HORIZONS, dtype=torch.bool)},
            "target": best[targets],
            "target_rsrp": x[targets],
            "target_mask": torch.ones(FUTURE, dtype=torch.bool),
        }


# --- models ----------------------------------------------------------------------------------------


class SweepJEPA(JEPA):
    """The JEPA on the RF token alone, the token reading the full observed sweep of each frame (history
    and, in pretraining, future frames) instead of the closed loop's sparse one."""

    def __init__(self, options: Any, context: ModelContext):
        if tuple(options.modalities) != (RF_INPUT,):
            raise ConfigError(f"modalities = {list(options.modalities)}: SweepJEPA reads only ['{RF_INPUT}']")
        super().__init__(options, context)

    def history_values(self, inputs: Tensors, masks: Tensors) -> tuple[Tensors, torch.Tensor]:
        return {RF_INPUT: inputs[RF_INPUT].float()}, masks[RF_INPUT].bool().unsqueeze(1)

    def window(self, batch: dict[str, Any]) -> tuple[Tensors, torch.Tensor]:
        values, present = self.history_values(batch["inputs"], batch["masks"])
        if self.context.future <= 1:  # windows without future frames (the blockage series): history only
            return values, present
        sweeps = torch.cat([values[RF_INPUT], batch["future_inputs"][RF_INPUT].float()], 1)
        future = batch["future_masks"][RF_INPUT].bool().unsqueeze(1)
        return {RF_INPUT: sweeps}, torch.cat([present, future], 2)


class BeamHistory(torch.nn.Module):
    """A project beam-history baseline (`ar`, `gru`) fed the best beams and their powers."""

    def __init__(self, model: BeamPredictor):
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        return self.model({RF_INPUT: inputs["best_beams"], "beam_rsrp": inputs["best_rsrp"]}, masks)


def context_of(num_beams: int, history: int = HISTORY, future: int = FUTURE) -> ModelContext:
    deployment = Deployment(num_beams=num_beams, angles_deg=tuple(np.linspace(-45, 45, num_beams)),
                            frame_rate_hz=10.0, noise_power_dbm=-87.0)  # fmt: skip
    return ModelContext(num_beams, history, future, {}, deployment, preprocess_config({}))


def sweep_jepa(
    num_beams: int, options: dict[str, Any] | None = None, history: int = HISTORY, future: int = FUTURE
) -> SweepJEPA:
    """The RF-only JEPA on windows of `history` observed and `future` − 1 predicted sweeps."""
    o = model_options("jepa", {"preset": "tiny", **(options or {}), "modalities": [RF_INPUT]})
    return SweepJEPA(o, context_of(num_beams, history, future))


# --- training: learners.head_training (pretrain, fit_heads) ---------------------------------------


# --- scoring ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Predictions:
    """Per window and horizon 1 … 5: beams ranked best first (N, 5, ≥3) and best-beam power in dBm."""

    ranked: np.ndarray
    power_db: np.ndarray | None


def truth(sweeps_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5) best beams and their powers (dBm) of frames t+1 … t+5."""
    future = sweeps_db[:, HISTORY:]
    return future.argmax(-1), future.max(-1)


def persistence(sweeps_db: np.ndarray) -> Predictions:
    last = sweeps_db[:, HISTORY - 1]
    ranked = np.argsort(-last, -1, kind="stable")[:, :3]
    return Predictions(np.repeat(ranked[:, None], HORIZONS, 1), np.repeat(last.max(-1)[:, None], HORIZONS, 1))


def power_ar(train_db: np.ndarray, test_db: np.ndarray) -> np.ndarray:
    """Least squares from the best-beam powers of t−7 … t (and 1) to that of t+τ, per τ; (N, 5) dBm."""

    def design(s: np.ndarray) -> np.ndarray:
        p = s[:, :HISTORY].max(-1)
        return np.concatenate([p, np.ones((len(p), 1))], 1).astype(np.float64)

    coefficients, *_ = np.linalg.lstsq(design(train_db), truth(train_db)[1].astype(np.float64), rcond=None)
    return design(test_db) @ coefficients


@torch.no_grad()
def predict(model: torch.nn.Module, data: SweepWindows, scale: Scale, batch_size: int = 256) -> Predictions:
    """Beams (and, for a SweepJEPA, the max of the power profile in dBm) for horizons 1 … 5."""
    model.eval()
    ranked, power = [], []
    for batch in batches(data, batch_size, False, 0):
        if isinstance(model, JEPA):
            out = model.heads(batch["inputs"], batch["masks"])
            logits = out["beam"]
            power.append(scale.db(out["power"][:, 1:].max(-1).values.numpy()))
        else:
            logits = model(batch["inputs"], batch["masks"])
        ranked.append(logits[:, 1:].topk(3, -1).indices.numpy())
    return Predictions(np.concatenate(ranked), np.concatenate(power) if power else None)


def score(p: Predictions, sweeps_db: np.ndarray) -> list[dict[str, float]]:
    """Per horizon 1 … 5: top1, top3 and, where predicted, power MAE / RMSE in dB."""
    beams, power = truth(sweeps_db)
    columns = {"top1": top_k(p.ranked, beams, 1), "top3": top_k(p.ranked, beams, 3)}
    if p.power_db is not None:
        columns["mae"], columns["rmse"] = power_errors(p.power_db, power)
    return [{k: float(v[h]) for k, v in columns.items()} for h in range(HORIZONS)]


def table(results: dict[str, list[dict[str, float]]]) -> str:
    """A markdown table: one row per predictor and horizon."""
    lines = [
        "| predictor | horizon | top-1 | top-3 | power MAE (dB) | power RMSE (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        for h, r in enumerate(rows, 1):
            mae = f"{r['mae']:.3f}" if "mae" in r else "–"
            rmse = f"{r['rmse']:.3f}" if "rmse" in r else "–"
            lines.append(f"| {name} | {h} | {r['top1']:.3f} | {r['top3']:.3f} | {mae} | {rmse} |")
    return "\n".join(lines)


# --- the experiment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    store: str = DEFAULT_STORE
    test_fraction: float = 0.25
    stride: int = 1  # training windows: every stride-th start (held-out windows: all)
    pretrain_epochs: int = 20
    head_epochs: int = 20
    baseline_epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    jepa: tuple[tuple[str, Any], ...] = ()  # model options (preset tiny unless given)


def run(e: Experiment, log: Any = print) -> dict[str, list[dict[str, float]]]:
    """Train every predictor on the training drives; per-horizon scores on the held-out drives."""
    seed_everything(e.seed)
    drives = read_drives(e.store)
    train_ids, test_ids = split_drives(list(drives), e.test_fraction, e.seed)
    train_db, test_db = windows(drives, train_ids, e.stride), windows(drives, test_ids)
    if not len(train_db) or not len(test_db):
        raise StoreError(f"{e.store}: a side of the split has no window of {HISTORY + HORIZONS} frames")
    log(f"training drives {train_ids}: {len(train_db)} windows; held out {test_ids}: {len(test_db)} windows")
    scale = Scale.of(np.concatenate([drives[d] for d in train_ids]))
    train, test = SweepWindows(train_db, scale), SweepWindows(test_db, scale)
    k = train_db.shape[-1]
    results = {"persistence": score(persistence(test_db), test_db)}
    ar_power = Predictions(persistence(test_db).ranked, power_ar(train_db, test_db))
    results["power AR (lstsq)"] = score(ar_power, test_db)
    for kind in ("ar", "gru"):
        torch.manual_seed(e.seed)
        baseline = BeamHistory(build_model(kind, {}, context_of(k)))
        losses = fit_heads(baseline, train, e.baseline_epochs, e.lr, e.batch_size, e.seed)
        log(f"{kind}: final training loss {losses[-1]:.4f}")
        results[f"{kind} (beam history)"] = score(predict(baseline, test, scale), test_db)
    torch.manual_seed(e.seed)
    model = sweep_jepa(k, dict(e.jepa))
    losses = pretrain(model, train, e.pretrain_epochs, e.batch_size, e.seed)
    log(f"jepa pretraining loss per epoch: {', '.join(f'{v:.4f}' for v in losses)}")
    losses = fit_heads(model, train, e.head_epochs, e.lr, e.batch_size, e.seed, model.backbone_prefixes())
    log(f"jepa heads (frozen backbone): final training loss {losses[-1]:.4f}")
    results["JEPA heads (RF only, frozen)"] = score(predict(model, test, scale), test_db)
    return results


def verdict(results: dict[str, list[dict[str, float]]]) -> str:
    """Whether the JEPA's power MAE is below every power baseline's at every horizon."""
    jepa = results["JEPA heads (RF only, frozen)"]
    others = [r for name, r in results.items() if not name.startswith("JEPA") and "mae" in r[0]]
    best = [min(rows[h]["mae"] for rows in others) for h in range(HORIZONS)]
    wins = [jepa[h]["mae"] < best[h] for h in range(HORIZONS)]
    state = "met" if all(wins) else "not met"
    return (
        f"target (JEPA power MAE below the best baseline at every horizon): {state}; per horizon "
        + ", ".join(f"{h + 1}: {jepa[h]['mae']:.3f} vs {best[h]:.3f}" for h in range(HORIZONS))
    )


def _option(text: str) -> tuple[str, Any]:
    """`key=value` → (key, value), the value read as YAML (numbers, lists)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--option {text!r}: expected KEY=VALUE (a JEPA option)")
    return key, yaml.safe_load(value)


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Experiment()
    for field in ("store", "test_fraction", "stride", "pretrain_epochs", "head_epochs", "baseline_epochs",
                  "batch_size", "lr", "seed"):  # fmt: skip
        value = getattr(defaults, field)
        parser.add_argument("--" + field.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--preset", default="tiny", help="the JEPA preset (learners.models.jepa.PRESETS)")
    hint = "a JEPA option (learners.models.jepa.JEPAOptions), e.g. power_weight=5"
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help=hint)
    parser.add_argument("--threads", type=int, default=1)
    args = vars(parser.parse_args())
    torch.set_num_threads(args.pop("threads"))
    jepa = {"preset": args.pop("preset"), **dict(_option(o) for o in args.pop("option"))}
    experiment = Experiment(**args, jepa=tuple(jepa.items()))
    results = run(experiment)
    print(table(results))
    print(verdict(results))


if __name__ == "__main__":
    _main()

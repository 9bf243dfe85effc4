"""The JEPA paper's experiments re-run on a twin store, in the paper's layout beside its numbers:

    python -m learners.jepa_experiments --store outputs/cache/urban_street-<hash>.h5 [--scale 0.5]

A window is anchored at frame t of a drive (learners.data, history 8, future 6 with future sensors):
inputs of frames t−7 … t (the RF feedback lags one frame), horizon τ = frame t+τ, τ = 1 … 5. Scored
only on windows whose five future frames lie in the drive, on held-out windows:
1. Per-horizon tables: position ADE (over horizons 1 … τ) and FDE (at τ) in metres against the
   store's true `ue_pos`, beam top-1 / top-3 against the label beam, ΔP = |P[k̂] − P[k*]| (dB, from
   the store's `rsrp_dbm` at t+τ), RSSI MAE / RMSE (dB, the mean linear power over the beams) for the
   frozen-JEPA heads (pretraining stage, then heads on the frozen backbone), E2E (`e2e=true`: the same
   network trained with the heads, no pretraining), the beam-history AR, GRU and Transformer
   (learners.models.baselines; each already outputs one beam distribution per target frame t … t+5
   and is trained on all of them with the focal loss), the constant-velocity and CTRV Kalman filters
   (positions, and the beam pointing at them) and persistence (the last served beam, the last GPS fix,
   the RSSI of frame t−1's full sweep). A predictor without a head for a quantity prints "—".
   Split by run (whole drives held out), then once with the paper's random window split (windows of
   one drive on both sides), and the difference (random − run) printed.
2. Table III analogue: frozen-head ablations (embedding width, masking ratio, masking pattern via
   `future_share`, each modality left out), horizon-averaged, with RankMe of the held-out embeddings.
3. Table IV analogue: parameters and CPU latency (median over windows, batch 1, one thread) of the
   tokenisers, the backbone (context encoder + predictor) and the heads, tiny and paper presets (the
   paper preset at random init).
4. Target lines: frozen-JEPA ≥ E2E on beam top-3 at every horizon with fewer trainable parameters;
   RankMe well above 1 (here: at least a quarter of D).

Everything is seeded: the same command gives the same numbers. `--scale` multiplies every epoch
count; `--stride` keeps every n-th anchor (training and held-out windows alike).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learners.data import RF_INPUT, DataConfig, FrameSet, WindowDataset, load_frames, split_drives
from learners.head_training import fit_heads, pretrain, trainable_parameters
from learners.horizon_metrics import delta_p, displacement, power_errors, rssi_db, top_k
from learners.models.jepa import IMAGES, JEPA, MODALITIES, rankme
from learners.models.registry import BeamPredictor, ModelContext, build_model
from learners.optimisation import batches
from learners.preprocess import PreprocessConfig, Preprocessor, features_to_metres
from learners.train import model_inputs, seed_everything, train_config
from twin.errors import ConfigError, StoreError, TwinError
from twin.store import TwinStore

HISTORY, FUTURE = 8, 6  # the paper's 8 + 5 frames; the models' outputs cover t … t+5
HORIZONS = FUTURE - 1
DATA = DataConfig(history=HISTORY, future=FUTURE, future_sensors=True, split_by="run")
BEAM_HISTORY = ("ar", "gru", "transformer")
COLUMNS = (
    ("ade", "ADE (m)"),
    ("fde", "FDE (m)"),
    ("top1", "top-1"),
    ("top3", "top-3"),
    ("dp", "ΔP (dB)"),
    ("rmse", "RSSI RMSE (dB)"),
    ("mae", "RSSI MAE (dB)"),
)
# Table III of the paper (horizon averages on DeepSense scenario 32, random window split): RankMe,
# ADE, FDE, top-1, top-3, ΔP, RSSI RMSE, RSSI MAE; None where the paper leaves the cell empty.
PAPER_III: dict[str, tuple[float | None, ...]] = {
    "default": (28.0365, 0.0566, 0.0795, 0.4692, 0.8181, 0.1456, 0.4707, 0.2674),  # D = 128
    "E2E": (None, 0.0548, 0.1029, 0.4643, 0.8276, 0.1520, 0.4716, 0.2734),
    "D = 64": (7.7099, 0.0552, 0.0927, 0.4512, 0.7968, 0.1567, 0.4703, 0.2671),
    "ρ = 0.25": (25.2351, 0.0601, 0.0832, 0.4664, 0.8144, 0.1469, 0.4692, 0.2681),
    "ρ = 0.75": (25.6966, 0.0520, 0.0737, 0.4699, 0.8140, 0.1434, 0.4716, 0.2671),
    "w/o camera": (None, 0.0712, 0.1215, 0.3941, 0.7542, 0.1787, 0.4718, 0.2677),
    "w/o radar": (None, 0.0790, 0.0961, 0.4535, 0.8102, 0.1699, 0.4716, 0.2679),
    "w/o lidar": (None, 0.0750, 0.0910, 0.4651, 0.8133, 0.1447, 0.4707, 0.2672),
    "w/o gps": (None, 3.0416, 3.3648, None, None, None, None, None),
    "w/o beams": (None, None, None, 0.4082, 0.7365, 0.1925, 0.6077, 0.3916),
}
# Table IV of the paper (NVIDIA L4 GPU): parameters and latency (ms) where it states them.
PAPER_IV = {
    "camera": ("4.17 M", 0.78),
    "radar": ("9.34 K", 0.06),
    "lidar": ("9.34 K", 0.06),
    "gps": ("640", 0.03),
    RF_INPUT: ("8.58 K", 0.03),
    "backbone": ("1.59 M", 0.74),
    "target encoder": ("0.79 M", None),
    "heads": ("0.50 / 1.79 / 1.89 M", 0.11),
}
LEAK_PREDICTORS = ("persistence", "Kalman CV", "GRU", "JEPA frozen")

Rows = list[dict[str, float]]


# --- data ------------------------------------------------------------------------------------------


@dataclass
class TwinWindows:
    """A store's drives preprocessed for every JEPA input, with what the scores need per frame: the
    measured sweep in dBm and the true position in metres from the base station."""

    frames: FrameSet
    preprocess: PreprocessConfig
    sweeps_db: list[np.ndarray]  # per drive (T, K)
    positions: list[np.ndarray]  # per drive (T, 2)

    @property
    def context(self) -> ModelContext:
        d = self.frames.deployment
        return ModelContext(d.num_beams, HISTORY, FUTURE, self.frames.shapes, d, self.preprocess)


def jepa_config(options: dict[str, Any]) -> Any:
    return train_config({"model": "jepa", "options": {"preset": "tiny", **options}, "data": DATA.to_json()})


def load_store(path: str | Path, options: dict[str, Any] | None = None) -> TwinWindows:
    """Every drive of a twin store, preprocessed as the JEPA (tiny preset unless `options` say) reads it."""
    if not Path(path).is_file():
        raise StoreError(f"{path}: store not found (expected a twin store: python -m twin.generate)")
    _, _, preprocess, _ = model_inputs(jepa_config(dict(options or {})))
    frames = load_frames(path, (*MODALITIES[:-1], RF_INPUT), preprocess, DATA.label)
    bs = np.asarray(frames.deployment.bs_position_m or (0.0, 0.0, 0.0))[:2]
    sweeps, positions = [], []
    with TwinStore(path) as store:
        if "ue_pos" not in store.modalities:
            raise StoreError(f"{path}: no 'ue_pos' (expected a twin store)")
        for drive in frames.drives:
            episode = store.episode(drive.id, ["rsrp_dbm", "ue_pos"])
            sweeps.append(np.nan_to_num(episode["rsrp_dbm"].astype(np.float64), nan=-300.0, neginf=-300.0))
            positions.append(episode["ue_pos"][:, :2].astype(np.float64) - bs)
    return TwinWindows(frames, preprocess, sweeps, positions)


def anchors(frames: FrameSet, drives: Sequence[int], stride: int) -> list[tuple[int, int]]:
    """(drive, t) for every `stride`-th anchor whose five future frames lie in the drive."""
    return [(d, t) for d in drives for t in range(0, frames.drives[d].num_frames - HORIZONS, stride)]


def split_windows(
    frames: FrameSet, split: str, test_fraction: float, seed: int, stride: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Training and held-out anchors: `run` holds out whole runs (learners.data.split_drives, the
    project default); `window` shuffles every anchor of every drive (the paper's split)."""
    if split == "run":
        train, test = split_drives(frames.drives, test_fraction, seed, "run")
        return anchors(frames, train, stride), anchors(frames, test, stride)
    if split != "window":
        raise ConfigError(f"split = {split!r}: expected 'run' or 'window'")
    items = anchors(frames, range(len(frames.drives)), stride)
    order = np.random.default_rng(seed).permutation(len(items))
    held = set(order[: math.ceil(test_fraction * len(items))].tolist())
    return [w for i, w in enumerate(items) if i not in held], [w for i, w in enumerate(items) if i in held]


class ChosenWindows(WindowDataset):
    """learners.data's windows at an explicit list of (drive, anchor) items."""

    def __init__(self, frames: FrameSet, items: Sequence[tuple[int, int]], training: bool, seed: int):
        super().__init__(frames, [], DATA, training=training, seed=seed)
        self.items = list(items)


@dataclass(frozen=True)
class Truth:
    """Per held-out window and horizon 1 … 5: label beams (N, 5), sweeps in dBm (N, 5, K) and true
    positions (N, 5, 2) in metres from the base station; frame t−1's sweep (N, K) for persistence."""

    beams: np.ndarray
    sweeps_db: np.ndarray
    positions: np.ndarray
    previous_db: np.ndarray


def truth_of(data: TwinWindows, items: Sequence[tuple[int, int]]) -> Truth:
    future = np.arange(1, HORIZONS + 1)
    drives = data.frames.drives
    return Truth(
        np.stack([drives[d].best[t + future] for d, t in items]),
        np.stack([data.sweeps_db[d][t + future] for d, t in items]),
        np.stack([data.positions[d][t + future] for d, t in items]),
        np.stack([data.sweeps_db[d][max(t - 1, 0)] for d, t in items]),
    )


# --- predictions and scores --------------------------------------------------------------------------


@dataclass
class Predictions:
    """Per window and horizon 1 … 5 (None: no head for it): beams ranked best first (N, 5, 3),
    positions (N, 5, 2) in metres from the base station, RSSI (N, 5) in dBm."""

    ranked: np.ndarray | None = None
    positions: np.ndarray | None = None
    rssi_db: np.ndarray | None = None
    embeddings: np.ndarray | None = None  # the JEPA's pooled prediction of frame t+1 (for RankMe)


@torch.no_grad()
def predict(model: torch.nn.Module, data: ChosenWindows, preprocess: PreprocessConfig) -> Predictions:
    """Horizons 1 … 5 of a JEPA (all three heads), a GPS Kalman filter (positions and beams) or a beam
    predictor (beams)."""
    model.eval()
    noise = data.frames.deployment.noise_power_dbm
    parts: dict[str, list[np.ndarray]] = {"ranked": [], "positions": [], "rssi_db": [], "embeddings": []}
    for batch in batches(data, 256, False, 0):
        inputs, masks = batch["inputs"], batch["masks"]
        if isinstance(model, JEPA):
            states, values = model.frame_states(inputs, masks)
            out = model.head_outputs(states, values, masks)
            logits = out["beam"]
            if "gps" in model.names:
                parts["positions"].append(features_to_metres(out["position"][:, 1:], preprocess).numpy())
            profile_db = out["power"][:, 1:].numpy().astype(np.float64) * preprocess.rsrp_scale_db + noise
            parts["rssi_db"].append(rssi_db(profile_db))
            parts["embeddings"].append(states[:, 1, : model.options.dim].numpy())
        else:
            logits = model(inputs, masks)
            if hasattr(model, "positions"):
                parts["positions"].append(model.positions(inputs, masks)[0][:, 1:].numpy())
        parts["ranked"].append(logits[:, 1:].topk(3, -1).indices.numpy())
    return Predictions(**{k: np.concatenate(v) if v else None for k, v in parts.items()})


def persistence(data: ChosenWindows, truth: Truth, preprocess: PreprocessConfig) -> Predictions:
    """The last served beam (then its neighbours), the last GPS fix, frame t−1's RSSI, held for all
    horizons."""
    k = data.frames.deployment.num_beams
    ranked, positions = [], []
    for batch in batches(data, 256, False, 0):
        last = batch["inputs"][RF_INPUT][:, -1].numpy()
        by_distance = np.argsort(np.abs(np.arange(k)[None] - last[:, None]), -1, kind="stable")[:, :3]
        ranked.append(np.repeat(by_distance[:, None], HORIZONS, 1))
        fix = features_to_metres(batch["inputs"]["gps"][:, -1], preprocess).numpy()
        positions.append(np.repeat(fix[:, None], HORIZONS, 1))
    rssi = np.repeat(rssi_db(truth.previous_db)[:, None], HORIZONS, 1)
    return Predictions(np.concatenate(ranked), np.concatenate(positions), rssi)


def score(p: Predictions, truth: Truth) -> Rows:
    """Per horizon 1 … 5: the columns this predictor has (COLUMNS)."""
    columns: dict[str, np.ndarray] = {}
    if p.positions is not None:
        columns["ade"], columns["fde"] = displacement(p.positions, truth.positions)
    if p.ranked is not None:
        columns["top1"], columns["top3"] = top_k(p.ranked, truth.beams, 1), top_k(p.ranked, truth.beams, 3)
        columns["dp"] = delta_p(p.ranked[..., 0], truth.beams, truth.sweeps_db)
    if p.rssi_db is not None:
        columns["mae"], columns["rmse"] = power_errors(p.rssi_db, rssi_db(truth.sweeps_db))
    return [{k: float(v[h]) for k, v in columns.items()} for h in range(HORIZONS)]


def horizon_mean(rows: Rows) -> dict[str, float]:
    """The paper's horizon averages: ADE and FDE over all five horizons (τ = 5), the accuracies, ΔP
    and MAE averaged over horizons, RMSE over all horizons' squared errors."""
    out = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows])
        if key in ("ade", "fde"):
            out[key] = float(values[-1])
        elif key == "rmse":
            out[key] = float(np.sqrt((values**2).mean()))
        else:
            out[key] = float(values.mean())
    return out


def _cell(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def horizon_table(results: dict[str, Rows], signed: bool = False) -> str:
    """Markdown: one row per predictor and horizon (`signed`: differences, with their sign)."""
    lines = [
        "| predictor | τ | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for name, rows in results.items():
        for h, row in enumerate(rows, 1):
            cells = [(f"{row[k]:+.3f}" if signed else _cell(row[k])) if k in row else "—" for k, _ in COLUMNS]
            lines.append(f"| {name} | {h} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def difference(random: dict[str, Rows], run: dict[str, Rows]) -> dict[str, Rows]:
    """random − run, per predictor, horizon and column both have."""
    return {
        name: [{k: a[k] - b[k] for k in a if k in b} for a, b in zip(random[name], run[name])]
        for name in random
        if name in run
    }


# --- training ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    pretrain_epochs: int = 5
    head_epochs: int = 10
    baseline_epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    jepa: dict[str, Any] = field(default_factory=dict)  # JEPA options under every variant's own


@dataclass
class Trained:
    model: torch.nn.Module
    trainable: int  # parameters the supervised stage trained
    seconds: float


def train_jepa(
    data: TwinWindows, train: Sequence[tuple[int, int]], s: Settings, options: dict[str, Any]
) -> Trained:
    """Frozen heads (the pretraining stage, then heads on the frozen backbone) or, with `e2e`, the
    whole network trained with the heads from scratch."""
    tick = time.perf_counter()
    torch.manual_seed(s.seed)
    model = build_model("jepa", {"preset": "tiny", **s.jepa, **options}, data.context)
    assert isinstance(model, JEPA)
    frozen: tuple[str, ...] = ()
    if model.pretraining_stages():
        pretrain(
            model, ChosenWindows(data.frames, train, True, s.seed), s.pretrain_epochs, s.batch_size, s.seed
        )
        frozen = model.backbone_prefixes()
    windows = ChosenWindows(data.frames, train, True, s.seed + 1)
    fit_heads(model, windows, s.head_epochs, s.lr, s.batch_size, s.seed, frozen)
    return Trained(model, trainable_parameters(model), time.perf_counter() - tick)


def train_baseline(data: TwinWindows, train: Sequence[tuple[int, int]], s: Settings, kind: str) -> Trained:
    tick = time.perf_counter()
    torch.manual_seed(s.seed)
    model = build_model(kind, {}, data.context)
    windows = ChosenWindows(data.frames, train, True, s.seed + 1)
    fit_heads(model, windows, s.baseline_epochs, s.lr, s.batch_size, s.seed)
    return Trained(model, trainable_parameters(model), time.perf_counter() - tick)


@dataclass
class SplitResult:
    rows: dict[str, Rows]
    trained: dict[str, Trained]
    predictions: dict[str, Predictions]


def run_split(
    data: TwinWindows,
    split: str,
    s: Settings,
    test_fraction: float,
    stride: int,
    names: Sequence[str] | None = None,
    log: Callable[[str], Any] = print,
) -> SplitResult:
    """Train the chosen predictors (all by default) on one split; their per-horizon held-out scores."""
    train, test = split_windows(data.frames, split, test_fraction, s.seed, stride)
    if not train or not test:
        raise StoreError(f"{data.frames.path}: a side of the {split} split has no window of 13 frames")
    log(f"split by {split}: {len(train)} training windows, {len(test)} held-out windows")
    held_out = ChosenWindows(data.frames, test, False, s.seed)
    truth = truth_of(data, test)
    wanted = set(names) if names is not None else None
    out = SplitResult({}, {}, {})

    def keep(name: str, trained: Trained | None, p: Predictions) -> None:
        out.rows[name], out.predictions[name] = score(p, truth), p
        if trained is not None:
            out.trained[name] = trained
            log(
                f"trained        {name} in {trained.seconds:.0f} s "
                f"({trained.trainable:,} trainable parameters)"
            )

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    if want("persistence"):
        keep("persistence", None, persistence(held_out, truth, data.preprocess))
    for motion, name in (("cv", "Kalman CV"), ("ctrv", "Kalman CTRV")):
        if want(name):
            kalman = build_model("kalman", {"motion": motion}, data.context)
            keep(name, None, predict(kalman, held_out, data.preprocess))
    for kind in BEAM_HISTORY:
        name = {"ar": "AR", "gru": "GRU", "transformer": "Transformer"}[kind]
        if want(name):
            trained = train_baseline(data, train, s, kind)
            keep(name, trained, predict(trained.model, held_out, data.preprocess))
    for name, options in (("JEPA frozen", {}), ("E2E", {"e2e": True})):
        if want(name):
            trained = train_jepa(data, train, s, options)
            keep(name, trained, predict(trained.model, held_out, data.preprocess))
    return out


# --- Table III analogue ----------------------------------------------------------------------------


def ablation_variants(
    dims: Sequence[int], ratios: Sequence[float], shares: Sequence[float], left_out: Sequence[str]
) -> dict[str, dict[str, Any]]:
    variants: dict[str, dict[str, Any]] = {}
    variants.update({f"D = {d}": {"dim": d} for d in dims})
    variants.update({f"ρ = {r:g}": {"mask_ratio": r} for r in ratios})
    variants.update({f"future_share = {v:g}": {"future_share": v} for v in shares})
    for name in left_out:
        if name not in MODALITIES:
            raise ConfigError(f"--leave-out {name!r}: expected among {', '.join(MODALITIES)}")
        variants[f"w/o {name}"] = {"modalities": [m for m in MODALITIES if m != name]}
    return variants


def ablation_table(
    data: TwinWindows,
    s: Settings,
    test_fraction: float,
    stride: int,
    variants: dict[str, dict[str, Any]],
    default: tuple[Rows, Predictions] | None,
    log: Callable[[str], Any] = print,
) -> str:
    """Frozen heads per variant, held-out runs, horizon means and RankMe, beside Table III."""
    train, test = split_windows(data.frames, "run", test_fraction, s.seed, stride)
    held_out, truth = ChosenWindows(data.frames, test, False, s.seed), truth_of(data, test)
    keys = ("ade", "fde", "top1", "top3", "dp", "rmse", "mae")
    lines = [
        "| setting | RankMe | " + " | ".join(t for k, t in COLUMNS) + " | paper RankMe / ADE / top-3 |",
        "|---|---|" + "---|" * (len(COLUMNS) + 1),
    ]
    runs: dict[str, tuple[Rows, Predictions]] = {}
    if default is not None:
        runs["default"] = default
    for name, options in variants.items():
        trained = train_jepa(data, train, s, options)
        p = predict(trained.model, held_out, data.preprocess)
        log(f"trained        JEPA {name} in {trained.seconds:.0f} s")
        runs[name] = (score(p, truth), p)
    for name, (rows, p) in runs.items():
        mean = horizon_mean(rows)
        rank = rankme(torch.from_numpy(p.embeddings)) if p.embeddings is not None else None
        paper = PAPER_III.get(name)
        reference = "—" if paper is None else " / ".join(_cell(paper[i], 4) for i in (0, 1, 4))
        cells = " | ".join(_cell(mean.get(k)) for k in keys)
        lines.append(f"| {name} | {_cell(rank, 1)} | {cells} | {reference} |")
    return "\n".join(lines)


# --- Table IV analogue -----------------------------------------------------------------------------


def _median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up (allocations, lazy initialisation)
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        call()
        times.append(time.perf_counter() - tick)
    return 1000 * float(np.median(times))


def random_window(model: JEPA, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One window (batch 1) of random inputs of the model's shapes, every frame present."""
    g = torch.Generator().manual_seed(seed)
    c = model.context
    inputs: dict[str, torch.Tensor] = {}
    for name in model.names:
        if name == RF_INPUT:
            inputs[name] = torch.randint(0, c.num_beams, (1, c.history), generator=g)
            inputs["beam_rsrp"] = torch.rand(1, c.history, generator=g)
        else:
            inputs[name] = torch.randn(1, c.history, *c.shapes[name], generator=g)
    return inputs, {name: torch.ones(1, c.history, dtype=torch.bool) for name in model.names}


def _count(module: torch.nn.Module | torch.nn.Parameter) -> int:
    if isinstance(module, torch.nn.Parameter):
        return module.numel()
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def complexity(model: JEPA, repeats: int, seed: int = 0) -> list[tuple[str, int, float | None]]:
    """(part, parameters, median latency in ms at batch 1): each tokeniser on one frame, the backbone
    (context encoder and predictor, the image tokens given) on one window, the target encoder
    (parameters only: not run at inference) and the heads on the backbone's output."""
    model.eval()
    inputs, masks = random_window(model, seed)
    layout = model.encoder.layout
    rows: list[tuple[str, int, float | None]] = []
    for name in model.names:
        tokeniser = layout.tokenisers[name]
        frame = inputs[name][:, -1] if name != RF_INPUT else torch.randn(1, model.context.num_beams)
        if name == "gps":
            frame = frame[:, :2]
        rows.append(
            (f"{name} tokeniser", _count(tokeniser), _median_ms(lambda t=tokeniser, x=frame: t(x), repeats))
        )
    images = tuple(n for n in model.names if n in IMAGES)
    encoded = dict(inputs)
    for name in images:
        encoded[name] = model.encode_frames(name, inputs[name].flatten(0, 1)).unflatten(
            0, inputs[name].shape[:2]
        )
    tokenisers = _count(layout.tokenisers)
    backbone = _count(model.encoder) - tokenisers + _count(model.mask_token) + _count(model.predictor)
    backbone += _count(model.predictor_out)
    with model.reading_features(images):
        latency = _median_ms(lambda: model.frame_states(encoded, masks), repeats)
        states, values = model.frame_states(encoded, masks)
    rows.append(("backbone (context encoder + predictor)", backbone, latency))
    rows.append(("target encoder (EMA, training only)", _count(model.target) - tokenisers, None))
    heads = [
        model.state_norm,
        model.position_head,
        model.beam_in,
        model.beam_gru,
        model.beam_out,
        model.power_head,
    ]
    rows.append(
        (
            "heads (position, beam, power)",
            sum(_count(m) for m in heads),
            _median_ms(lambda: model.head_outputs(states, values, masks), repeats),
        )
    )
    return rows


def paper_preset(data: TwinWindows) -> JEPA:
    """The paper preset at random init, its inputs shaped by its own preprocessing on this store."""
    _, _, preprocess, inputs = model_inputs(jepa_config({"preset": "paper"}))
    preprocessor = Preprocessor(preprocess, data.frames.deployment)
    shapes = {n: preprocessor.shape(n) for n in inputs if n != RF_INPUT}
    d = data.frames.deployment
    torch.manual_seed(0)
    model = build_model(
        "jepa", {"preset": "paper"}, ModelContext(d.num_beams, HISTORY, FUTURE, shapes, d, preprocess)
    )
    assert isinstance(model, JEPA)
    return model


def complexity_table(models: dict[str, JEPA], baselines: dict[str, BeamPredictor], repeats: int) -> str:
    lines = [
        "| preset | part | parameters | latency (ms) | paper parameters / latency (ms, L4 GPU) |",
        "|---|---|---|---|---|",
    ]
    for preset, model in models.items():
        for part, count, latency in complexity(model, repeats):
            key = part.split(" ")[0] if "tokeniser" in part else part.split(" (")[0]
            paper = PAPER_IV.get(key)
            reference = "—" if paper is None else f"{paper[0]} / {_cell(paper[1], 2)}"
            lines.append(f"| {preset} | {part} | {count:,} | {_cell(latency, 2)} | {reference} |")
    for name, model in baselines.items():
        model.eval()
        inputs, masks = random_window(models["tiny"], 1)
        with torch.no_grad():
            latency = _median_ms(lambda m=model, x=inputs, k=masks: m(x, k), repeats)
        lines.append(
            f"| baseline | {name} (beam history / GPS) | {_count(model):,} | {_cell(latency, 2)} | — |"
        )
    return "\n".join(lines)


# --- targets ---------------------------------------------------------------------------------------


def verdicts(result: SplitResult) -> list[str]:
    frozen, e2e = result.rows.get("JEPA frozen"), result.rows.get("E2E")
    lines = []
    if frozen and e2e:
        a, b = result.trained["JEPA frozen"].trainable, result.trained["E2E"].trainable
        wins = [f["top3"] >= e["top3"] for f, e in zip(frozen, e2e)]
        state = "met" if all(wins) and a < b else "not met"
        lines.append(
            f"target (frozen-JEPA top-3 ≥ E2E's at every horizon, smaller trainable head): {state}; per "
            "horizon "
            + ", ".join(
                f"{h}: {f['top3']:.3f} vs {e['top3']:.3f}" for h, (f, e) in enumerate(zip(frozen, e2e), 1)
            )
            + f"; trainable parameters {a:,} (frozen heads) vs {b:,} (E2E)"
        )
    p = result.predictions.get("JEPA frozen")
    if p is not None and p.embeddings is not None:
        rank, dim = rankme(torch.from_numpy(p.embeddings)), p.embeddings.shape[1]
        state = "met" if rank >= dim / 4 else "not met"
        lines.append(
            f"target (RankMe well above 1: at least D/4 = {dim / 4:g}): {state}; "
            f"RankMe {rank:.2f} of D = {dim}"
        )
    return lines


# --- command line ------------------------------------------------------------------------------------


def _numbers(text: str, kind: type) -> list[Any]:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{text!r}: expected comma-separated {kind.__name__}s") from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="a twin store (python -m twin.generate)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every epoch count")
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--head-epochs", type=int, default=10, help="frozen heads and E2E")
    parser.add_argument("--baseline-epochs", type=int, default=10)
    parser.add_argument("--stride", type=int, default=2, help="every n-th anchor, training and held out")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="held-out share (paper: 30 %%)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--options", type=json.loads, default={}, help="JEPA options for every variant, JSON")
    parser.add_argument("--tables", default="horizons,leak,ablations,complexity")
    parser.add_argument("--dims", default="16,64", help="Table III widths besides the default")
    parser.add_argument("--mask-ratios", default="0.25,0.75")
    parser.add_argument("--future-shares", default="0,1", help="0: block masking only; 1: all future")
    parser.add_argument("--leave-out", default=",".join(MODALITIES), help="modalities left out one at a time")
    parser.add_argument("--latency-windows", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        run(args)
    except TwinError as exc:
        parser.error(str(exc))


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    tables = set(args.tables.split(","))
    unknown = tables - {"horizons", "leak", "ablations", "complexity"}
    if unknown:
        raise ConfigError(f"--tables {sorted(unknown)}: expected among horizons, leak, ablations, complexity")
    if args.stride < 1 or not 0 < args.test_fraction < 1:
        raise ConfigError(
            f"--stride {args.stride}, --test-fraction {args.test_fraction}: expected ≥ 1 and in (0, 1)"
        )

    def epochs(n: int) -> int:
        return max(1, math.ceil(n * args.scale))

    s = Settings(
        epochs(args.pretrain_epochs),
        epochs(args.head_epochs),
        epochs(args.baseline_epochs),
        args.batch_size,
        1e-3,
        args.seed,
        dict(args.options),
    )
    seed_everything(args.seed)
    tick = time.perf_counter()
    data = load_store(args.store, s.jepa)
    print(
        f"store          {args.store}: {len(data.frames.drives)} drives, "
        f"{sum(d.num_frames for d in data.frames.drives):,} frames "
        f"(read in {time.perf_counter() - tick:.0f} s)"
    )
    print(
        f"epochs         pretraining {s.pretrain_epochs}, heads / E2E {s.head_epochs}, baselines "
        f"{s.baseline_epochs}; anchors every {args.stride}"
    )
    run_result = None
    if tables & {"horizons", "leak", "ablations"}:
        names = None if "horizons" in tables else (LEAK_PREDICTORS if "leak" in tables else ("JEPA frozen",))
        run_result = run_split(data, "run", s, args.test_fraction, args.stride, names)
    if "horizons" in tables and run_result is not None:
        print(
            "\nPer-horizon scores, split by run (held-out runs); the paper gives these only as figures "
            "(Figs. 5–9), its horizon averages are in Table III below\n"
        )
        print(horizon_table(run_result.rows))
        print("\nHorizon averages beside the paper's Table III (D = 128, random window split)\n")
        print("| predictor | " + " | ".join(t for _, t in COLUMNS) + " | paper |")
        print("|---|" + "---|" * (len(COLUMNS) + 1))
        for name, rows in run_result.rows.items():
            mean = horizon_mean(rows)
            paper = PAPER_III.get({"JEPA frozen": "default"}.get(name, name))
            reference = "—" if paper is None else " / ".join(_cell(v, 4) for v in paper[1:])
            print(f"| {name} | " + " | ".join(_cell(mean.get(k)) for k, _ in COLUMNS) + f" | {reference} |")
    if "leak" in tables and run_result is not None:
        random = run_split(data, "window", s, args.test_fraction, args.stride, LEAK_PREDICTORS)
        print("\nPer-horizon scores, the paper's random window split (windows of one drive on both sides)\n")
        print(horizon_table(random.rows))
        print(
            "\nLeak: random window split − split by run "
            "(positive top-k, negative errors: the random split flatters)\n"
        )
        print(horizon_table(difference(random.rows, run_result.rows), signed=True))
    if "ablations" in tables:
        variants = ablation_variants(
            _numbers(args.dims, int),
            _numbers(args.mask_ratios, float),
            _numbers(args.future_shares, float),
            [m for m in args.leave_out.split(",") if m],
        )
        default = None
        if run_result is not None and "JEPA frozen" in run_result.rows:
            default = (run_result.rows["JEPA frozen"], run_result.predictions["JEPA frozen"])
        print(
            "\nTable III analogue: frozen heads, held-out runs, horizon averages (default: D = 32, ρ = 0.5, "
            "future_share 0.25, every modality)\n"
        )
        print(ablation_table(data, s, args.test_fraction, args.stride, variants, default))
    if "complexity" in tables:
        tiny = (
            run_result.trained["JEPA frozen"].model
            if run_result and "JEPA frozen" in run_result.trained
            else None
        )
        if tiny is None:
            torch.manual_seed(args.seed)
            tiny = build_model("jepa", {"preset": "tiny", **s.jepa}, data.context)
        baselines = {}
        for kind in ("ar", "gru", "transformer", "kalman"):
            torch.manual_seed(args.seed)
            baselines[kind] = build_model(kind, {"motion": "ctrv"} if kind == "kalman" else {}, data.context)
        print(
            f"\nTable IV analogue: parameters and CPU latency, median of {args.latency_windows} windows, "
            f"batch 1, {torch.get_num_threads()} thread(s); the paper's on an NVIDIA L4 GPU\n"
        )
        models = {"tiny": tiny, "paper": paper_preset(data)}
        print(complexity_table(models, baselines, args.latency_windows))  # type: ignore[arg-type]
    if run_result is not None:
        print()
        for line in verdicts(run_result):
            print(line)
    print(f"\nelapsed        {time.perf_counter() - tick:.0f} s")


if __name__ == "__main__":
    main()

"""The WMFM paper's Tables I–IV re-run on twin data, at a chosen scale:

    python -m learners.wmfm_experiments --scale 0.3 [--store <file>] [--pretrained <wmfm checkpoint>]
    python -m learners.wmfm_experiments --store <16x8 store> --pretrain-epochs 30 [--channel-field h]
    python -m learners.wmfm_experiments --snr-sweep --store <file>   # Fig. 11 analogue (learners.wmfm_snr)

- Table I analogue: instance retrieval top-1/2/5 (camera → channel and channel → camera) on the
  validation frames, in pools of 64 pairs (chance 1/64, 2/64, 5/64), pretrained against random
  encoders. The twin has one base station, so the paper's BS-level retrieval has no analogue here.
- Tables II–III: LoS/nLoS heads (focal loss) on the frozen pretrained encoders (WMFM), the same
  network from scratch (E2E) and the channel encoder alone (CSI-only, frozen), with per-class P/R/F1.
- Table IV: localisation (x regression, lane class, vehicle-kind class), the same three.
- Label fractions: WMFM heads trained on a seeded share of the training frames' labels (10, 20, 40,
  60, 80 %; `train.label_fraction`), scored on every validation frame.
- Time per head epoch: the optimisation steps alone (forward, backward, update), one thread.

Encoders come from `--pretrained` (default: the shipped `wmfm` checkpoint of urban_street, trained on
the same store with the same seed-0 drive split, so every head sees the drives it was pretrained on
and is validated on the held-out ones), or with `--pretrain-epochs` from a contrastive pretraining on
the store itself (its seed-0 training drives). The channel input is the store's csi (2, N, S) where it
has subcarriers, else h; `--channel-field h` takes the narrowband h (2, N, 1) on every model instead
(the comparison on one store). `--scale` sets head epochs (10 × scale, at least 2) and
seeds (5 × scale, at least 1), unless `--epochs` / `--seeds` set them; mean ± standard deviation over
seeds.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learners import wmfm_snr
from learners.checkpoint import load_checkpoint, read_config
from learners.data import VEHICLE_KINDS, DataConfig, WindowDataset, load_frames
from learners.shipped import shipped_folder
from learners.task_metrics import retrieval_topk
from learners.train import fit

STORE = "outputs/cache/urban_street-72fb8fb9c809.h5"
POOL = 64
LABEL_FRACTIONS = (0.1, 0.2, 0.4, 0.6, 0.8)  # the paper's label shares besides 100 %
PAPER = {
    "retrieval": "BS retrieval (4 BSs): channel 86.00 / 96.32 / 99.83 %, image 77.62 / 77.62 / 77.70 %",
    "los": {"WMFM": (90.65, 95.69, 3.16), "E2E": (73.01, 95.64, 277.4), "CSI-only": (82.27, 92.40, 2.52)},
    "loc": {"WMFM": (12.37, 11.52, 0.6675, 0.5627, 8.31), "E2E": (24.02, 22.88, 0.4994, 0.2262, 701.3),
            "CSI-only": (27.14, 26.27, 0.5529, 0.2922, 6.26)},
}  # fmt: skip


def retrieval(checkpoint: Path, store: str) -> dict[str, dict[int, float]]:
    loaded = load_checkpoint(checkpoint)
    frames = load_frames(store, loaded.model.inputs, loaded.preprocess)
    val = [i for i, d in enumerate(frames.drives) if d.id in loaded.config["split"]["val"]]
    if not val:  # another store than the encoders': its own seed-0 validation drives (never seen)
        val = list(frames.split(DataConfig(history=1), 0)[1])
    windows = WindowDataset(frames, val, DataConfig(history=1))
    batch = next(iter(torch.utils.data.DataLoader(windows, batch_size=len(windows))))
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(0))
    out = {}
    torch.manual_seed(0)
    random_model = type(loaded.model)(loaded.model.options, loaded.model.context)
    for name, model in (("pretrained", loaded.model), ("random", random_model)):
        model.eval()
        with torch.no_grad():
            camera, channel = model.projections(batch["inputs"])
        camera, channel = camera[order], channel[order]
        out[f"{name} camera→channel"] = retrieval_topk(camera, channel, (1, 2, 5), POOL)
        out[f"{name} channel→camera"] = retrieval_topk(channel, camera, (1, 2, 5), POOL)
    return out


def head_run(
    store: str,
    kind: str,
    variant: str,
    pretrained: Path,
    epochs: int,
    seed: int,
    fraction: float,
    frames: dict[bool, Any],
    preprocess: dict[str, Any],
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    settings: dict[str, Any] = {
        "model": kind,
        "epochs": epochs,
        "batch_size": 64,
        "seed": seed,
        "patience": epochs,
        "label_fraction": fraction,
        "data": {"history": 1},
        "preprocess": preprocess,
    }
    if variant == "E2E":
        options["freeze_encoders"] = False
    else:
        settings["init_from"] = str(pretrained)
    if variant == "CSI-only":
        options["modalities"] = ["channel"]
    settings["options"] = options
    field = preprocess.get("channel_field", "auto")
    name = f"{kind}-{variant}-s{seed}-f{fraction:g}"
    folder = Path("outputs/wmfm_experiments") / Path(store).stem / field / name
    used = frames[variant == "CSI-only"]
    result = fit(store, settings, folder, progress=False, frames=used)
    train = set(read_config(result.checkpoint)["split"]["train"])
    frames_trained = sum(d.num_frames for d in used.drives if d.id in train)
    windows = max(1, math.ceil(fraction * frames_trained))  # as WindowDataset's seeded share
    return {**result.metrics, "epoch_s": windows / result.samples_per_s}


def defined_mean(values: list[float]) -> float:
    """Mean of the values that are defined (NaN: a class absent from a seed's validation)."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--store", default=STORE)
    parser.add_argument("--pretrained", default=str(shipped_folder("urban_street", "wmfm")))
    parser.add_argument("--seeds", type=int, default=0, help="seeds; 0: 5 x scale")
    parser.add_argument("--epochs", type=int, default=0, help="head epochs; 0: 10 x scale")
    parser.add_argument(
        "--pretrain-epochs", type=int, default=0, help="pretrain on the store; 0: --pretrained"
    )
    parser.add_argument("--channel-field", default="auto", choices=("auto", "h"), help="h: the narrowband h")
    parser.add_argument("--snr-sweep", action="store_true", help="localisation error against test SNR only")
    args = parser.parse_args()
    if args.snr_sweep:
        wmfm_snr.main(["--store", args.store])
        return
    torch.set_num_threads(1)
    epochs = args.epochs or max(2, round(10 * args.scale))
    seeds = args.seeds or max(1, round(5 * args.scale))
    preprocess = {"channel_field": args.channel_field}
    start = time.perf_counter()
    pretrained = Path(args.pretrained)
    if args.pretrain_epochs:
        folder = Path("outputs/wmfm_experiments") / Path(args.store).stem / args.channel_field / "pretrained"
        pretrained = wmfm_snr.pretrain(args.store, None, args.pretrain_epochs, 0, folder, preprocess)
        took = time.perf_counter() - start
        print(f"pretrained     {pretrained} ({args.pretrain_epochs} epochs, {took:.0f} s)")
    loaded = load_checkpoint(pretrained)
    if loaded.preprocess.channel_field != args.channel_field:
        raise SystemExit(
            f"--pretrained {pretrained}: its channel_field is {loaded.preprocess.channel_field!r}, "
            f"not --channel-field {args.channel_field!r}"
        )
    frames = {
        False: load_frames(args.store, ("camera", "channel"), loaded.preprocess),
        True: load_frames(args.store, ("channel",), loaded.preprocess),
    }
    every = frames[False].drives
    los = np.concatenate([d.labels["los"] for d in every])
    kinds = np.concatenate([d.labels["kind"] for d in every])
    lanes = np.concatenate([d.labels["lane"] for d in every])
    print(
        f"store          {args.store}: {len(every)} drives, {len(los)} frames; "
        f"channel input {frames[False].shapes['channel']}; head epochs {epochs}, seeds {seeds}"
    )
    print(
        f"labels         LoS share {los.mean():.1%} (paper's O1 set: 93.5 %); lanes "
        f"{sorted(set(lanes.tolist()))}; vehicle kinds "
        + ", ".join(f"{VEHICLE_KINDS[k]} {np.mean(kinds == k):.0%}" for k in sorted(set(kinds.tolist())))
    )

    print(
        "\nTable I analogue: instance retrieval on validation frames, pools of 64 (chance 1.6 / 3.1 / 7.8 %)"
    )
    print("| encoders, direction | top-1 | top-2 | top-5 |\n|---|---|---|---|")
    for name, hits in retrieval(pretrained, args.store).items():
        print(f"| {name} | {hits[1]:.1%} | {hits[2]:.1%} | {hits[5]:.1%} |")
    print(f"paper: {PAPER['retrieval']}")

    results: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    runs = [
        (kind, variant, 1.0) for kind in ("wmfm_los", "wmfm_loc") for variant in ("WMFM", "E2E", "CSI-only")
    ]
    runs += [(kind, "WMFM", share) for kind in ("wmfm_los", "wmfm_loc") for share in LABEL_FRACTIONS]
    for seed in range(seeds):
        for kind, variant, share in runs:
            metrics = head_run(args.store, kind, variant, pretrained, epochs, seed, share, frames, preprocess)
            results.setdefault((kind, variant, share), []).append(metrics)

    def column(kind: str, variant: str, share: float, key: str, scale: float = 1.0) -> str:
        return mean_std([m[key] * scale for m in results[(kind, variant, share)]])

    print("\nTables II–III analogue: LoS/nLoS on the validation frames (mean ± std over seeds)")
    print(
        "| head | balanced accuracy | accuracy | loss | nLoS P / R / F1 | LoS P / R / F1 | s per epoch "
        "| paper: bal. acc., acc., s per epoch |\n|---|---|---|---|---|---|---|---|"
    )
    for variant in ("WMFM", "E2E", "CSI-only"):
        ms = results[("wmfm_los", variant, 1)]
        prf = {
            c: " / ".join(f"{defined_mean([m[c][k] for m in ms]):.2f}" for k in ("precision", "recall", "f1"))
            for c in ("nlos", "los")
        }
        paper = PAPER["los"][variant]
        print(
            f"| {variant} | {column('wmfm_los', variant, 1, 'balanced_accuracy')} "
            f"| {column('wmfm_los', variant, 1, 'accuracy')} | {column('wmfm_los', variant, 1, 'loss')} "
            f"| {prf['nlos']} | {prf['los']} | {column('wmfm_los', variant, 1, 'epoch_s')} "
            f"| {paper[0]} %, {paper[1]} %, {paper[2]} s |"
        )

    nlos = [round(m["samples"] * (1 - m["los_share"])) for m in results[("wmfm_los", "WMFM", 1)]]
    print(f"non-LoS frames in validation, per seed: {nlos} (balanced accuracy is LoS recall alone at 0)")

    print("\nTable IV analogue: localisation on the validation frames (mean ± std over seeds)")
    print(
        "| head | Euclidean m | x MAE m | lane accuracy | kind accuracy | x MSE | s per epoch "
        "| paper: Eucl., x MAE, y acc., z acc., s per epoch |\n|---|---|---|---|---|---|---|---|"
    )
    for variant in ("WMFM", "E2E", "CSI-only"):
        p = PAPER["loc"][variant]
        print(
            f"| {variant} | {column('wmfm_loc', variant, 1, 'euclidean_m')} "
            f"| {column('wmfm_loc', variant, 1, 'x_mae_m')} | {column('wmfm_loc', variant, 1, 'y_accuracy')} "
            f"| {column('wmfm_loc', variant, 1, 'z_accuracy')} | {column('wmfm_loc', variant, 1, 'x_mse')} "
            f"| {column('wmfm_loc', variant, 1, 'epoch_s')} | {p[0]} m, {p[1]} m, {p[2]}, {p[3]}, {p[4]} s |"
        )

    print("\nLabel fractions: WMFM heads on a seeded share of the training labels against E2E on all of them")
    print("| labels | LoS balanced accuracy | localisation Euclidean m |\n|---|---|---|")
    for share in (*LABEL_FRACTIONS, 1.0):
        print(
            f"| WMFM, {share:.0%} | {column('wmfm_los', 'WMFM', share, 'balanced_accuracy')} "
            f"| {column('wmfm_loc', 'WMFM', share, 'euclidean_m')} |"
        )
    print(
        f"| E2E, 100 % | {column('wmfm_los', 'E2E', 1, 'balanced_accuracy')} "
        f"| {column('wmfm_loc', 'E2E', 1, 'euclidean_m')} |"
    )
    print(f"\ntotal          {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

"""Localisation error against test SNR for three pretrainings (the paper's Fig. 11 analogue):

    python -m learners.wmfm_snr --store <file> [--pretrain-epochs 5] [--head-epochs 3]

Each pretraining (no channel noise; noise at a fixed 20 dB; at a fixed 10 dB, the SNR of
learners.models.wmfm_blocks.add_channel_noise) trains the camera and channel encoders with InfoNCE on
the store's training drives; a localisation head then trains on the frozen encoders with clean
channels, and is validated on the held-out drives with channel noise at each test SNR (one seeded
draw per SNR, so the same command gives the same table). Prints a Markdown table and writes a PNG.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch

from learners.checkpoint import load_checkpoint
from learners.data import DataConfig, WindowDataset, load_frames
from learners.models.wmfm_blocks import add_channel_noise
from learners.train import fit

PRETRAININGS = {"no noise": None, "20 dB": 20.0, "10 dB": 10.0}  # pretraining channel SNR
TEST_SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 20.0, 30.0, math.inf)


def pretrain(
    store: str,
    snr_db: float | None,
    epochs: int,
    seed: int,
    folder: Path,
    preprocess: dict[str, Any] | None = None,
) -> Path:
    """Contrastive pretraining only (no head) on the store's seed-`seed` training drives; `snr_db`
    None: no channel noise."""
    options: dict[str, Any] = {"pretrain_epochs": epochs, "pretrain_noise": snr_db is not None}
    if snr_db is not None:
        options.update(snr_mean_db=snr_db, snr_std_db=0.0)
    settings = {"model": "wmfm", "seed": seed, "batch_size": 64, "data": {"history": 1}, "options": options,
                "preprocess": dict(preprocess or {})}  # fmt: skip
    return fit(store, settings, folder, progress=False, head=False).checkpoint


def loc_head(store: str, pretrained: Path, epochs: int, seed: int, folder: Path) -> Path:
    settings = {
        "model": "wmfm_loc",
        "init_from": str(pretrained),
        "epochs": epochs,
        "patience": epochs,
        "batch_size": 64,
        "seed": seed,
        "data": {"history": 1},
    }
    return fit(store, settings, folder, progress=False).checkpoint


def error_against_snr(store: str, head: Path, snrs: tuple[float, ...], seed: int) -> dict[float, float]:
    """Validation Euclidean error (m) of a localisation head with the channel at each test SNR."""
    loaded = load_checkpoint(head)
    frames = load_frames(store, loaded.model.inputs, loaded.preprocess)
    val = [i for i, d in enumerate(frames.drives) if d.id in loaded.config["split"]["val"]]
    windows = WindowDataset(frames, val, DataConfig(history=1))
    batches = list(torch.utils.data.DataLoader(windows, batch_size=256))
    out = {}
    for snr in snrs:
        generator = torch.Generator().manual_seed(seed)
        noisy = []
        for batch in batches:
            inputs = dict(batch["inputs"])
            if not math.isinf(snr):
                h = inputs["channel"]
                last, _ = add_channel_noise(h[:, -1], snr, 0.0, generator)
                inputs["channel"] = torch.cat([h[:, :-1], last[:, None]], 1)
            noisy.append({**batch, "inputs": inputs})
        out[snr] = loaded.model.evaluate_task(noisy)["euclidean_m"]
    return out


def plot(curves: dict[str, dict[float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, curve in curves.items():
        finite = [s for s in curve if math.isfinite(s)]
        ax.plot(finite, [curve[s] for s in finite], marker="o", label=f"pretrained: {name}")
    ax.set_xlabel("test SNR per channel entry, dB")
    ax.set_ylabel("localisation error, m")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/wmfm_experiments/snr_sweep")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = Path(args.out)
    curves = {}
    for name, snr in PRETRAININGS.items():
        tag = "clean" if snr is None else f"{snr:.0f}dB"
        pretrained = pretrain(args.store, snr, args.pretrain_epochs, args.seed, root / f"pretrain-{tag}")
        head = loc_head(args.store, pretrained, args.head_epochs, args.seed, root / f"loc-{tag}")
        curves[name] = error_against_snr(args.store, head, TEST_SNRS_DB, args.seed)
    columns = [("noiseless" if math.isinf(s) else f"{s:.0f} dB") for s in TEST_SNRS_DB]
    print("| pretraining | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, curve in curves.items():
        print(f"| {name} | " + " | ".join(f"{curve[s]:.2f}" for s in TEST_SNRS_DB) + " |")
    png = root / "snr_sweep.png"
    plot(curves, png)
    print(f"plot           {png}")


if __name__ == "__main__":
    main()

"""RF-only JEPA on real sweeps (learners.jepa_real): windows never cross a drive, the split is by whole
drives and seeded, persistence is the last observed sweep, the power AR recovers a closed form, the
full sweep reaches the RF token, the model trains with its backbone frozen for the heads and
deterministically, a one-line error for other modalities, and on the replayed scenario-17 store (where
it exists) the whole experiment runs at a tiny scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from learners.jepa_real import (
    DEFAULT_STORE,
    HISTORY,
    HORIZONS,
    Experiment,
    Scale,
    SweepWindows,
    fit_heads,
    persistence,
    power_ar,
    predict,
    pretrain,
    run,
    split_drives,
    sweep_jepa,
    windows,
)
from twin.errors import ConfigError

K = 8


def moving_peak(frames: int, seed: int) -> np.ndarray:
    """(frames, K) dBm: a peak drifting across the beams over a noisy floor."""
    rng = np.random.default_rng(seed)
    beams = np.arange(K)
    centre = (np.arange(frames) * 0.3 + seed) % K
    return (
        -90 + 20 * np.exp(-((beams[None] - centre[:, None]) ** 2)) + rng.normal(0, 0.5, (frames, K))
    ).astype(np.float32)


DRIVES = {f"d{i}": moving_peak(n, i) for i, n in enumerate((40, 30, 25, 5))}


def test_windows_are_consecutive_frames_of_one_drive() -> None:
    w = windows(DRIVES, ["d1", "d3"])
    assert w.shape == (30 - 12, HISTORY + HORIZONS, K)  # d3 is shorter than a window
    assert np.array_equal(w[0], DRIVES["d1"][:13]) and np.array_equal(w[-1], DRIVES["d1"][-13:])
    assert len(windows(DRIVES, ["d0"], stride=4)) == len(range(0, 40 - 12, 4))


def test_the_split_is_by_whole_drives_and_seeded() -> None:
    train, test = split_drives(list(DRIVES), 0.25, 3)
    assert sorted(train + test) == sorted(DRIVES) and not set(train) & set(test) and len(test) == 1
    assert split_drives(list(DRIVES), 0.25, 3) == (train, test)
    with pytest.raises(Exception, match="at least 2"):
        split_drives(["d0"], 0.5, 0)


def test_persistence_is_the_last_observed_sweep() -> None:
    w = windows(DRIVES, ["d0"])
    p = persistence(w)
    last = w[:, HISTORY - 1]
    for h in range(HORIZONS):
        assert np.array_equal(p.ranked[:, h, 0], last.argmax(-1))
        assert np.array_equal(p.power_db[:, h], last.max(-1))
        assert set(p.ranked[0, h]) == set(np.argsort(-last[0])[:3])


def test_the_power_ar_recovers_a_linear_rule() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(-80, 3, (64, HISTORY + HORIZONS, K)).astype(np.float32)
    last = w[:, HISTORY - 1].max(-1)
    for h in range(HORIZONS):  # the best power of t+τ is that of t plus τ dB on beam 0
        w[:, HISTORY + h] = -200.0
        w[:, HISTORY + h, 0] = last + h + 1
    assert np.allclose(power_ar(w, w), last[:, None] + np.arange(1, HORIZONS + 1), atol=1e-3)


def test_the_rf_token_reads_the_full_sweep() -> None:
    data = SweepWindows(windows(DRIVES, ["d0"]), Scale(-85.0, 5.0))
    model = sweep_jepa(K)
    model.eval()
    batch = data[0]
    inputs, masks = (
        {k: v[None] for k, v in batch["inputs"].items()},
        {k: v[None] for k, v in batch["masks"].items()},
    )
    before = model.heads(inputs, masks)["beam"]
    weakest = int(inputs["beams"][0, -1].argmin())  # not the served (best) beam of a sparse sweep
    inputs["beams"] = inputs["beams"].clone()
    inputs["beams"][0, :, weakest] += 3.0
    assert not torch.allclose(before, model.heads(inputs, masks)["beam"])


def test_other_modalities_are_one_line_errors() -> None:
    from learners.jepa_real import SweepJEPA, context_of
    from learners.models.registry import model_options

    with pytest.raises(
        ConfigError, match=r"^modalities = \['gps', 'beams'\]: SweepJEPA reads only \['beams'\]$"
    ):
        SweepJEPA(model_options("jepa", {"modalities": ["gps", "beams"]}), context_of(K))


def _train_once() -> tuple[list[float], list[float], np.ndarray, bool]:
    torch.manual_seed(0)
    w = windows(DRIVES, ["d0", "d1"])
    scale = Scale.of(w)
    data = SweepWindows(w, scale)
    model = sweep_jepa(K)
    pre = pretrain(model, data, 2, 16, 0)
    backbone = {n: p.clone() for n, p in model.named_parameters() if n.startswith(model.backbone_prefixes())}
    heads = fit_heads(model, data, 3, 3e-3, 16, 0, model.backbone_prefixes())
    unchanged = all(torch.equal(p, backbone[n]) for n, p in model.named_parameters() if n in backbone)
    return pre, heads, predict(model, data, scale).power_db, unchanged


def test_the_model_trains_on_a_frozen_backbone_and_is_deterministic() -> None:
    pre, heads, power, frozen = _train_once()
    assert all(np.isfinite(pre)) and heads[-1] < heads[0] and frozen
    assert power.shape[1] == HORIZONS and np.isfinite(power).all()
    again = _train_once()
    assert again[0] == pre and again[1] == heads and np.array_equal(again[2], power)


@pytest.mark.skipif(not Path(DEFAULT_STORE).is_file(), reason=f"{DEFAULT_STORE} not replayed here")
def test_the_experiment_runs_on_the_replayed_scenario_17_store() -> None:
    small = Experiment(stride=64, pretrain_epochs=1, head_epochs=1, baseline_epochs=1, batch_size=32)
    results = run(small, log=lambda line: None)
    assert {"persistence", "JEPA heads (RF only, frozen)", "gru (beam history)"} <= set(results)
    assert all(len(rows) == HORIZONS for rows in results.values())
    assert 0 < results["persistence"][0]["top1"] <= results["persistence"][0]["top3"] <= 1

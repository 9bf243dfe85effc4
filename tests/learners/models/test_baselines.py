"""Sequence and position baselines: shapes, masks, the Kalman filter against exact tracks, and
learning (each trainable baseline overfits a small batch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learners.losses import focal_loss
from learners.models.registry import ModelContext, build_model
from learners.preprocess import PreprocessConfig, position_features
from twin.store.deployment import Deployment

K = 64
BS = (0.0, -9.0, 2.5)


def context(history: int = 5, future: int = 1, gps_source: str = "gps") -> ModelContext:
    deployment = Deployment(num_beams=K, angles_deg=tuple(np.linspace(-45, 45, K)), frame_rate_hz=10.0,
                            noise_power_dbm=-87.0, bs_position_m=BS, bs_yaw_deg=90.0,
                            sensors={"gps": {"noise_m": 0.5}})  # fmt: skip
    return ModelContext(
        K, history, future, {"gps": (4,)}, deployment, PreprocessConfig(gps_source=gps_source)
    )


def rf_batch(beams: list[list[int]], mask: list[list[bool]] | None = None) -> tuple[dict, dict]:
    b = torch.tensor(beams)
    m = torch.ones_like(b, dtype=torch.bool) if mask is None else torch.tensor(mask)
    return {"beams": b, "beam_rsrp": torch.ones(b.shape)}, {"beams": m}


def geometric_beam(xy: np.ndarray, height: float = 1.6) -> int:
    d = np.array([xy[0] - BS[0], xy[1] - BS[1], height - BS[2]])
    theta = math.degrees(math.asin(-d[0] / np.linalg.norm(d)))  # array axis is -x for yaw 90°
    return int(np.argmin(np.abs(np.linspace(-45, 45, K) - theta)))


def gps_window(track: np.ndarray) -> tuple[dict, dict]:
    config = context().preprocess
    deployment = context().deployment
    features = np.stack([position_features(p, deployment, config) for p in track])
    return {"gps": torch.tensor(features)[None]}, {"gps": torch.ones(1, len(track), dtype=torch.bool)}


@pytest.mark.parametrize("kind", ["gru", "transformer", "ar"])
def test_beam_history_models_give_finite_logits_without_any_history(kind: str) -> None:
    model = build_model(kind, {}, context(future=3)).eval()
    inputs, masks = rf_batch([[0] * 5, [10, 11, 12, 13, 14]], [[False] * 5, [True] * 5])
    logits = model(inputs, masks)
    assert logits.shape == (2, 3, K) and torch.isfinite(logits).all()


def test_autoregressive_model_starts_as_last_beam_and_holds_it_through_gaps() -> None:
    model = build_model("ar", {"order": 2}, context(future=2)).eval()
    inputs, masks = rf_batch([[20, 22, 24, 0, 0]], [[True, True, True, False, False]])
    logits = model(inputs, masks)
    assert logits[0].argmax(-1).tolist() == [24, 24]  # persistence before training
    with torch.no_grad():
        model.coefficients[:] = torch.tensor([1.0, 0.0])  # b_t = b_{t-1} + (b_{t-1} - b_{t-2})
    inputs, masks = rf_batch([[20, 22, 24, 26, 28]])
    assert model(inputs, masks)[0].argmax(-1).tolist() == [30, 32]  # rolled forward


def test_kalman_points_at_a_car_driving_straight_and_predicts_ahead() -> None:
    model = build_model("kalman", {"motion": "cv", "gps_noise_m": 0.01}, context(history=8, future=5)).eval()
    t = np.arange(8) * 0.1
    track = np.stack([-20 + 12 * t, np.full(8, 3.25)], 1)  # 12 m/s along +x in the far lane
    logits = model(*gps_window(track))
    for f in range(5):
        future = np.array([-20 + 12 * (0.7 + 0.1 * f), 3.25])
        assert abs(int(logits[0, f].argmax()) - geometric_beam(future)) <= 1


def test_kalman_ignores_repeated_fixes_between_gps_updates() -> None:
    model = build_model("kalman", {"motion": "cv", "gps_noise_m": 0.01}, context(history=8)).eval()
    t = np.arange(8) * 0.1
    fresh = np.stack([-10 + 15 * t, np.full(8, -3.25)], 1)
    held = fresh.copy()
    held[1::2] = held[0::2]  # a 5 Hz receiver at 10 Hz frames repeats every other fix
    state, _, seen = model.track(*[d["gps"] for d in gps_window(held)])
    assert bool(seen[0])
    # Frame 7 repeats frame 6's fix: the filter predicts on from frame 6 at the estimated speed.
    assert float(state[0, 2]) == pytest.approx(15.0, abs=0.5)  # vx
    assert float(state[0, 0]) == pytest.approx(fresh[7, 0] - BS[0], abs=0.3)


def test_ctrv_follows_a_turn_better_than_constant_velocity() -> None:
    t = np.arange(10) * 0.1
    radius, rate = 15.0, 0.8  # rad/s
    track = np.stack([radius * np.sin(rate * t) - 10, 10 - radius * np.cos(rate * t)], 1)
    errors = {}
    for motion in ("cv", "ctrv"):
        model = build_model("kalman", {"motion": motion, "gps_noise_m": 0.01}, context(history=10, future=6))
        state, cov, _ = model.track(*[d["gps"] for d in gps_window(track)])
        for _ in range(5):  # predict 0.5 s ahead
            state, cov = model._predict(state, cov)
        truth = np.array([radius * np.sin(rate * 1.4) - 10, 10 - radius * np.cos(rate * 1.4)]) - BS[:2]
        errors[motion] = float(np.linalg.norm(state[0, :2].numpy() - truth))
    assert errors["ctrv"] < 0.5 < errors["cv"]


def test_kalman_without_any_fix_is_flat() -> None:
    model = build_model("kalman", {}, context()).eval()
    logits = model({"gps": torch.zeros(1, 5, 4)}, {"gps": torch.zeros(1, 5, dtype=torch.bool)})
    assert torch.equal(logits, torch.zeros_like(logits))
    assert not model.trainable


def test_position_mlp_reads_only_the_latest_fix_by_default() -> None:
    model = build_model("mlp", {}, context()).eval()
    inputs = {"gps": torch.randn(2, 5, 4)}
    masks = {"gps": torch.ones(2, 5, dtype=torch.bool)}
    changed = {"gps": inputs["gps"].clone()}
    changed["gps"][:, :4] = 0
    assert torch.equal(model(inputs, masks), model(changed, masks))


@pytest.mark.parametrize("kind", ["gru", "transformer", "ar", "mlp"])
def test_trainable_baselines_overfit_a_small_batch(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model(kind, {}, context())
    generator = torch.Generator().manual_seed(1)
    start = torch.randint(5, 55, (8,), generator=generator)
    beams = start[:, None] + torch.arange(5)  # each sample sweeps one beam per frame
    target = (start + 5)[:, None]  # ... and continues
    inputs, masks = rf_batch(beams.tolist())
    inputs["gps"] = torch.randn(8, 5, 4, generator=generator)
    masks["gps"] = torch.ones(8, 5, dtype=torch.bool)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-2 if kind == "ar" else 5e-3)
    for _ in range(150):
        loss = focal_loss(model(inputs, masks), target, gamma=0.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    assert (model(inputs, masks).argmax(-1) == target).float().mean() == 1.0

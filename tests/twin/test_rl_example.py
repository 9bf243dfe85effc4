"""The RL example trains an off-the-shelf agent through standard observation wrappers (tiny run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from twin.benchmarks.synthetic import synthetic_store

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("stable_baselines3") is None,
    reason="stable-baselines3 is not installed (optional: pip install stable-baselines3)",
)


def test_dqn_trains_on_the_environment_and_is_scored(tmp_path: Path) -> None:
    from twin.examples.train_rl import make_env, score, train

    store = synthetic_store(tmp_path / "s.h5", drives=2, frames=20, sensors=("gps",))
    env = make_env(store)
    assert env.observation_space.shape == (1 + 1 + 2 + 2,)  # beam, rsrp, mask (rsrp, gps), gps
    model, env = train(store, "dqn", steps=300, seed=0, faults={"blockage": {"rate_per_s": 0.5}})
    result = score(env, lambda obs, _: int(model.predict(obs, deterministic=True)[0]), episodes=2)
    assert np.isfinite(result["rate"]) and result["snr_loss_db"] >= 0

"""Learned policies in the lockstep loop: the records of the single-drive reference for every model
(one forward pass per frame for all drives), with probing, faults and drives of different lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from learners.closed_loop import run_closed_loop
from learners.models.registry import MODELS
from learners.policy import load_policy
from learners.train import fit, model_inputs, train_config
from tests.twin.loop.test_lockstep import FAULTS, LENGTHS, assert_same
from twin.benchmarks.synthetic import synthetic_store
from twin.loop.env import BeamSelectionEnv
from twin.loop.lockstep import EnvLanes, rollout_batch
from twin.loop.rollout import rollout
from twin.modalities import SENSOR_MODALITIES
from twin.scenario.faults import faults_from

IMAGES = {"camera", "lidar", "radar"}
SENSOR_FAULTS = faults_from(
    {
        "blockage": {"rate_per_s": 1.0},
        "dropout": {"camera": {"probability": 0.4}, "radar": {"probability": 0.3, "mode": "noisy"}},
    }
)


@pytest.fixture(scope="module")
def varied_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Drives of different lengths (no radar configuration: for the models without image inputs)."""
    return synthetic_store(tmp_path_factory.mktemp("varied") / "s.h5", drives=len(LENGTHS), frames=LENGTHS)


@pytest.mark.parametrize("kind", list(MODELS))
def test_lockstep_gives_the_single_drive_records_for_every_model(
    kind: str, varied_store: Path, tiny_store: Path, tmp_path: Path
) -> None:
    images = IMAGES & set(model_inputs(train_config({"model": kind}))[3])
    store, faults = (tiny_store, SENSOR_FAULTS) if images else (varied_store, FAULTS)
    config = {"model": kind, "epochs": 1, "batch_size": 16}
    checkpoint = fit(store, config, tmp_path / kind, progress=False).checkpoint
    batch_sizes: list[int] = []
    for probe in (0, 3):
        policy = load_policy(checkpoint, probe=probe)
        env = BeamSelectionEnv(store, modalities=sorted(policy.reads(SENSOR_MODALITIES)))
        forward = policy.model.forward

        def counted(inputs, masks, forward=forward):  # type: ignore[no-untyped-def]
            batch_sizes.append(next(iter(masks.values())).shape[0])
            return forward(inputs, masks)

        policy.model.forward = counted  # type: ignore[method-assign]
        batch_sizes.clear()
        single = [rollout(env, policy, drive, faults, 2) for drive in env.drives]
        assert set(batch_sizes) == {1}
        batch_sizes.clear()
        batched = rollout_batch(EnvLanes(env), policy, env.drives, faults, 2)
        assert_same(single, batched, f"{kind} probe {probe}")
        # One forward pass per frame for every drive still driving.
        lengths = [d.num_frames for d in env.drives]
        assert batch_sizes == [sum(n > t for n in lengths) for t in range(max(lengths))]


def test_closed_loop_scores_are_those_of_the_drives_one_by_one(varied_store: Path, tmp_path: Path) -> None:
    checkpoint = fit(varied_store, {"model": "gru", "epochs": 1}, tmp_path / "gru", progress=False).checkpoint
    result = run_closed_loop(varied_store, load_policy(checkpoint), faults=FAULTS, seeds=(0, 1))
    policy = load_policy(checkpoint)
    env = BeamSelectionEnv(varied_store, modalities=[])
    served = np.concatenate(
        [rollout(env, policy, d, FAULTS, seed).ranked[:, 0] for seed in (0, 1) for d in env.drives]
    )
    oracle = np.concatenate(
        [rollout(env, policy, d, FAULTS, seed).oracle for seed in (0, 1) for d in env.drives]
    )
    assert result.frames == 2 * sum(LENGTHS) == len(result.latencies_s)
    assert result.metrics["top1"] == pytest.approx(np.mean(served == oracle), abs=1e-12)

"""executor=ray closed loop: the units of work (policy, condition, seed, drive batch) as Ray tasks
give the numbers and the results.csv of the local evaluation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.twin.loop.test_evaluate import POLICIES, SCENARIO_FAULTS
from twin.benchmarks.synthetic import synthetic_store
from twin.executor import RayConfig, RayExecutor
from twin.loop.evaluate import evaluate, evaluation_from
from twin.report import write_report


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_store(tmp_path_factory.mktemp("ray-evaluate") / "s.h5", drives=4, frames=30)


@pytest.fixture(scope="module")
def config():  # type: ignore[no-untyped-def]
    return evaluation_from(
        {
            "seeds": [0, 1],
            "blockage_rates_per_s": [0.5],
            "dropout_probabilities": [0.5],
            "dropout_modalities": ["camera", "gps"],
            "bootstrap": 200,
            "plots": False,
            "snapshot": False,
            "workers": 1,
        }
    )


@pytest.mark.parametrize("drives_per_task", [0, 3])
def test_ray_evaluation_gives_the_local_results(  # type: ignore[no-untyped-def]
    local_ray, store: Path, config, tmp_path: Path, drives_per_task: int
) -> None:
    local = evaluate(store, SCENARIO_FAULTS, config, POLICIES, progress=False)
    batched = dataclasses.replace(config, drives_per_task=drives_per_task)
    remote = evaluate(
        store, SCENARIO_FAULTS, batched, POLICIES, progress=False, executor=RayExecutor(RayConfig())
    )
    assert remote.rows == local.rows and remote.steps == local.steps
    assert remote.frames.keys() == local.frames.keys()
    for key, arrays in local.frames.items():
        for name, values in arrays.items():
            np.testing.assert_array_equal(values, remote.frames[key][name], err_msg=f"{key} {name}")
    write_report(local, tmp_path / "local", "synthetic")
    write_report(remote, tmp_path / "ray", "synthetic")
    csv = (tmp_path / "local" / "results.csv").read_bytes()
    assert csv and csv == (tmp_path / "ray" / "results.csv").read_bytes()

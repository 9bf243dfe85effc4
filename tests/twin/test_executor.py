"""The executors: local and Ray behind one map, results by item whatever finishes first, a failed Ray
task retried and then reported in one line naming its unit, and `executor`/`ray` values checked."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from tests.twin.test_cli import assert_refused, run_generate
from twin.errors import ConfigError, TaskError
from twin.executor import (
    RAY_MISSING,
    LocalExecutor,
    RayConfig,
    RayExecutor,
    _check_reachable,
    executor_config,
    make_executor,
)


@pytest.fixture
def ray_here(local_ray):  # type: ignore[no-untyped-def]
    """The local Ray, with this module's functions sent by value (pytest imports it under a name the
    Ray workers cannot import)."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return local_ray


def square_later(x: int) -> int:
    time.sleep(0.05 * (3 - x % 3))  # later items finish first
    return x * x


def crash_first_attempt(fn, marker: str, item):  # type: ignore[no-untyped-def]
    """`fn(item)`, except that the first call anywhere (the marker file says) kills its worker."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return fn(item)
    os._exit(1)  # the process dies mid-task, as on a killed or lost node


def always_fails(x: int) -> int:
    raise ValueError(f"no luck with {x}")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("executor=spark", "executor = 'spark': expected one of 'local', 'ray'"),
        ("ray.max_retries=-1", "ray.max_retries = -1: expected a value in [0, 100]"),
        ("ray.adress=auto", "ray.adress: unknown key; allowed keys: address, num_cpus, cpus_per_task"),
    ],
)
def test_bad_executor_values_are_refused_in_one_line(
    override: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert_refused(run_generate(monkeypatch, capsys, tmp_path, "scenario=tiny", override), expected, tmp_path)


def test_the_default_is_local_and_ray_without_ray_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert executor_config({}).kind == "local" and isinstance(make_executor(None), LocalExecutor)
    config = executor_config({"executor": "ray", "ray": {"address": "auto", "max_retries": 1}})
    assert config.ray == RayConfig(address="auto", max_retries=1)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(ConfigError) as refused:
        make_executor(config)
    assert str(refused.value) == RAY_MISSING == "executor=ray needs Ray: pip install -e '.[ray]'"


@pytest.mark.parametrize("processes", [1, 2])
def test_local_results_come_tagged_by_item(processes: int) -> None:
    items = list(range(6))
    results = LocalExecutor().map(square_later, items, [f"item {i}" for i in items], processes=processes)
    assert sorted(results) == [(i, i * i) for i in items]


def test_ray_results_come_tagged_by_item(ray_here) -> None:  # type: ignore[no-untyped-def]
    items = list(range(6))
    with RayExecutor(RayConfig()) as executor:
        assert sorted(executor.map(square_later, items, [f"item {i}" for i in items])) == [
            (i, i * i) for i in items
        ]
    assert ray_here.is_initialized()  # a Ray it did not start is left running


def test_a_ray_task_killed_once_is_retried_and_succeeds(ray_here, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fn = partial(crash_first_attempt, square_later, str(tmp_path / "crashed"))
    results = RayExecutor(RayConfig(max_retries=1)).map(fn, [1, 2, 3], ["run 1", "run 2", "run 3"])
    assert sorted(results) == [(0, 1), (1, 4), (2, 9)]
    assert (tmp_path / "crashed").exists()  # one attempt did die


def test_a_ray_task_that_always_fails_is_reported_in_one_line(ray_here) -> None:  # type: ignore[no-untyped-def]
    executor = RayExecutor(RayConfig(max_retries=1))
    with pytest.raises(TaskError) as failed:
        list(executor.map(always_fails, [7], ["run 7"]))
    assert str(failed.value) == "run 7 failed on Ray after 2 attempts: ValueError: no luck with 7"


def test_an_address_where_no_ray_answers_is_one_line_in_seconds() -> None:
    with pytest.raises(ConfigError) as refused:
        _check_reachable("127.0.0.1:1")  # Ray's own connect would retry for minutes
    assert str(refused.value).startswith("ray.address = '127.0.0.1:1': no Ray head answers there")
    _check_reachable("auto")  # left to Ray

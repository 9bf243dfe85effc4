"""executor=ray generation: the runs as Ray tasks write the very store a local generation writes, a
run whose worker dies mid-task is traced again, and a worker running other code refuses its run."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from tests.twin.dataset.test_view import _arrays
from twin.dataset.generation import generate
from twin.dataset.parallel import RunTask, trace_run
from twin.errors import TaskError
from twin.executor import RayConfig, RayExecutor
from twin.scenario.config import ScenarioConfig


def _attributes(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with h5py.File(path, "r") as f:
        out["/"] = dict(f.attrs)
        f.visititems(lambda name, obj: out.__setitem__(name, dict(obj.attrs)))
    return out


def assert_same_store(expected: Path, actual: Path) -> None:
    """Every dataset and every attribute of the two stores equal, bit for bit."""
    assert expected.name == actual.name  # same config and code: same cache key
    one, two = _arrays(expected), _arrays(actual)
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)
    attrs_one, attrs_two = _attributes(expected), _attributes(actual)
    assert attrs_one.keys() == attrs_two.keys()
    for name, attrs in attrs_one.items():
        assert attrs.keys() == attrs_two[name].keys(), name
        for key, value in attrs.items():
            np.testing.assert_array_equal(value, attrs_two[name][key], err_msg=f"{name}.{key}")


def _killed_first(fn: Callable[[Any], Any], marker: str, item: Any) -> Any:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return fn(item)
    os._exit(1)  # the first attempt of one run dies mid-task, as on a lost node


class KilledOnce(RayExecutor):
    """Ray tasks of which the first one to start dies once."""

    def __init__(self, config: RayConfig, marker: Path):
        super().__init__(config)
        self.marker = marker

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], labels: Sequence[str], **kw: Any
    ) -> Iterator:
        return super().map(partial(_killed_first, fn, str(self.marker)), items, labels, **kw)


def test_ray_generation_writes_the_store_of_a_local_generation(  # type: ignore[no-untyped-def]
    local_ray, tiny: ScenarioConfig, tiny_store: Path, tmp_path: Path
) -> None:
    path, stats = generate(tiny, tmp_path, progress=False, executor=RayExecutor(RayConfig()))
    assert stats.frames > 0 and not path.with_name(path.name + ".parts").exists()
    assert_same_store(tiny_store, path)


def test_a_run_killed_mid_task_is_traced_again_and_the_store_is_whole(  # type: ignore[no-untyped-def]
    local_ray, tiny: ScenarioConfig, tiny_store: Path, tmp_path: Path
) -> None:
    import ray.cloudpickle  # pytest imports this module under a name the Ray workers cannot import

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = KilledOnce(RayConfig(max_retries=1), tmp_path / "killed")
    path, _ = generate(tiny, tmp_path / "cache", progress=False, executor=executor)
    assert (tmp_path / "killed").exists()
    assert_same_store(tiny_store, path)


def test_a_worker_running_other_code_refuses_its_run(tiny: ScenarioConfig, tmp_path: Path) -> None:
    task = RunTask(tiny, 0, {}, 0, tmp_path, code="the digest of another checkout")
    with pytest.raises(TaskError, match=r"^run 0: this worker \(.*\) runs other twin code"):
        trace_run(task)
    assert list(tmp_path.iterdir()) == []  # refused before anything is traced or written

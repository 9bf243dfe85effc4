"""Generation's unit of work: one traffic run, traced and rendered in a scene of the worker's own (one
per building layout, built once per worker process) and written to the run's own atomic part file, so
resuming and the store are the same whichever process or host ran it (twin.executor: here, local
worker processes or Ray tasks). Local workers are spawned, not forked: Dr.Jit's and LLVM's thread
pools do not survive a fork."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from twin.dataset.digest import process_code_digest
from twin.dataset.simulator import DriveSimulator, layout_config
from twin.errors import TaskError
from twin.scenario.config import ScenarioConfig, config_digest
from twin.store import Episode, write_part
from twin.trace.scene import load_vehicle_models
from twin.trace.traffic import make_run

# Below this many frames, starting a second process (importing Sionna, building a scene, compiling
# its kernels: seconds) costs more than it saves.
MIN_FRAMES_PER_EXTRA_WORKER = 400


@dataclass(frozen=True)
class RunTask:
    config: ScenarioConfig
    layout: int
    pool: dict[str, int]  # vehicle objects per kind of the layout's scene
    run: int
    parts: Path  # the store's part folder (twin.store.parts_folder): trace_run writes the run there
    code: str = ""  # the generating process's code digest: a worker running other code refuses the run


@dataclass(frozen=True)
class RunDone:
    """What a finished run reports back (its episodes are in its part file)."""

    run: int
    solver_seconds: float
    sensor_seconds: dict[str, float]


@dataclass
class RunResult:
    run: int
    episodes: list[Episode]
    shared: dict[str, np.ndarray]
    solver_seconds: float
    sensor_seconds: dict[str, float]


def automatic_workers(frames: int) -> int:
    """One process per two cores: Dr.Jit's LLVM backend already runs each Sionna call on two threads
    (measured on 2 cores: two processes trace no faster than one), up to what the frames pay for."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores // 2, 1 + frames // MIN_FRAMES_PER_EXTRA_WORKER))


_SIMULATORS: dict[tuple[str, int], DriveSimulator] = {}  # per process: one scene per layout


def _simulator(task: RunTask) -> DriveSimulator:
    key = (config_digest(task.config), task.layout)
    if key not in _SIMULATORS:
        _SIMULATORS[key] = DriveSimulator(layout_config(task.config, task.layout), task.pool)
    return _SIMULATORS[key]


def simulate_run(task: RunTask, progress: tqdm | None = None) -> RunResult:
    """Trace and render one run (its drives) in this process's scene of the run's layout."""
    simulator = _simulator(task)
    sizes = {kind: model.size_m for kind, model in load_vehicle_models(task.config).items()}
    run = make_run(task.config, task.run, sizes)
    solver, sensors = simulator.tracer.timer.solver_s, dict(simulator.sensor_seconds)
    episodes, shared = simulator.simulate(run, progress)
    return RunResult(
        run=task.run,
        episodes=episodes,
        shared=shared,
        solver_seconds=simulator.tracer.timer.solver_s - solver,
        sensor_seconds={k: v - sensors.get(k, 0.0) for k, v in simulator.sensor_seconds.items()},
    )


def trace_run(task: RunTask, progress: tqdm | None = None) -> RunDone:
    """Simulate one run (simulate_run) and write its part file into `task.parts`."""
    if task.code and task.code != process_code_digest():
        raise TaskError(
            f"run {task.run}: this worker ({os.uname().nodename}) runs other twin code than the generating "
            "process (code digest differs); install the same version of the project on every node"
        )
    result = simulate_run(task, progress)
    write_part(task.parts, result.run, result.episodes, result.shared)
    return RunDone(result.run, result.solver_seconds, result.sensor_seconds)


def release_scenes() -> None:
    """Let this process's scenes go (they hold a lot of memory) once a generation is done."""
    _SIMULATORS.clear()

"""Generation across local processes: each worker traces whole runs in a scene of its own (one per
building layout, built once per worker) and sends their episodes back; the parent writes every run's
part file, so resuming and the store are exactly as with one process. Workers are spawned, not
forked: Dr.Jit's and LLVM's thread pools do not survive a fork."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from twin.dataset.simulator import DriveSimulator, layout_config
from twin.scenario.config import ScenarioConfig, config_digest
from twin.store import Episode
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


def simulated_runs(
    tasks: Sequence[RunTask], workers: int, progress: tqdm | None = None
) -> Iterator[RunResult]:
    """The runs of `tasks` simulated by `workers` processes (1: here, with frame-level progress), in
    the order they finish."""
    try:
        if workers <= 1:
            for task in tasks:
                yield simulate_run(task, progress)
            return
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            yield from pool.imap_unordered(simulate_run, tasks, chunksize=1)
    finally:
        _SIMULATORS.clear()  # scenes hold a lot of memory: let them go with the generation

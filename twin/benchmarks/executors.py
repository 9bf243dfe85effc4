"""Local versus Ray: `python -m twin.benchmarks.executors [--scenario urban_street] [--drives 8]`.

Traces the same drives (every sensor on) with 1 and 2 local worker processes and as Ray tasks on a
Ray started here with 1 and 2 CPUs (after a warm-up, so each worker has imported Sionna, built its
scene and loaded its kernels), times the closed loop of the classical policies locally and on Ray,
measures Ray's start and its per-task overhead, and prints the sizing table of the README: the CPU
time one frame costs here, and the hours a sweep of so many frames takes on a cluster of so many cores
(assuming the runs spread evenly, which they do once there are several runs per core).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import tempfile
import time

from twin.cli import SCENARIO_DIR
from twin.dataset.generation import GenerationStats, generate
from twin.executor import Executor, LocalExecutor, RayConfig, RayExecutor
from twin.loop.evaluate import evaluate, evaluation_from
from twin.scenario.config import ScenarioConfig, load_scenario

POLICIES = ["genie", "exhaustive", "hierarchical", "tracking", "gps", "stale", "random"]
SWEEP_FRAMES = (100_000, 1_000_000, 10_000_000)
CLUSTER_CORES = (2, 32, 128, 512)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # spawned workers, once reaped
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _with_drives(config: ScenarioConfig, drives: int) -> ScenarioConfig:
    return dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, drives=drives))


def timed_generation(
    config: ScenarioConfig, executor: Executor, workers: int
) -> tuple[GenerationStats, float]:
    """A fresh generation of `config` (its own cache folder): stats, and CPU seconds of this process
    and its local workers (Ray's workers are not counted)."""
    with tempfile.TemporaryDirectory() as cache:
        cpu = _cpu_seconds()
        _, stats = generate(config, cache, progress=False, workers=workers, executor=executor)
        return stats, _cpu_seconds() - cpu


def _duration(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:,.1f} h"


def _noop(x: int) -> int:
    return x


def task_overhead_ms(executor: Executor, tasks: int = 200) -> float:
    start = time.perf_counter()
    for _ in executor.map(_noop, list(range(tasks)), [f"task {i}" for i in range(tasks)]):
        pass
    return 1000 * (time.perf_counter() - start) / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="urban_street")
    parser.add_argument("--drives", type=int, default=8, help="drives each configuration traces")
    args = parser.parse_args()
    import ray  # the benchmark needs Ray: pip install -e ".[ray]"

    base = load_scenario(SCENARIO_DIR / f"{args.scenario}.yaml")
    config = _with_drives(base, args.drives)
    warmup = dataclasses.replace(  # other drives: compiles kernels, and on Ray starts the workers
        base, seed=base.seed + 1000, dataset=dataclasses.replace(base.dataset, drives=2, frames_per_drive=20)
    )
    local = LocalExecutor()
    generate(warmup, tempfile.mkdtemp(), progress=False, workers=1)  # this process's kernels
    rows = []
    stats, cpu = timed_generation(config, local, 1)
    rows.append(("local, 1 process", stats))
    cpu_per_frame = cpu / stats.frames
    cpu_per_scene_frame = cpu / stats.steps
    stats, _ = timed_generation(config, local, 2)
    rows.append(("local, 2 processes (spawned cold)", stats))

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    ray_start_s = time.perf_counter() - start
    with RayExecutor(RayConfig()) as on_ray:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as cache:  # each worker imports Sionna and builds its scenes
            generate(warmup, cache, progress=False, executor=on_ray)
        cold_s = time.perf_counter() - start
        overhead_ms = task_overhead_ms(on_ray)
        stats, _ = timed_generation(config, RayExecutor(RayConfig(cpus_per_task=2)), 0)
        rows.append(("Ray, 1 task at a time (2 CPUs each)", stats))
        stats, _ = timed_generation(config, on_ray, 0)
        rows.append(("Ray, 2 tasks at a time (1 CPU each)", stats))

        with tempfile.TemporaryDirectory() as cache:
            store, _ = generate(config, cache, progress=False, workers=1)
            evaluation = evaluation_from({"snapshot": False, "plots": False, "workers": 1})
            loop = {}
            for name, executor in (("local, 1 process", local), ("Ray, 2 CPUs", on_ray)):
                start = time.perf_counter()
                result = evaluate(store, base.faults, evaluation, POLICIES, progress=False, executor=executor)
                loop[name] = (time.perf_counter() - start, result.steps)
    ray.shutdown()

    traced = rows[0][1]
    print(f"scenario                 {config.name}: {traced.frames} frames ({traced.steps} scene frames)")
    print(f"cpu cores                {len(os.sched_getaffinity(0))}")
    print(
        f"CPU time per frame       {cpu_per_frame:.3f} s ({cpu_per_scene_frame:.3f} s per scene frame), local"
    )
    print("tracing throughput (warm workers):")
    for name, stats in rows:
        print(f"  {name:36s} {stats.frames_per_second:6.1f} frames/s ({stats.seconds:.1f} s)")
    print(f"Ray start (2 CPUs)       {ray_start_s:.1f} s; first runs on cold workers {cold_s:.1f} s")
    print(f"Ray per-task overhead    {overhead_ms:.2f} ms (no-op tasks)")
    for name, (seconds, steps) in loop.items():
        print(f"closed loop, {name:12s} {seconds:.1f} s ({steps / seconds:,.0f} steps/s, {steps:,} steps)")
    print()
    print(f"sizing: time to trace, at {cpu_per_frame:.3f} CPU-seconds per frame, by cluster cores")
    print("| frames | " + " | ".join(f"{c} cores" for c in CLUSTER_CORES) + " |")
    print("|---:|" + "---:|" * len(CLUSTER_CORES))
    for frames in SWEEP_FRAMES:
        hours = [frames * cpu_per_frame / cores / 3600 for cores in CLUSTER_CORES]
        print(f"| {frames:,} | " + " | ".join(_duration(h) for h in hours) + " |")


if __name__ == "__main__":
    main()

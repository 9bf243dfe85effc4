"""Channel-generation throughput: `python -m twin.benchmarks.channels [--scenario urban_street]`.

Prints frames per second of the whole twin (posing, tracing, channels, sweeps, store writes), the
time inside Sionna's PathSolver, the ratio of the twin's time to a bare PathSolver loop over the same
scene states and receivers, and peak memory. Kernels are compiled by a warm-up first. Sensors are
switched off here; `python -m twin.benchmarks.sensors` times them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import tempfile
import time

from twin.cli import SCENARIO_DIR
from twin.dataset.generation import generate, run_indices
from twin.dataset.simulator import layout_config, slots_in_run
from twin.dataset.view import plan_run
from twin.modalities import RECORDED_SENSORS
from twin.rt_backend import sionna_rt
from twin.scenario.config import ScenarioConfig, load_scenario
from twin.trace.scene import TwinScene, load_vehicle_models
from twin.trace.traffic import make_run, pool_sizes


def bare_solver_seconds(config: ScenarioConfig) -> float:
    """Time of Sionna's PathSolver alone for every scene state and receiver the twin traces."""
    rt = sionna_rt()
    models = load_vehicle_models(config)
    sizes = {k: m.size_m for k, m in models.items()}
    runs = [make_run(config, r, sizes) for r in run_indices(config)]
    solver = rt.PathSolver(deterministic=True)
    cfg = config.ray_tracing
    total = 0.0
    for layout in sorted({run.layout for run in runs}):
        mine = [run for run in runs if run.layout == layout]
        scene = TwinScene(layout_config(config, layout), pool_sizes(mine, rigs=config.traffic.ue_rig.enabled))
        for run in mine:
            plan = plan_run(config, run, slots_in_run(config, run.run))
            slots = [slot for slot, _ in plan.drives]
            for frame in plan.frames:
                scene.pose(run, int(frame))
                velocity = run.velocity_at(int(frame))[run.served[slots]]
                scene.place_receivers(
                    plan.antennas.positions[frame, slots], velocity, plan.antennas.yaws[slots]
                )
                start = time.perf_counter()
                paths = solver(
                    scene.scene, max_depth=cfg.max_depth, samples_per_src=cfg.samples_per_src,
                    synthetic_array=True, los=cfg.los, specular_reflection=cfg.specular_reflection,
                    diffuse_reflection=cfg.diffuse_reflection, refraction=cfg.refraction,
                    diffraction=cfg.diffraction, seed=cfg.seed,
                )  # fmt: skip
                paths.a[0].numpy(), paths.tau.numpy()
                total += time.perf_counter() - start
    return total


def rf_only(config: ScenarioConfig) -> ScenarioConfig:
    """The scenario with every sensor off: this benchmark times the channels (see sensors.py)."""
    off = {name: dataclasses.replace(getattr(config.sensors, name), enabled=False)
           for name in RECORDED_SENSORS}  # fmt: skip
    return dataclasses.replace(config, sensors=dataclasses.replace(config.sensors, **off))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="urban_street")
    parser.add_argument("--drives", type=int, default=16, help="drives to trace (x frames per drive)")
    args = parser.parse_args()
    base = rf_only(load_scenario(SCENARIO_DIR / f"{args.scenario}.yaml"))
    config = dataclasses.replace(base, dataset=dataclasses.replace(base.dataset, drives=args.drives))
    warmup = dataclasses.replace(
        base, seed=base.seed + 1000, dataset=dataclasses.replace(base.dataset, drives=1, frames_per_drive=3)
    )
    with tempfile.TemporaryDirectory() as cache:
        generate(warmup, cache, progress=False, workers=1)  # compiles (or loads) the Dr.Jit kernels
        _, stats = generate(config, cache, progress=True, workers=1)  # one process: against the bare loop
    bare = bare_solver_seconds(config)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_1000 = 1000 / stats.frames_per_second
    print(f"scenario                 {config.name} ({config.ray_tracing.samples_per_src:.0e} samples/src, "
          f"depth {config.ray_tracing.max_depth}, {config.traffic.served_per_run} UEs per call)")  # fmt: skip
    print(f"frames traced            {stats.frames}")
    print(f"twin throughput          {stats.frames_per_second:.1f} frames/s ({per_1000:.1f} s / 1000 frames)")
    print(f"time in PathSolver       {stats.solver_seconds:.1f} s of {stats.seconds:.1f} s")
    print(f"bare PathSolver loop     {bare:.1f} s (same scene states and receivers)")
    print(f"twin / bare solver       {stats.seconds / bare:.2f}")
    print(f"peak memory (RSS)        {peak_mib:.0f} MiB")
    print(f"cpu cores                {len(os.sched_getaffinity(0))}")


if __name__ == "__main__":
    main()

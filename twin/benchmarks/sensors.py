"""Sensor cost: `python -m twin.benchmarks.sensors [--scenario urban_street] [--steps 60]`.

Prints milliseconds per frame of each base-station sensor and of the channel tracing, the
whole-frame rate with every sensor on (one frame = one scene state: channels of all served UEs of
the run plus one camera image, LiDAR sweep and radar cube), the end-to-end generation rate with one
and with two worker processes, and the bytes per frame in the store.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import h5py

from twin.cli import SCENARIO_DIR
from twin.dataset.generation import generate
from twin.dataset.view import plan_run
from twin.scenario.config import load_scenario
from twin.sensors.base import FrameState
from twin.sensors.registry import build_sensors
from twin.store.schema import SHARED_FIELDS
from twin.trace.channel import ChannelTracer
from twin.trace.scene import TwinScene, load_vehicle_models
from twin.trace.traffic import make_run, pool_sizes


def stored_bytes(path: Path) -> tuple[dict[str, int], int, int]:
    """On-disk bytes of each field (run-level sensor data counted once), scene frames, drive samples."""
    sizes: dict[str, int] = {}
    scene_frames = samples = 0
    with h5py.File(path, "r") as f:
        for run in f.get("runs", {}).values():
            scene_frames += len(next(iter(run.values())))
            for name, data in run.items():
                sizes[name] = sizes.get(name, 0) + data.id.get_storage_size()
        for episode in f["episodes"].values():
            samples += len(episode["t"])
            for name in episode:
                if isinstance(episode.get(name, getlink=True), h5py.SoftLink):
                    continue
                item = episode[name]
                datasets = item.values() if isinstance(item, h5py.Group) else [item]
                sizes[name] = sizes.get(name, 0) + sum(d.id.get_storage_size() for d in datasets)
    return sizes, scene_frames, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="urban_street")
    parser.add_argument("--steps", type=int, default=60, help="frames (scene states) to time")
    parser.add_argument("--drives", type=int, default=12, help="drives generated end to end per run of it")
    args = parser.parse_args()
    config = load_scenario(SCENARIO_DIR / f"{args.scenario}.yaml")
    models = load_vehicle_models(config)
    sizes = {k: m.size_m for k, m in models.items()}
    runs = [make_run(config, r, sizes) for r in range(4)]
    twin = TwinScene(config, pool_sizes(runs, rigs=config.traffic.ue_rig.enabled))
    tracer = ChannelTracer(twin, config.ray_tracing)
    sensors = build_sensors(config, twin)
    seconds = {"channels": 0.0} | {type(s).__name__: 0.0 for s in sensors}
    states = []  # (run, frame, slots) of the frames the drives need
    for run in runs:
        plan = plan_run(config, run, config.traffic.served_per_run)
        states += [(run, plan, int(f)) for f in plan.frames]
    states = states[: args.steps]
    for warm in (True, False):  # the first pass compiles Dr.Jit kernels
        for i, (run, plan, frame) in enumerate(states):
            slots = [slot for slot, _ in plan.drives]
            twin.pose(run, frame)
            start = time.perf_counter()
            tracer(plan.antennas.positions[frame, slots], run.velocity_at(frame)[run.served[slots]],
                   plan.antennas.yaws[slots])  # fmt: skip
            if not warm:
                seconds["channels"] += time.perf_counter() - start
            state = FrameState(twin, run, frame)
            for sensor in sensors:
                start = time.perf_counter()
                sensor(state)
                if not warm:
                    seconds[type(sensor).__name__] += time.perf_counter() - start
            if warm and i >= 2:
                break
    run = runs[0]
    frames = states
    n = len(frames)
    print(f"scenario        {config.name}, {n} frames, {len(run.served)} served UEs per frame")
    for name, total in seconds.items():
        print(f"{name:<15} {1000 * total / n:7.1f} ms/frame")
    whole = sum(seconds.values()) / n
    print(f"whole frame     {1000 * whole:7.1f} ms/frame = {1 / whole:.1f} frames/s "
          f"({len(run.served) / whole:.0f} drive samples/s)")  # fmt: skip
    with tempfile.TemporaryDirectory() as cache:
        for workers in (1, 2):  # end to end: posing, tracing, rendering, writing the store
            drives = max(args.drives, len(run.served))
            small = dataclasses.replace(
                config, seed=config.seed + workers, dataset=dataclasses.replace(config.dataset, drives=drives)
            )
            path, stats = generate(small, cache, progress=False, workers=workers)
            label = f"{workers} process" + ("es" if workers > 1 else "")
            print(f"generation      {label}: {stats.steps} scene frames in {stats.seconds:.1f} s = "
                  f"{stats.steps / stats.seconds:.1f} scene frames/s ({stats.frames / stats.seconds:.1f} "
                  "drive samples/s)")  # fmt: skip
        sizes, scene_frames, samples = stored_bytes(path)
    print(
        f"store           {sum(sizes.values()) / samples / 1024:.0f} KiB per drive sample; per scene frame:"
    )
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        per = size / (scene_frames if name in SHARED_FIELDS else samples)
        print(
            f"  {name:<18} {per / 1024:8.1f} KiB"
            + (" (shared by the run's drives)" if name in SHARED_FIELDS else "")
        )


if __name__ == "__main__":
    main()

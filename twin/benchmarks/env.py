"""Closed-loop throughput: `python -m twin.benchmarks.env [--scenario urban_street] [--main-job]`.

Prints environment steps per second replaying the scenario's cached store with every sensor in the
observation (and with RF feedback only); per classical policy, closed-loop steps per second of the
single-drive reference loop and of the lockstep loop the evaluator runs, and its decisions per
second; the default evaluation grid's time with one and with two worker processes; and with
`--main-job` the wall time of `python -m twin.run` cold (fresh cache: traces the store) and warm
(cached store). The store is generated first when the cache lacks it.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twin.cli import SCENARIO_DIR
from twin.dataset.generation import generate
from twin.loop.drives import load_drives
from twin.loop.env import BeamSelectionEnv
from twin.loop.evaluate import _Runner, evaluate, evaluation_from, replay_drive, replay_drives
from twin.loop.policies import POLICIES, classical, make_policy
from twin.scenario.config import load_scenario

REPO = Path(__file__).resolve().parents[2]


def steps_per_second(store: Path, modalities: list[str], faults: object, policy: str, episodes: int) -> float:
    env = BeamSelectionEnv(store, faults=faults, modalities=modalities)
    runner = _Runner(make_policy(policy), env, frozenset())
    drives = env.replay.drives
    replay_drive(runner, drives[0], env.faults, 0)  # warm-up
    start, steps = time.perf_counter(), 0
    for i in range(episodes):
        drive = drives[i % len(drives)]
        replay_drive(runner, drive, env.faults, i)
        steps += drive.num_frames
    return steps / (time.perf_counter() - start)


def closed_loop_rates(store: Path, faults: object, name: str, seeds: int = 2) -> tuple[float, float, float]:
    """(single-drive steps/s, lockstep steps/s, decisions/s) of one policy over every drive of the
    store, `seeds` times each; the policy observes what it reads."""
    replay = load_drives(store)
    policy = make_policy(name)
    reads = policy.reads(replay.context.sensors)
    runner = _Runner(policy, BeamSelectionEnv(store, faults=faults, modalities=sorted(reads)), reads)
    drives, steps = replay.drives, sum(d.num_frames for d in replay.drives) * seeds
    replay_drives(runner, drives, runner.env.faults, 0)  # warm-up: every lane's environment made
    runner.act_seconds, runner.decisions = 0.0, 0
    start = time.perf_counter()
    for seed in range(seeds):
        for drive in drives:
            replay_drive(runner, drive, runner.env.faults, seed)
    single = steps / (time.perf_counter() - start)
    start = time.perf_counter()
    for seed in range(seeds):
        replay_drives(runner, drives, runner.env.faults, seed)
    lockstep = steps / (time.perf_counter() - start)
    return single, lockstep, runner.decisions / runner.act_seconds


def grid_seconds(store: Path, faults: object, names: list[str], workers: int) -> tuple[float, int]:
    """Wall time and environment steps of the default evaluation grid (no figures) on `workers`."""
    config = dataclasses.replace(evaluation_from({}), workers=workers, plots=False, snapshot=False)
    start = time.perf_counter()
    result = evaluate(store, faults, config, names, progress=False)  # type: ignore[arg-type]
    return time.perf_counter() - start, result.steps


def main_job(scenario: str, cache_dir: Path) -> tuple[float, float]:
    times = []
    for attempt in ("cold", "warm"):
        command = [
            sys.executable, "-m", "twin.run", f"scenario={scenario}", f"cache_dir={cache_dir}",
            f"hydra.run.dir={cache_dir.parent / attempt}", "progress=false",
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO, capture_output=True)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default="urban_street")
    parser.add_argument("--cache-dir", default=str(REPO / "outputs" / "cache"))
    parser.add_argument("--episodes", type=int, default=200, help="episodes replayed per throughput figure")
    parser.add_argument("--policy", default="tracking", help="the classical policy driving the env")
    parser.add_argument("--main-job", action="store_true", help="also time twin.run cold and warm")
    args = parser.parse_args()

    scenario = load_scenario(SCENARIO_DIR / f"{args.scenario}.yaml")
    store, _ = generate(scenario, args.cache_dir, progress=True)
    start = time.perf_counter()
    replay = load_drives(store, load_drives(store).context.sensors)
    load_s = time.perf_counter() - start
    sensors = list(replay.context.sensors)
    frame_bytes = sum(replay.drives[0].sensors[m][0].nbytes for m in sensors)
    print(f"store          {store} ({len(replay.drives)} drives; sensors {', '.join(sensors) or 'none'})")
    kib = frame_bytes / 1024
    print(f"preload        {load_s:.2f} s for every drive and sensor ({kib:.0f} KiB of sensors per frame)")
    faults = scenario.faults
    for label, modalities in (("all sensors", sensors), ("RF feedback only", [])):
        rate = steps_per_second(store, modalities, faults, args.policy, args.episodes)
        print(f"env steps/s    {rate:>9,.0f}  ({label}, scenario faults, policy {args.policy})")
    names = [n for n, entry in POLICIES.items() if entry.factory.__module__ == classical.__name__]
    print("closed loop    steps/s single-drive -> lockstep, decisions/s (scenario faults, 2 seeds)")
    for name in names:
        single, lockstep, decisions = closed_loop_rates(store, faults, name)
        print(f"  {name:13s} {single:>9,.0f} -> {lockstep:>9,.0f}   {decisions:>10,.0f}")
    config = evaluation_from({})
    print(f"default grid   seeds {list(config.seeds)}, {len(config.blockage_rates_per_s)} blockage rates, "
          f"{len(config.dropout_probabilities)} dropout levels x {len(sensors)} modalities")  # fmt: skip
    for workers in (1, 2):
        seconds, steps = grid_seconds(store, faults, names, workers)
        label = f"{workers} worker" + ("s" if workers > 1 else "")
        print(f"  {label:13s} {seconds:6.1f} s ({steps:,} steps, {len(names)} policies)")
    if args.main_job:
        with tempfile.TemporaryDirectory() as tmp:
            cold, warm = main_job(args.scenario, Path(tmp) / "cache")
        print(f"main job       {cold:.1f} s cold (traces the store), {warm:.1f} s warm")


if __name__ == "__main__":
    main()

"""Closed-loop throughput: `python -m twin.benchmarks.env [--scenario urban_street] [--main-job]`.

Prints environment steps per second replaying the scenario's cached store with every sensor in the
observation (and with RF feedback only), decisions per second per policy, and with `--main-job` the
wall time of `python -m twin.run` cold (fresh cache: traces the store) and warm (cached store).
The store is generated first when the cache lacks it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twin.cli import SCENARIO_DIR
from twin.dataset.generation import generate
from twin.loop.drives import load_drives
from twin.loop.env import BeamSelectionEnv
from twin.loop.evaluate import _Runner, evaluation_from, replay_drive
from twin.loop.policies import POLICIES, make_policy
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


def decisions_per_second(store: Path, faults: object, names: list[str]) -> dict[str, float]:
    replay = load_drives(store)
    out = {}
    for name in names:
        policy = make_policy(name)
        reads = policy.reads(replay.context.sensors)
        runner = _Runner(policy, BeamSelectionEnv(store, faults=faults, modalities=sorted(reads)), reads)
        for drive in replay.drives:
            replay_drive(runner, drive, runner.env.faults, 0)
        out[name] = runner.decisions / runner.act_seconds
    return out


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
    for name, rate in decisions_per_second(store, faults, list(POLICIES)).items():
        print(f"decisions/s    {rate:>9,.0f}  {name}")
    config = evaluation_from({})
    print(f"default grid   seeds {list(config.seeds)}, {len(config.blockage_rates_per_s)} blockage rates, "
          f"{len(config.dropout_probabilities)} dropout levels x {len(sensors)} modalities")  # fmt: skip
    if args.main_job:
        with tempfile.TemporaryDirectory() as tmp:
            cold, warm = main_job(args.scenario, Path(tmp) / "cache")
        print(f"main job       {cold:.1f} s cold (traces the store), {warm:.1f} s warm")


if __name__ == "__main__":
    main()

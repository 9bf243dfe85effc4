"""Train an off-the-shelf RL agent (stable-baselines3 DQN or PPO) on twin/BeamSelection-v0.

    pip install stable-baselines3            # not a dependency of the testbed
    python -m twin.examples.train_rl --scenario tiny --steps 20000
    python -m twin.examples.train_rl --store outputs/cache/urban_street-<hash>.h5 --algo ppo

The agent observes the served beam, its measured RSRP, the masks and the vehicle's position (GPS
when the store has it), through Gymnasium's standard wrappers: FilterObservation → FlattenObservation
→ NormalizeObservation. Reward: achievable rate. It is then scored on every drive against the genie
and random beams, from the environment's `info` (rate and SNR loss).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np

import twin.loop.env  # noqa: F401 - registers the environment ids
from twin.cli import SCENARIO_DIR
from twin.loop.drives import load_drives


def make_env(store: str | Path, faults: object = None, episodes: list[int] | None = None) -> gym.Env:
    """The environment as an RL library wants it: one flat, normalised Box observation."""
    sensors = load_drives(store).context.sensors
    position = ["gps"] if "gps" in sensors else ["position"] if "position" in sensors else []
    env = gym.make(
        "twin/BeamSelection-v0", store=str(store), faults=faults, modalities=position, episodes=episodes
    )
    env = gym.wrappers.FilterObservation(env, ["beam", "rsrp", "mask", *position])
    env = gym.wrappers.FlattenObservation(env)
    return gym.wrappers.NormalizeObservation(env)


def train(store: str | Path, algo: str = "dqn", steps: int = 20_000, seed: int = 0, faults: object = None):  # type: ignore[no-untyped-def]
    """Train and return the stable-baselines3 model and its (normalising) environment."""
    import stable_baselines3 as sb3

    env = make_env(store, faults)
    env.reset(seed=seed)
    if algo == "dqn":
        model = sb3.DQN(
            "MlpPolicy",
            env,
            seed=seed,
            learning_starts=min(1000, steps // 4),
            exploration_fraction=0.3,
            verbose=0,
        )
    elif algo == "ppo":
        model = sb3.PPO("MlpPolicy", env, seed=seed, n_steps=min(2048, max(64, steps // 4)), verbose=0)
    else:
        raise ValueError(f"algo = {algo!r}: expected dqn or ppo")
    model.learn(total_timesteps=steps)
    return model, env


def score(env: gym.Env, choose, episodes: int, seed: int = 100) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Mean rate and SNR loss of `choose(obs, env) -> beam` over `episodes` drives."""
    rates, losses = [], []
    base = env.unwrapped
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e, options={"episode": e % base.num_episodes})
        done = False
        while not done:
            obs, _, done, _, info = env.step(choose(obs, base))
            rates.append(info["rate"])
            losses.append(info["snr_loss_db"])
    return {"rate": float(np.mean(rates)), "snr_loss_db": float(np.mean(losses))}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--store", help="a twin or replay store (.h5)")
    source.add_argument("--scenario", default="tiny", help="generate or load this scenario's store")
    parser.add_argument("--cache-dir", default="outputs/cache")
    parser.add_argument("--algo", choices=("dqn", "ppo"), default="dqn")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    store = args.store
    if store is None:
        from twin.dataset.generation import generate
        from twin.scenario.config import load_scenario

        store, _ = generate(load_scenario(SCENARIO_DIR / f"{args.scenario}.yaml"), args.cache_dir)
    model, env = train(store, args.algo, args.steps, args.seed)
    env.update_running_mean = False  # freeze the normalisation for scoring
    episodes = env.unwrapped.num_episodes
    rng = np.random.default_rng(args.seed)
    results = {
        args.algo: score(env, lambda obs, _: int(model.predict(obs, deterministic=True)[0]), episodes),
        "genie": score(env, lambda _, base: base.oracle_beam(), episodes),
        "random": score(env, lambda _, base: int(rng.integers(base.context.num_beams)), episodes),
    }
    print(f"{'policy':<8}{'rate [bit/s/Hz]':>17}{'SNR loss [dB]':>15}   ({args.steps} training steps)")
    for name, r in results.items():
        print(f"{name:<8}{r['rate']:>17.2f}{r['snr_loss_db']:>15.2f}")


if __name__ == "__main__":
    main()

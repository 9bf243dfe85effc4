"""The Gymnasium environment: checker, vector envs, reproducibility, masks, info and variants."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from twin.benchmarks.synthetic import synthetic_store
from twin.errors import ConfigError, UsageError
from twin.loop.env import ENV_IDS, RSRP_FLOOR_DBM, BeamProbingEnv, BeamSelectionEnv

FAULTS = {
    "blockage": {"rate_per_s": 0.5, "duration_s": [0.3, 1.0]},
    "dropout": {
        "camera": {"probability": 0.3, "mode": "noisy"},
        "lidar": {"probability": 0.3, "mode": "partial"},
        "radar": {"probability": 0.3, "mode": "frozen"},
        "gps": {"probability": 0.3, "mode": "partial"},
        "position": {"probability": 0.3, "mode": "missing"},
    },
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_store(tmp_path_factory.mktemp("env") / "s.h5", drives=4, frames=20)


@pytest.fixture(scope="module")
def rf_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like today's twin stores before sensors: channels, paths and positions only."""
    return synthetic_store(tmp_path_factory.mktemp("env") / "rf.h5", drives=2, frames=10, sensors=())


@pytest.fixture(scope="module")
def replay_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like a replayed recording: measured RSRP and GPS, no channel and no path table."""
    return synthetic_store(
        tmp_path_factory.mktemp("env") / "replay.h5", drives=2, frames=10, sensors=("gps",), channel=False
    )


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_on_every_registered_id(env_id: str, store: Path) -> None:
    env = gym.make(env_id, store=store, faults=FAULTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings count as failures
        check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs(mode: str, store: Path) -> None:
    kwargs = {"context": "spawn"} if mode == "async" else {}
    envs = gym.make_vec(
        "twin/BeamSelection-v0",
        num_envs=2,
        vectorization_mode=mode,
        vector_kwargs=kwargs,
        store=str(store),
        faults=FAULTS,
        modalities=["gps", "position"],
    )
    obs, _ = envs.reset(seed=3)
    assert obs["gps"].shape == (2, 2) and obs["mask"].shape == (2, 3)
    for _ in range(25):  # past an episode end: vector envs reset them
        obs, reward, _, _, _ = envs.step(envs.action_space.sample())
        assert reward.shape == (2,) and np.all(reward >= 0)
    envs.close()


def _rollout(env: gym.Env, seed: int) -> tuple[list, list, dict]:
    obs, info = env.reset(seed=seed)
    rewards, observations = [], [obs]
    done = False
    while not done:
        obs, reward, done, _, _ = env.step((int(obs["beam"][0]) + 1) % 64)
        rewards.append(reward)
        observations.append(obs)
    return rewards, observations, info


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_reset_with_a_seed_is_reproducible(store: Path) -> None:
    env = gym.make("twin/BeamSelection-v0", store=store, faults=FAULTS)
    r1, o1, i1 = _rollout(env, 11)
    r2, o2, i2 = _rollout(env, 11)
    assert r1 == r2 and all(_same(a, b) for a, b in zip(o1, o2)) and i1 == i2
    other = [_rollout(env, s)[2] for s in (12, 13, 14)]
    assert any(info != i1 for info in other)  # another episode or other fault draws
    fresh = gym.make("twin/BeamSelection-v0", store=store, faults=FAULTS)
    assert _rollout(fresh, 11)[0] == r1


def test_observation_and_info_follow_the_contract(store: Path) -> None:
    env = BeamSelectionEnv(store, faults=FAULTS)
    assert env.mask_names == ("rsrp", "camera", "lidar", "radar", "gps", "position")
    obs, info = env.reset(options={"episode": 1, "fault_seed": 5})
    assert obs["mask"][0] == 0 and obs["rsrp"][0] == RSRP_FLOOR_DBM  # no feedback before the first step
    assert info["episode"] == env.drive.id and info["truth"] == "noiseless"
    obs, reward, terminated, truncated, info = env.step(7)
    assert obs["beam"][0] == 7 and obs["mask"][0] == 1
    assert obs["rsrp"][0] == pytest.approx(env.measured_dbm[0, 7])  # feedback: measured on the served beam
    assert reward == info["rate"] == pytest.approx(np.log2(1 + 10 ** (info["snr_db"] / 10)))
    assert info["oracle_beam"] == int(np.argmax(env.true_dbm[0]))
    assert info["snr_loss_db"] == pytest.approx(env.snr_db[0].max() - env.snr_db[0, 7])
    assert info["rsrp_diff_db"] >= 0 and info["oracle_rate"] >= info["rate"]
    assert set(info) >= {
        "oracle_beam",
        "snr_loss_db",
        "rsrp_diff_db",
        "rate",
        "oracle_rate",
        "blocked",
        "faults",
    }
    assert not terminated and not truncated
    steps = 1
    while not terminated:
        _, _, terminated, _, info = env.step(0)
        steps += 1
    assert steps == env.drive.num_frames
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(0)


def test_injected_faults_are_reported(store: Path) -> None:
    env = BeamSelectionEnv(store, faults=FAULTS)
    _, info = env.reset(options={"episode": 0, "fault_seed": 1})
    labels = []
    for t in range(env.drive.num_frames):
        _, _, _, _, step = env.step(0)
        labels.append(step["faults"])
        assert ("blockage" in step["faults"]) == bool(env.blockage.active[t])
        assert step["blocked"] == bool(env.blockage.active[t] or env.drive.blocked[t])
    assert info["blockage_events_s"] == env.blockage.as_list()
    assert sum(info["dropout_frames"].values()) == sum(len([f for f in s if ":" in f]) for s in labels)


def _all_frames(env: BeamSelectionEnv) -> list[dict]:
    obs, _ = env.reset(options={"episode": 0, "fault_seed": 0})
    frames = [obs]
    for _ in range(env.drive.num_frames - 1):
        frames.append(env.step(0)[0])
    return frames


def test_dropout_masks_and_data_are_honoured(store: Path) -> None:
    always = {"probability": 1.0, "burst_s": 1.0}
    missing = BeamSelectionEnv(store, faults={"dropout": {"camera": {**always, "mode": "missing"}}})
    for obs in _all_frames(missing):
        assert not obs["camera"].any() and obs["mask"][1] == 0
        assert obs["mask"][2:].all()  # the other modalities are untouched
    frozen = BeamSelectionEnv(store, faults={"dropout": {"lidar": {**always, "mode": "frozen"}}})
    frames = _all_frames(frozen)
    first = frozen.drive.sensors["lidar"][0]
    assert all(np.array_equal(o["lidar"], first) and o["mask"][2] == 1 for o in frames)  # silent fault
    outage = BeamSelectionEnv(store, faults={"dropout": {"gps": {**always, "mode": "partial"}}})
    frames = _all_frames(outage)
    assert all(o["mask"][4] == 0 for o in frames)
    assert all(np.array_equal(o["gps"], outage.drive.sensors["gps"][0]) for o in frames)  # fix held
    clean = BeamSelectionEnv(store)
    frames = _all_frames(clean)
    for t, o in enumerate(frames):
        assert o["mask"][1:].all()
        np.testing.assert_array_equal(o["camera"], clean.drive.sensors["camera"][t])
    # Observations are copies: changing one changes neither the store's arrays nor later observations.
    frames[0]["camera"][:] = 0
    assert clean.drive.sensors["camera"][0].any()


def test_modalities_select_observation_entries(store: Path) -> None:
    env = BeamSelectionEnv(store, modalities=["gps"])
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"beam", "rsrp", "mask", "gps"} and env.mask_names == ("rsrp", "gps")
    with pytest.raises(ConfigError, match=r"modalities\[0\] = 'sonar': unknown modality; allowed: camera"):
        BeamSelectionEnv(store, modalities=["sonar"])
    with pytest.raises(ConfigError, match="store: required"):
        gym.make("twin/BeamSelection-v0")
    with pytest.raises(ConfigError, match=r"faults.dropout.camera.mode = 'off'"):
        BeamSelectionEnv(store, faults={"dropout": {"camera": {"mode": "off"}}})
    with pytest.raises(ConfigError, match=r"options.episode = 9: expected an index in \[0, 3\]"):
        env.reset(options={"episode": 9})


def test_works_on_stores_without_sensors_or_channels(rf_store: Path, replay_store: Path) -> None:
    env = gym.make("twin/BeamSelection-v0", store=rf_store, faults=FAULTS).unwrapped
    assert env.modalities == ("position",)
    check_env(env)
    with pytest.raises(ConfigError, match=r"modalities = \['camera'\]: not in store .* it has position"):
        BeamSelectionEnv(rf_store, modalities=["camera"])
    replay = gym.make("twin/BeamSelection-v0", store=replay_store, faults={"blockage": {"rate_per_s": 50.0}})
    replay = replay.unwrapped
    assert replay.modalities == ("gps", "position")
    _, info = replay.reset(options={"episode": 0, "fault_seed": 0})
    assert info["truth"] == "measured" and info["blockage_model"] == "rsrp"
    check_env(replay)


def test_overhead_is_charged_for_measurements(store: Path) -> None:
    env = BeamSelectionEnv(store, beam_measurement_s=1e-3, penalize_overhead=True)
    env.reset(options={"episode": 0, "fault_seed": 0})
    values = env.measure(np.arange(20))
    np.testing.assert_array_equal(values, env.measured_dbm[0, :20])
    _, reward, _, _, info = env.step(int(np.argmax(values)))
    assert info["overhead"] == pytest.approx(20 * 1e-3 * 10.0)  # 20 slots of 1 ms in a 100 ms frame
    assert reward == pytest.approx(info["rate"] * 0.8) == pytest.approx(info["effective_rate"])
    np.testing.assert_allclose(env.overhead[:1], [0.2])


def test_probing_variant_reports_probes_next_frame(store: Path) -> None:
    env = BeamProbingEnv(store, probe_widths=(0, 2))
    assert env.action_space == gym.spaces.MultiDiscrete([64, 2])
    obs, _ = env.reset(options={"episode": 0, "fault_seed": 0})
    assert np.all(obs["probe"] == RSRP_FLOOR_DBM)
    obs, reward, _, _, info = env.step(np.array([30, 1]))
    probed = np.flatnonzero(obs["probe"] > RSRP_FLOOR_DBM)
    np.testing.assert_array_equal(probed, np.arange(28, 33))
    np.testing.assert_allclose(obs["probe"][probed], env.measured_dbm[0, probed])
    assert info["overhead"] == pytest.approx(5 * 1e-4 * 10) and reward == pytest.approx(
        info["effective_rate"]
    )
    obs, *_ = env.step(np.array([30, 0]))
    assert np.all(obs["probe"] == RSRP_FLOOR_DBM)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda env: env.measure([-1]), r"beams = \[-1\]: expected beam indices \(integers\) in \[0, 63\]"),
        (lambda env: env.measure(np.array([2.0])), r"beams = array\(\[2\.\]\): expected beam indices"),
        (lambda env: env.measure(True), r"beams = True: expected beam indices"),
        (lambda env: env.step(-1), r"action = -1: expected a beam index \(integers\) in \[0, 63\]"),
        (lambda env: env.step(3.0), r"action = 3.0: expected a beam index"),
        (lambda env: env.step("3"), r"action = '3': expected a beam index"),
        (lambda env: env.step(True), r"action = True: expected a beam index"),
        (lambda env: env.step(64), r"action = 64: expected a beam index \(integers\) in \[0, 63\]"),
    ],
)
def test_the_environment_refuses_indices_that_would_wrap_or_be_cast(tiny_store: Path, call, message) -> None:  # type: ignore[no-untyped-def]
    env = BeamSelectionEnv(tiny_store, modalities=[])
    env.reset(seed=0, options={"episode": 0})
    with pytest.raises(UsageError, match=f"^{message}"):
        call(env)
    assert env.probes[0] == 0 and env.frame == 0  # nothing charged, nothing served
    assert isinstance(env.step(np.int64(3))[1], float)  # NumPy integers, as Discrete samples them, work


def test_probing_and_reset_options_are_checked(tiny_store: Path) -> None:
    probing = BeamProbingEnv(tiny_store, modalities=[])
    probing.reset(seed=0, options={"episode": 0})
    for action, message in [
        ((5, -1), r"action = \(5, -1\): expected integers \(beam index, probe-width index in \[0, 3\]\)"),
        ((5, 1.0), r"action = \(5, 1.0\): expected integers"),
        ((-5, 1), r"action\[0\] = -5: expected a beam index"),
    ]:
        with pytest.raises(UsageError, match=f"^{message}"):
            probing.step(action)
    assert probing.probes[0] == 0 and probing.frame == 0
    env = BeamSelectionEnv(tiny_store, modalities=[])
    for options, message in [
        ({"epsiode": 1}, r"options.epsiode: unknown reset option; allowed: episode, fault_seed"),
        ({"fault_seed": -3}, r"options.fault_seed = -3: expected an integer >= 0"),
        ({"fault_seed": 1.5}, r"options.fault_seed = 1.5: expected an integer >= 0"),
        ({"episode": 1.0}, r"options.episode = 1.0: expected an episode id or an index"),
    ]:
        with pytest.raises(ConfigError, match=f"^{message}$"):
            env.reset(seed=0, options=options)

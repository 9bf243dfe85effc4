"""blockage_aware: it reads only the loop's feedback, sweeps every beam exactly where its predictor
changes its mind (onset and end of an expected blockage), is deterministic in the closed loop, and
refuses checkpoints it cannot run in one line."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from learners.blockage.fit import fit_blockage
from learners.blockage.policy import SERVED_INPUT, BlockageAware, BlockageAwareOptions
from learners.blockage.windows import SWEEPS, Windows
from learners.checkpoint import CheckpointError
from learners.closed_loop import run_closed_loop
from twin.loop.drives import TwinContext, load_drives
from twin.loop.policies import make_policy

BEAMS = 16


def _windows(beams: int, seed: int) -> Windows:
    rng = np.random.default_rng(seed)
    sweeps = rng.normal(-70, 5, (16, SWEEPS, beams)).astype(np.float32)
    labels = np.arange(16) % 2
    return Windows(sweeps, labels, np.arange(16), np.full(16, "w"), "synthetic")


def _fit(folder: Path, beams: int, extra: dict[str, str]) -> Path:
    settings = {"epochs": 2, "batch_size": 8, "threads": 1, "options": {"embedding": 4, "hidden": 4}}
    return fit_blockage(
        _windows(beams, 0), _windows(beams, 1), settings, folder, 1, extra, progress=False
    ).checkpoint


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fit(tmp_path_factory.mktemp("served"), 1, {"input": SERVED_INPUT})


class Watched(Mapping[str, np.ndarray]):
    """An observation that records which entries the policy reads."""

    def __init__(self, data: dict[str, np.ndarray], seen: set[str]):
        self.data, self.seen = data, seen

    def __getitem__(self, key: str) -> np.ndarray:
        self.seen.add(key)
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class FixedLink:
    """A radio whose beam k always measures -60 - |k - 5| dBm; it counts the beams measured."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def measure(self, beams: np.ndarray) -> np.ndarray:
        beams = np.atleast_1d(beams)
        self.calls.append(len(beams))
        return -60.0 - np.abs(beams - 5).astype(np.float64)

    def oracle_ranking(self) -> np.ndarray:
        raise AssertionError("blockage_aware must not ask the oracle")


def _drive(policy: BlockageAware, frames: int, context: TwinContext) -> tuple[list[int], set[str]]:
    """Run `frames` frames with feedback on the served beam; beams measured per frame and keys read."""
    policy.reset(context, np.random.default_rng(0))
    link, seen = FixedLink(), set()
    obs = {"rsrp": np.array([0.0]), "beam": np.array([0]), "mask": np.array([False])}
    measured = []
    for _ in range(frames):
        before = len(link.calls)
        beam = int(np.atleast_1d(policy.act(Watched(obs, seen), link))[0])
        measured.append(sum(link.calls[before:]))
        obs = {"rsrp": np.array([-60.0 - abs(beam - 5)]), "beam": np.array([beam]), "mask": np.array([True])}
    return measured, seen


@pytest.fixture(scope="module")
def context(tiny_store: Path) -> TwinContext:
    return load_drives(tiny_store).context


def test_it_sweeps_every_beam_at_the_predicted_onset_and_end_only(served: Path, context: TwinContext) -> None:
    policy = BlockageAware(BlockageAwareOptions(checkpoint=str(served), threshold=0.5))
    frames = 10
    calls = {"n": 0}

    def stub(history: np.ndarray) -> np.ndarray:  # blocked expected at frames 4 and 5 only
        calls["n"] += 1
        return np.full(len(history), 0.9 if calls["n"] in (4, 5) else 0.1)

    policy.predictor = stub  # the control logic, apart from any trained model
    measured, seen = _drive(policy, frames, context)
    full = [t for t, m in enumerate(measured) if m >= context.num_beams]
    # frame 0: acquisition (no feedback yet, the predictor does not run); the predictor first runs at
    # frame 1, so its 4th call is frame 4 (onset) and its 6th, back to clear, frame 6 (end)
    assert full == [0, 4, 6]
    assert seen <= {"rsrp", "beam", "mask"}
    assert policy.sweeps == 2


def test_it_never_sweeps_when_no_blockage_is_expected(served: Path, context: TwinContext) -> None:
    policy = BlockageAware(BlockageAwareOptions(checkpoint=str(served), threshold=0.5))
    policy.predictor = lambda history: np.zeros(len(history))
    measured, _ = _drive(policy, 8, context)
    tracking_measured, _ = _drive_tracking(8, context)
    assert measured == tracking_measured  # exactly tracking's measurements
    assert policy.sweeps == 0


def _drive_tracking(frames: int, context: TwinContext) -> tuple[list[int], set[str]]:
    class Adapter(BlockageAware):
        def __init__(self) -> None:  # tracking alone: a predictor that never fires
            self.options = BlockageAwareOptions()
            self.predictor, self.horizon, self.threshold = (lambda h: np.zeros(len(h))), 1, 0.5
            tracking = make_policy("tracking")
            self._tracking = self._clear = tracking

    return _drive(Adapter(), frames, context)


def test_closed_loop_is_deterministic_and_reads_no_sensor(served: Path, tiny_store: Path) -> None:
    policy = BlockageAware(BlockageAwareOptions(checkpoint=str(served)))
    assert policy.reads(load_drives(tiny_store).context.sensors) == frozenset()
    first = run_closed_loop(tiny_store, policy).metrics
    second = run_closed_loop(tiny_store, BlockageAware(BlockageAwareOptions(checkpoint=str(served)))).metrics
    assert first == second
    assert 0 < first["overhead"] < 1


def test_bad_checkpoints_fail_in_one_line(tmp_path: Path) -> None:
    full_sweeps = _fit(tmp_path / "full", BEAMS, {})
    with pytest.raises(CheckpointError, match="blockage_aware needs one trained on") as info:
        BlockageAware(BlockageAwareOptions(checkpoint=str(full_sweeps)))
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="not found") as info:
        make_policy("blockage_aware", {"checkpoint": str(tmp_path / "absent")})
    assert "\n" not in str(info.value)


def test_the_airtime_budget_holds_back_proactive_sweeps(served: Path, context: TwinContext) -> None:
    def flipping(history: np.ndarray) -> np.ndarray:  # a new onset or end every frame
        flipping.calls += 1  # type: ignore[attr-defined]
        return np.full(len(history), 0.9 if flipping.calls % 2 else 0.1)  # type: ignore[attr-defined]

    runs = {}
    for budget in (0.0, 12.0):
        policy = BlockageAware(BlockageAwareOptions(checkpoint=str(served), threshold=0.5, budget=budget))
        flipping.calls = 0  # type: ignore[attr-defined]
        policy.predictor = flipping
        measured, _ = _drive(policy, 20, context)
        runs[budget] = (measured, policy.sweeps)
    k = context.num_beams
    assert runs[0.0][1] == 19  # unbudgeted: a sweep at every frame after the first
    assert 0 < runs[12.0][1] < 19
    spent = np.cumsum(runs[12.0][0])
    sweeps = [t for t, m in enumerate(runs[12.0][0]) if m >= k and t > 0]
    assert all(spent[t] <= 12.0 * (t + 1) for t in sweeps)  # each proactive sweep stayed within it

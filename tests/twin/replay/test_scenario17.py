"""Real DeepSense 6G data: scenario 17's sweeps from ../shared/data/deepsense6g, replayed closed-loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.twin.replay.conftest import SHARED_DEEPSENSE
from twin.loop.evaluate import evaluate, evaluation_from
from twin.replay import replay_store
from twin.scenario.faults import faults_from
from twin.store import TwinStore

SCENARIO17 = SHARED_DEEPSENSE / "scenario17" / "unit1" / "mmWave_data"
pytestmark = pytest.mark.skipif(
    not SCENARIO17.is_dir(),
    reason=f"real DeepSense 6G data not found at {SCENARIO17} (clone the repo with ../shared beside it)",
)
FRAMES = 1334  # files 1..736 and 783..1380: two drives, a gap in the numbering between them


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("replay")
    return replay_store("deepsense", SHARED_DEEPSENSE, cache, scenario="scenario17", limit=FRAMES)


def test_real_sweeps_become_drives(store: Path) -> None:
    with TwinStore(store) as s:
        assert s.attrs["source"] == "deepsense" and s.attrs["layout"] == "power files"
        assert s.modalities == []  # wireless only
        episodes = [s.episode(e) for e in s.episode_ids]
    assert [e.num_frames for e in episodes] == [736, 598]
    first = episodes[0].groups["source"]["index"]
    assert first[0] == 1 and first[-1] == 736 and episodes[1].groups["source"]["index"][0] == 783
    rsrp = np.concatenate([e["rsrp_dbm"] for e in episodes])
    best = np.concatenate([e["best_beam"] for e in episodes])
    assert rsrp.shape == (FRAMES, 64) and np.isfinite(rsrp).all()
    # a static link: the file's beam 33 (1-based) is the store's beam 32 most of the time
    assert np.bincount(best, minlength=64).argmax() == 32
    # noise floor anchored to -174 dBm/Hz + 80 dB + 7 dB: the weakest beams sit near -87 dBm
    assert np.percentile(rsrp, 1) == pytest.approx(-87.0, abs=2.0)
    assert 15 < np.median(rsrp.max(axis=1)) + 87.0 < 25  # ~20 dB SNR on the best beam


def test_closed_loop_on_real_sweeps_with_rf_only_policies(store: Path) -> None:
    config = evaluation_from(
        {
            "seeds": [0],
            "conditions": ["clean", "scenario"],
            "blockage_rates_per_s": [],
            "dropout_probabilities": [],
            "bootstrap": 50,
            "workers": 1,
            "plots": False,
            "snapshot": False,
        }
    )
    faults = faults_from({"blockage": {"rate_per_s": 0.2, "duration_s": [0.5, 2.0], "attenuation_db": 20.0}})
    policies = ["genie", "exhaustive", "hierarchical", "stale", "random", "gps"]
    result = evaluate(store, faults, config, policies, progress=False)
    assert result.policies == ["genie", "exhaustive", "hierarchical", "stale", "random"]
    assert any("policy gps skipped" in note for note in result.notes)  # no GPS, no pose: masked
    clean = {p: result.estimate(p, "clean") for p in result.policies}
    assert clean["genie"]["snr_loss_db"].mean == 0.0
    assert clean["exhaustive"]["top1"].mean == 1.0  # measured truth: a full sweep finds the best beam
    assert clean["exhaustive"]["effective_rate"].mean < clean["genie"]["effective_rate"].mean  # overhead
    assert clean["random"]["snr_loss_db"].mean > 5 * clean["hierarchical"]["snr_loss_db"].mean
    blocked = result.estimate("genie", "scenario")
    assert blocked["rate"].mean < clean["genie"]["rate"].mean  # injected blockage costs rate


def test_one_corrupt_number_in_a_real_recording_is_flagged_not_scored(tmp_path: Path) -> None:
    """One 1e300 and one 1e400 among 60 real sweeps: flagged like NaN, the genie's rate unchanged."""
    clean, corrupt = tmp_path / "clean" / "scenario17", tmp_path / "corrupt" / "scenario17"
    for folder in (clean, corrupt):
        (folder / "unit1" / "mmWave_data").mkdir(parents=True)
        for i in range(1, 61):
            name = f"mmWave_power_{i}.txt"
            (folder / "unit1" / "mmWave_data" / name).write_text((SCENARIO17 / name).read_text())
    for i, beam, value in ((10, 5, "1e300"), (20, 40, "1e400")):
        path = corrupt / "unit1" / "mmWave_data" / f"mmWave_power_{i}.txt"
        lines = path.read_text().split()
        lines[beam] = value
        path.write_text("\n".join(lines) + "\n")
    config = evaluation_from(
        {"seeds": [0], "conditions": ["clean"], "blockage_rates_per_s": [], "dropout_probabilities": [],
         "bootstrap": 10, "workers": 1, "plots": False, "snapshot": False}
    )  # fmt: skip
    rates = {}
    for name in ("clean", "corrupt"):
        store = replay_store("deepsense", tmp_path / name, tmp_path / "cache", scenario="scenario17")
        with TwinStore(store) as s:
            rsrp = s.episode(s.episode_ids[0])["rsrp_dbm"]
            assert np.nanmax(rsrp) < 0 and s.attrs["invalid_power_frames"] == (2 if name == "corrupt" else 0)
        result = evaluate(store, faults_from({}), config, ["genie"], progress=False)
        rates[name] = result.estimate("genie", "clean")["rate"].mean
    assert rates["corrupt"] == pytest.approx(rates["clean"], rel=0.02)

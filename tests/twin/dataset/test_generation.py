"""Dataset generation: schema and attributes, determinism, resume after a kill, labels."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import REPO, replace
from twin.dataset.generation import generate, store_path
from twin.dataset.simulator import DriveSimulator
from twin.radio.codebook import UniformLinearArray, noise_power_dbm
from twin.scenario.config import ScenarioConfig
from twin.store import TwinStore
from twin.store.schema import EPISODE_FIELDS, PATH_FIELDS
from twin.trace.channel import PathTable, narrowband_channel, ofdm_channel, subcarrier_offsets


def _arrays(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return out


def test_store_follows_the_schema(tiny: ScenarioConfig, tiny_store: Path) -> None:
    n, k = tiny.base_station.array.num_elements, tiny.base_station.codebook.num_beams
    with TwinStore(tiny_store) as store:
        assert len(store.episode_ids) == tiny.dataset.drives
        assert set(store.modalities) >= {"h", "ue_pos", "los", "blocked", "rsrp_noiseless_dbm"}
        attrs = store.attrs
        assert attrs["carrier_hz"] == tiny.radio.carrier_hz
        assert attrs["noise_power_dbm"] == pytest.approx(noise_power_dbm(100e6, 7.0))
        assert attrs["seed"] == tiny.seed
        assert "name: tiny" in attrs["scenario_yaml"]
        assert set(json.loads(attrs["package_versions"])) >= {"sionna-rt", "mitsuba", "drjit", "numpy"}
        np.testing.assert_allclose(attrs["bs_position_m"], tiny.base_station.position_m)
        assert len(attrs["geodetic_origin"]) == 3
        assert store.constant("codebook/weights").shape == (k, n)
        np.testing.assert_allclose(store.constant("codebook/angles_deg")[[0, -1]], [-45, 45])
        episode = store.episode(store.episode_ids[0])
        frames = tiny.dataset.frames_per_drive
        present = {"t", "rsrp_dbm", "best_beam", *store.modalities}
        assert present >= {f.name for f in EPISODE_FIELDS} - {"csi", "radar"}  # tiny: no CSI, no radar
        for spec in EPISODE_FIELDS:
            if spec.name not in present:
                continue
            assert episode[spec.name].dtype == np.dtype(spec.dtype), spec.name
            assert episode[spec.name].shape[0] == frames
        assert episode["h"].shape == (frames, n)
        assert episode["rsrp_dbm"].shape == (frames, k)
        np.testing.assert_allclose(np.diff(episode["t"]), 1 / tiny.dataset.frame_rate_hz)
        assert set(episode.groups["paths"]) == {f.name for f in PATH_FIELDS}
        assert episode.groups["traffic"]["positions"].shape[:1] == (frames,)


def test_labels_follow_from_the_channel(tiny: ScenarioConfig, tiny_store: Path) -> None:
    with TwinStore(tiny_store) as store:
        weights = store.constant("codebook/weights")
        for episode in store.episodes():
            np.testing.assert_array_equal(episode["best_beam"], episode["rsrp_dbm"].argmax(-1))
            gain = np.abs(np.conj(episode["h"]) @ weights.T) ** 2
            np.testing.assert_allclose(
                episode["rsrp_noiseless_dbm"], tiny.radio.tx_power_dbm + 10 * np.log10(gain), atol=1e-3
            )
            # The stored path table reproduces h (no path had to be dropped in the tiny street).
            paths = episode.groups["paths"]
            assert np.all(paths["valid"].sum(-1) > 0) and episode.attrs["paths_dropped"] == 0
            array = UniformLinearArray.from_config(tiny.base_station)
            rebuilt = narrowband_channel(PathTable(**paths), array)
            np.testing.assert_allclose(rebuilt, episode["h"], rtol=1e-4, atol=1e-9)
            assert np.all(episode["los"] == (paths["is_los"] & paths["valid"]).any(-1))
            # Measurement noise is small next to the sweep: measured stays close to noiseless + noise.
            noise = store.attrs["noise_power_dbm"]
            expected = 10 * np.log10(10 ** (episode["rsrp_noiseless_dbm"] / 10) + 10 ** (noise / 10))
            assert np.abs(episode["rsrp_dbm"] - expected).max() < 6 * tiny.radio.measurement_noise_db


def test_same_seed_gives_identical_arrays(tiny: ScenarioConfig, tiny_store: Path, tmp_path: Path) -> None:
    again, _ = generate(tiny, tmp_path, progress=False)
    first, second = _arrays(tiny_store), _arrays(again)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_different_seed_gives_different_traffic(
    tiny: ScenarioConfig, tiny_store: Path, tmp_path: Path
) -> None:
    other, _ = generate(replace(tiny, seed=1), tmp_path, progress=False)
    assert other.name != tiny_store.name
    with TwinStore(tiny_store) as a, TwinStore(other) as b:
        pos_a = a.episode(a.episode_ids[0])["ue_pos"]
        pos_b = b.episode(b.episode_ids[0])["ue_pos"]
    assert not np.allclose(pos_a, pos_b)


def test_cached_store_is_reused(tiny: ScenarioConfig, tiny_store: Path) -> None:
    path, stats = generate(tiny, tiny_store.parent, progress=False)
    assert path == tiny_store and stats.frames == 0


def test_killed_generation_resumes_to_the_same_store(
    tiny: ScenarioConfig, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = DriveSimulator.simulate

    def killed_in_second_run(self: DriveSimulator, run, progress=None):  # type: ignore[no-untyped-def]
        if run.run == 1:
            raise KeyboardInterrupt
        return original(self, run, progress)

    monkeypatch.setattr(DriveSimulator, "simulate", killed_in_second_run)
    with pytest.raises(KeyboardInterrupt):
        generate(tiny, tmp_path, progress=False)
    final = store_path(tiny, tmp_path)
    parts = final.with_name(final.name + ".parts")
    assert not final.exists()  # nothing half-written reads as a dataset
    assert sorted(p.name for p in parts.iterdir()) == ["run-000000.h5"]
    (parts / "run-000001.h5.tmp").write_bytes(b"half a file")  # a write cut off mid-way
    monkeypatch.setattr(DriveSimulator, "simulate", original)
    resumed, stats = generate(tiny, tmp_path, progress=False)
    assert stats.frames == tiny.dataset.frames_per_drive * tiny.traffic.served_per_run  # only run 1 traced
    assert not parts.exists()
    first, second = _arrays(tiny_store), _arrays(resumed)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_blocked_flag_agrees_with_traced_line_of_sight(tiny: ScenarioConfig, tmp_path: Path) -> None:
    """With buildings away, a missing LoS path can only be a vehicle cutting it, and vice versa."""
    busy = replace(
        tiny,
        **{
            "traffic.vehicles_per_lane": 5,
            "traffic.mix": {"bus": 1.0},
            "dataset.frames_per_drive": 30,
            "dataset.drives": 2,
        },
    )
    path, _ = generate(busy, tmp_path, progress=False)
    with TwinStore(path) as store:
        los = np.concatenate([e["los"] for e in store.episodes()])
        blocked = np.concatenate([e["blocked"] for e in store.episodes()])
    assert blocked.any() and los.any()
    assert np.mean(los == ~blocked) > 0.95


def test_ofdm_csi_is_stored_when_subcarriers_are_configured(tiny: ScenarioConfig, tmp_path: Path) -> None:
    cfg = replace(tiny, **{"radio.num_subcarriers": 8, "dataset.drives": 2, "dataset.frames_per_drive": 2})
    path, _ = generate(cfg, tmp_path, progress=False)
    with TwinStore(path) as store:
        assert "csi" in store.modalities
        episode = store.episode(store.episode_ids[0])
    assert episode["csi"].shape == (2, 16, 8)
    # The stored path table reproduces both the narrowband channel and the CSI.
    paths = PathTable(**episode.groups["paths"])
    array = UniformLinearArray.from_config(cfg.base_station)
    np.testing.assert_allclose(narrowband_channel(paths, array), episode["h"], rtol=1e-4, atol=1e-9)
    offsets = subcarrier_offsets(cfg.radio.bandwidth_hz, 8)
    csi = ofdm_channel(paths, array, cfg.radio.carrier_hz, offsets)
    np.testing.assert_allclose(csi, episode["csi"], rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("damage", ["truncated", "incomplete"])
def test_a_damaged_cached_store_is_generated_again(
    damage: str, tiny: ScenarioConfig, tiny_store: Path, tmp_path: Path
) -> None:
    cached = tmp_path / tiny_store.name
    shutil.copy(tiny_store, cached)
    if damage == "truncated":
        cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])
    else:
        with h5py.File(cached, "a") as f:
            f.attrs["complete"] = False
    command = [sys.executable, "-m", "twin.generate", "scenario=tiny", f"cache_dir={tmp_path}",
               f"hydra.run.dir={tmp_path / 'run'}", "progress=false"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"cached store {cached} was damaged (" in result.stderr and "generating it again" in result.stderr
    assert "traced 20 frames" in result.stdout and result.stdout.strip().endswith(str(cached))
    first, second = _arrays(tiny_store), _arrays(cached)  # the same dataset as an undamaged generation
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    path, stats = generate(tiny, tmp_path, progress=False)  # whole now: reused
    assert path == cached and stats.frames == 0


def test_a_dataset_that_cannot_fit_on_disk_is_refused_with_its_estimate(tmp_path: Path) -> None:
    from twin.dataset.estimate import estimate_generation
    from twin.errors import ConfigError
    from twin.scenario.config import load_scenario

    huge = replace(load_scenario(REPO / "scenarios" / "urban_street.yaml"), **{"dataset.drives": 1_000_000})
    estimate = estimate_generation(huge)
    assert estimate.frames >= 10_000_000 and estimate.bytes > 1 << 40 and estimate.seconds > 86_400
    assert "days of tracing" in estimate.describe()
    message = r"^scenario\.dataset\.drives = 1000000: the dataset needs about \d+\.\d TiB \(twice that while"
    with pytest.raises(ConfigError, match=message):
        generate(huge, tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()  # nothing written
    command = [sys.executable, "-m", "twin.generate", "scenario=urban_street",
               "scenario.dataset.drives=1000000", f"cache_dir={tmp_path / 'cache'}",
               f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: scenario.dataset.drives = 1000000: the dataset needs about")
    assert not (tmp_path / "cache").exists()


def test_the_estimate_is_close_to_what_generation_writes(tiny: ScenarioConfig, tiny_store: Path) -> None:
    from twin.dataset.estimate import estimate_generation

    estimate = estimate_generation(tiny)
    assert estimate.frames == 20 and estimate.scene_frames == 10
    assert 0.5 < estimate.bytes / tiny_store.stat().st_size < 2

"""Shared fixtures: the tiny scenario, small free-space scenes, a per-test cache folder and a local Ray."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from twin.dataset.generation import generate
from twin.scenario.config import ScenarioConfig, load_scenario

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny() -> ScenarioConfig:
    return load_scenario(REPO / "scenarios" / "tiny.yaml")


@pytest.fixture(scope="session")
def tiny_store(tiny: ScenarioConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny scenario's twin store, generated once per test session."""
    path, _ = generate(tiny, tmp_path_factory.mktemp("cache"), progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_csi_store(tiny: ScenarioConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny scenario with 8 OFDM subcarriers (csi 16 × 8, the WMFM paper's H) and one served car
    per run (contrastive pairs are one car's), kept small: 4 drives of 10 frames."""
    changes = {"radio.num_subcarriers": 8, "dataset.drives": 4, "dataset.frames_per_drive": 10,
               "traffic.served_per_run": 1}  # fmt: skip
    path, _ = generate(replace(tiny, **changes), tmp_path_factory.mktemp("csi-cache"), progress=False)
    return path


@pytest.fixture(scope="session")
def local_ray():  # type: ignore[no-untyped-def]
    """A Ray of 2 CPUs started here for the executor=ray tests (skipped where Ray is not installed);
    the executors find it running and leave it running."""
    ray = pytest.importorskip("ray", reason="executor=ray tests need Ray: pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()


def replace(config: object, **changes: object) -> object:
    """dataclasses.replace with dotted keys: replace(cfg, **{"radio.carrier_hz": 28e9})."""
    nested: dict[str, dict[str, object]] = {}
    flat: dict[str, object] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[head] = value
    for head, sub in nested.items():
        flat[head] = replace(getattr(config, head), **sub)
    return dataclasses.replace(config, **flat)

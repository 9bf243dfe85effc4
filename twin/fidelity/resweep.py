"""A twin store's sweeps recomputed from its stored paths with other post-trace parameters: transmit
power, detector error, the base station's element errors and, for a static UE, what a blocker lets
through. Nothing is re-traced, so a calibration can try many of them.

The blocker loss stands for the physics the tracer leaves out on a cut line of sight (transmission
through a vehicle's glazing, diffraction round its edges): a frame without its line-of-sight path
gets that path back, `blocker_loss_db` weaker. A static UE's line of sight does not move, so the path
is the one traced in the drive's clear frames (moving UEs: no such path, the loss is not applied).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from twin.errors import ConfigError
from twin.fidelity.statistics import Drive
from twin.radio.codebook import (
    Codebook,
    UniformLinearArray,
    element_errors,
    measure_rsrp_dbm,
    noise_power_dbm,
    rsrp_noiseless_dbm,
)
from twin.scenario.config import ScenarioConfig, scenario_from_dict
from twin.store import TwinStore
from twin.trace.channel import PathTable, narrowband_channel, through_blockers

NO_BLOCKER_LOSS = float("inf")  # the traced result: nothing passes a blocker


@dataclass(frozen=True)
class PostTrace:
    """The parameters applied after tracing."""

    tx_power_dbm: float
    measurement_noise_db: float
    gain_error_db: float
    phase_error_deg: float
    blocker_loss_db: float = NO_BLOCKER_LOSS


@dataclass
class StoredDrive:
    t: np.ndarray
    paths: PathTable  # (T, L) as stored


@dataclass
class StoredPaths:
    scenario: ScenarioConfig
    drives: list[StoredDrive]
    static_ue: bool

    @property
    def noise_power_dbm(self) -> float:
        radio = self.scenario.radio
        return noise_power_dbm(radio.bandwidth_hz, radio.noise_figure_db)

    @property
    def post_trace(self) -> PostTrace:
        """The parameters the store was generated with."""
        array, loss = self.scenario.base_station.array, self.scenario.traffic.static_ue.blocker_loss_db
        return PostTrace(
            self.scenario.radio.tx_power_dbm,
            self.scenario.radio.measurement_noise_db,
            array.gain_error_db,
            array.phase_error_deg,
            NO_BLOCKER_LOSS if loss is None else loss,
        )


def load_paths(path: str | Path) -> StoredPaths:
    """A twin store's path tables and the scenario that generated it."""
    with TwinStore(path) as store:
        if "scenario_yaml" not in store.attrs:
            raise ConfigError(f"twin store {path}: no scenario_yaml attribute (not a generated twin store)")
        scenario = scenario_from_dict(yaml.safe_load(store.attrs["scenario_yaml"]), source=f"{path}")
        drives = []
        for episode_id in store.episode_ids:
            ep = store.episode(episode_id)
            if "paths" not in ep.groups:
                raise ConfigError(f"twin store {path}: episode {episode_id} has no paths/ group")
            table = PathTable(**{f: ep.groups["paths"][f] for f in PathTable.__dataclass_fields__})
            drives.append(StoredDrive(np.asarray(ep.data["t"]), table))
    return StoredPaths(scenario, drives, scenario.traffic.static_ue.enabled)


def noiseless_sweeps(paths: StoredPaths, model: PostTrace) -> list[np.ndarray]:
    """(T, K) noiseless RSRP per drive under `model` (detector error not applied)."""
    bs = paths.scenario.base_station
    array = replace(
        UniformLinearArray.from_config(bs),
        element_gain=element_errors(
            bs.array.num_elements, model.gain_error_db, model.phase_error_deg, bs.array.error_seed
        ),
    )
    codebook = Codebook.from_config(bs)  # the beams assume the ideal array either way
    out = []
    for drive in paths.drives:
        h = narrowband_channel(drive.paths, array)  # as generation builds it (complex64)
        if paths.static_ue and np.isfinite(model.blocker_loss_db):
            h = through_blockers(drive.paths, h, array, model.blocker_loss_db)
        out.append(rsrp_noiseless_dbm(h, codebook, model.tx_power_dbm))
    return out


def measured_drives(
    paths: StoredPaths, model: PostTrace, seed: int = 0, noiseless: list[np.ndarray] | None = None
) -> list[Drive]:
    """The sweeps a power detector reports under `model` (thermal noise and detector error drawn from
    `seed`, as twin.radio.codebook draws them). `noiseless`: sweeps already computed for `model` at its
    transmit power."""
    rng = np.random.default_rng(seed)
    sweeps = noiseless if noiseless is not None else noiseless_sweeps(paths, model)
    return [
        Drive(d.t, measure_rsrp_dbm(s, paths.noise_power_dbm, model.measurement_noise_db, rng))
        for d, s in zip(paths.drives, sweeps)
    ]

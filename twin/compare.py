"""Twin versus reality: `python -m twin.compare real=<DeepSense scenario folder | store.h5>`.

The recording is converted once (cached like any replay); the twin side is the selected scenario's
data (`scenario=...`, any `scenario.<key>=<value>` override; RF only unless `with_sensors=true`) or a
given `store=<twin.h5>`. Prints, for both sides, the distances between their sweep statistics
(twin.fidelity), and with `calibrate=true` the twin fitted to the recording: on a generated store the
post-trace parameters (twin.fidelity.twin_fit; with `calibrate_traffic`, the traffic on short stores
too), on sweeps alone the transmit power and detector error; writes
compare.png and compare.json into the run folder (outputs/compare/<time>/).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from twin.cli import entry_point, run_task
from twin.dataset.resolve import resolve_store, scenario_of
from twin.errors import ConfigError
from twin.fidelity.calibration import calibration_report
from twin.fidelity.distances import compare, format_table
from twin.fidelity.figures import plot
from twin.fidelity.statistics import store_statistics
from twin.fidelity.twin_fit import has_paths, twin_calibration
from twin.replay import replay_store
from twin.scenario.config import ScenarioConfig


def real_store(real: str | None, cache_dir: str, limit: int) -> Path:
    """The recording's store: a store file as given, or a DeepSense scenario folder converted once."""
    if not real:
        raise ConfigError("real: missing; expected a DeepSense scenario folder or a store (.h5)")
    path = Path(real)
    if path.suffix == ".h5" and path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"real = {real!r}: expected a DeepSense scenario folder or a store (.h5)")
    resolved = path.resolve()
    return replay_store(
        "deepsense", resolved.parent, cache_dir, scenario=resolved.name, limit=limit, modalities=[]
    )


def rf_only(scenario: ScenarioConfig) -> ScenarioConfig:
    """The scenario without camera, LiDAR and radar rendering (only the sweeps are compared)."""
    sensors = scenario.sensors
    off = {
        name: dataclasses.replace(getattr(sensors, name), enabled=False)
        for name in ("camera", "lidar", "radar")
    }
    return dataclasses.replace(scenario, sensors=dataclasses.replace(sensors, **off))


@run_task
def task(cfg: DictConfig) -> None:
    real_path = real_store(cfg.real, cfg.cache_dir, int(cfg.limit))
    scenario = scenario_of(cfg) if cfg.with_sensors else rf_only(scenario_of(cfg))
    twin_path = resolve_store(cfg, progress=cfg.progress, scenario=scenario).path
    real = store_statistics(real_path, drop_db=cfg.drop_db)
    twin = store_statistics(twin_path, drop_db=cfg.drop_db)
    distances = compare(real, twin)
    out = Path(HydraConfig.get().runtime.output_dir)
    print(format_table(distances, real, twin))
    report: dict = {
        "real": str(real_path),
        "twin": str(twin_path),
        "distances": [d.__dict__ for d in distances],
    }
    if cfg.calibrate and has_paths(twin_path):  # generated twin data: the full fit on its paths
        traffic = cfg.calibrate_traffic
        if traffic is None:  # short stores trace in a minute each for a static UE's single receiver
            traffic = scenario.traffic.static_ue.enabled and not cfg.store
        report["calibration"] = twin_calibration(
            real, real_path, twin_path, cfg.cache_dir, cfg.drop_db, bool(traffic), int(cfg.traffic_drives)
        )
    elif cfg.calibrate:  # sweeps only: transmit power and detector error
        report["calibration"] = calibration_report(real, real_path, twin_path, cfg.drop_db)
    figure = plot(real, twin, distances, out / "compare.png")
    (out / "compare.json").write_text(json.dumps(report, indent=2))
    print(f"plot           {figure}\nreport         {out / 'compare.json'}")


main = entry_point(task, config_name="compare")

if __name__ == "__main__":
    main()

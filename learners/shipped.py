"""Small pretrained checkpoints that ship with the project, one per predictor family and scenario.

    python -m learners.shipped scenario=urban_street          # retrain every family, write assets/
    python -m learners.shipped scenario=urban_street families=[gru]   # retrain some of them

They live in `assets/checkpoints/<scenario>/<model>/` (safetensors + config.json, a few MB in all) and
are trained on twin drives of the scenario whose runs start at `TRAINING_FIRST_RUN`, so they never
overlap the runs the main job evaluates (those start at the scenario's `dataset.first_run`, 0 by
default, and are far fewer). The main job's `learned` step uses them by default; a checkpoint that
does not fit the store it is asked to run on (inputs it lacks, another codebook) is refused in one
line.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from learners.checkpoint import CheckpointError, load_checkpoint, read_config
from learners.data import input_fields
from learners.train import fit, model_inputs, train_config
from twin.loop.drives import TwinContext
from twin.scenario.config import ScenarioConfig

REPO = Path(__file__).resolve().parent.parent
SHIPPED_DIR = REPO / "assets" / "checkpoints"
TRAINING_FIRST_RUN = 1_000_000  # training runs: far from any run a main job evaluates
TRAINING_DRIVES = 200  # about 3,700 frames of urban_street
# The families trained for shipping, with their settings (tiny presets: small files, fast decisions).
FAMILIES: dict[str, dict[str, Any]] = {
    "beamtransfuser": {"options": {"preset": "tiny"}, "epochs": 8},
    "gru": {"epochs": 20},
    "transformer": {"epochs": 20},
    "ar": {"epochs": 20},
    "mlp": {"epochs": 40},
    # Two representation stages, then the head on the frozen backbone (30 epochs: cheap, and it was
    # still learning at 5 and 15); every fourth anchor (the encoders and decoders run on each window's
    # five frames).
    "vipoe": {
        "options": {"preset": "tiny", "stage1_epochs": 2, "stage2_epochs": 2},
        "epochs": 30,
        "data": {"stride": 4},
    },
    # The JEPA world model: pretraining on 8 past + 5 future frames, then its heads on the frozen
    # backbone; every second anchor.
    "jepa": {
        "options": {"preset": "tiny", "pretrain_epochs": 6},
        "epochs": 15,
        "data": {"history": 8, "future": 6, "future_sensors": True, "stride": 2},
    },
}
_RUN = re.compile(r"^run(\d+)-")


def shipped_folder(scenario: str, model: str) -> Path:
    return SHIPPED_DIR / scenario / model


def shipped_models(scenario: str) -> dict[str, Path]:
    """The shipped checkpoint folders of a scenario, by model name (those present)."""
    folder = SHIPPED_DIR / scenario
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if (p / "config.json").is_file()}


def training_scenario(scenario: ScenarioConfig, drives: int = TRAINING_DRIVES) -> ScenarioConfig:
    """The scenario with the runs the shipped checkpoints train on (disjoint from evaluation runs)."""
    dataset = dataclasses.replace(scenario.dataset, drives=drives, first_run=TRAINING_FIRST_RUN)
    return dataclasses.replace(scenario, dataset=dataset)


def trained_runs(checkpoint: str | Path) -> set[int]:
    """The traffic runs of the drives a checkpoint trained on (from its drive split)."""
    split = read_config(checkpoint).get("split") or {}
    runs = set()
    for drive in split.get("train") or []:
        match = _RUN.match(str(drive))
        if match:
            runs.add(int(match.group(1)))
    return runs


def check_fits(checkpoint: str | Path, context: TwinContext) -> None:
    """Refuse, in one line naming the checkpoint, a model that cannot run on this store."""
    config = read_config(checkpoint)
    beams = int(config.get("deployment", {}).get("num_beams", -1))
    if beams != context.num_beams:
        raise CheckpointError(
            f"{checkpoint}: predicts {beams} beams, the store {context.path} has {context.num_beams}"
        )
    settings = train_config(config.get("train") or {"model": config["model"]})
    _, _, preprocess, inputs = model_inputs(settings)
    missing = [f"{name} ({field!r})" for name, field in input_fields(inputs, preprocess).items()
               if field not in context.fields]  # fmt: skip
    if missing:
        raise CheckpointError(
            f"{checkpoint}: reads {', '.join(missing)}, which the store {context.path} does not have"
        )


def train_shipped(
    store: str | Path,
    scenario: str,
    families: Mapping[str, Mapping[str, Any]] = FAMILIES,
    progress: bool = True,
) -> dict[str, Path]:
    """Train every family on `store` (a training store of `scenario`) into assets/; returns the folders."""
    out = {}
    for model, settings in families.items():
        folder = shipped_folder(scenario, model)
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        result = fit(store, {"model": model, **settings}, staging, progress=progress)
        load_checkpoint(result.checkpoint)  # what ships must load
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # a half-trained family never replaces a shipped one
        out[model] = folder
        metrics = result.metrics
        print(f"shipped        {model}: {folder} (validation DBA {metrics.get('dba', float('nan')):.3f})")
    return out


def _main() -> None:
    from omegaconf import DictConfig

    from twin.cli import entry_point, run_task
    from twin.dataset.resolve import resolve_store, scenario_of
    from twin.errors import UsageError

    @run_task
    def task(cfg: DictConfig) -> None:
        scenario = scenario_of(cfg)
        training = training_scenario(scenario, int(cfg.get("shipped_drives") or TRAINING_DRIVES))
        resolved = resolve_store(cfg, progress=cfg.progress, scenario=training)
        print(f"dataset        {resolved.path} (runs {TRAINING_FIRST_RUN} on: never evaluated by twin.run)")
        names = list(cfg.get("families") or FAMILIES)
        unknown = [name for name in names if name not in FAMILIES]
        if unknown:
            expected = f"expected some of {list(FAMILIES)}"
            raise UsageError(f"families: {unknown} are not shipped families; {expected}")
        families = {name: FAMILIES[name] for name in names}
        train_shipped(resolved.path, scenario.name, families, progress=cfg.progress)

    entry_point(task)()


if __name__ == "__main__":
    _main()

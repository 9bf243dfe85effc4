"""Small pretrained checkpoints that ship with the project, one per predictor family and scenario.

    python -m learners.shipped scenario=urban_street          # retrain every family, write assets/
    python -m learners.shipped scenario=urban_street families=[gru]   # retrain some of them
    python -m learners.shipped scenario=urban_street families=[beamtransfuser_pruned]  # re-derive one

They live in `assets/checkpoints/<scenario>/<model>/` (safetensors + config.json, a few MB in all) and
are trained on twin drives of the scenario whose runs start at `TRAINING_FIRST_RUN`, so they never
overlap the runs the main job evaluates (those start at the scenario's `dataset.first_run`, 0 by
default, and are far fewer). The main job's `learned` step uses them by default; a checkpoint that
does not fit the store it is asked to run on (inputs it lacks, another codebook) is refused in one
line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from learners.checkpoint import FORMAT, CheckpointError, load_checkpoint, read_config
from learners.compress import compress
from learners.data import input_fields
from learners.preprocess import CHANNEL_INPUT, channel_shape, check_channel_fits
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
    # Contrastive pretraining of the camera and channel encoders (InfoNCE, batch 64 as the paper),
    # then the beam head on the frozen encoders; one frame per sample (the channel of that frame).
    "wmfm": {
        "options": {"preset": "tiny", "pretrain_epochs": 10},
        "epochs": 30,
        "batch_size": 64,
        "data": {"history": 1},
    },
    # The JEPA world model: pretraining on 8 past + 5 future frames, then its heads on the frozen
    # backbone; every second anchor.
    "jepa": {
        "options": {"preset": "tiny", "pretrain_epochs": 6},
        "epochs": 15,
        "data": {"history": 8, "future": 6, "future_sensors": True, "stride": 2},
    },
}
# Variants derived from a shipped family's checkpoint instead of trained anew, named after the policy
# that runs them (learners.policy); their checkpoints are of the family's kind. The pruned
# BeamTransFuser keeps 0.6 of the fusion blocks (the paper's operating point), fine-tuned one epoch
# after each pruning phase on the family's own split.
DERIVED: dict[str, dict[str, Any]] = {
    "beamtransfuser_pruned": {
        "from": "beamtransfuser",
        "compress": {"ratio": 0.6, "epochs": 1, "calibration": 64, "group": 8},
    },
}
_RUN = re.compile(r"^run(\d+)-")


def shipped_kind(name: str) -> str:
    """The model kind of a shipped folder's checkpoint: its family's, or the one its variant derives from."""
    return str(DERIVED[name]["from"]) if name in DERIVED else name


def shipped_folder(scenario: str, model: str) -> Path:
    return SHIPPED_DIR / scenario / model


def shipped_models(scenario: str) -> dict[str, Path]:
    """The shipped beam-predictor checkpoint folders of a scenario, by model name (those present;
    other tasks' checkpoints beside them, e.g. scenario 17's blockage predictors, are not listed)."""
    folder = SHIPPED_DIR / scenario
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if _beam_checkpoint(p)}


def _beam_checkpoint(folder: Path) -> bool:
    """A folder with a config.json that is not another format's (a damaged one counts: loading it
    then names the damage)."""
    meta = folder / "config.json"
    if not meta.is_file():
        return False
    try:
        config = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True
    return not isinstance(config, dict) or config.get("format") in (None, FORMAT)


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
    fields = input_fields(inputs, preprocess, context.fields)
    missing = [f"{name} ({field!r})" for name, field in fields.items() if field not in context.fields]
    if missing:
        raise CheckpointError(
            f"{checkpoint}: reads {', '.join(missing)}, which the store {context.path} does not have"
        )
    if context.deployment is not None:
        served = channel_shape(context.deployment)
        check_channel_fits(config["shapes"].get(CHANNEL_INPUT), served, str(checkpoint), context.path)


def train_shipped(
    store: str | Path,
    scenario: str,
    families: Mapping[str, Mapping[str, Any]] = FAMILIES,
    progress: bool = True,
) -> dict[str, Path]:
    """Train every family on `store` (a training store of `scenario`) into assets/, then derive the
    variants among `families` (DERIVED) from their family's shipped checkpoint; returns the folders."""
    out = {}
    for model, settings in families.items():
        folder = shipped_folder(scenario, model)
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        if model in DERIVED:
            source = os.path.relpath(shipped_folder(scenario, str(settings["from"])))  # no host path ships
            compressed = {**settings["compress"], "checkpoint": source, "store": str(store)}
            metrics = compress({**compressed, "out": str(staging)}).pruned.metrics
        else:
            metrics = fit(store, {"model": model, **settings}, staging, progress=progress).metrics
        load_checkpoint(staging)  # what ships must load
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # a half-trained family never replaces a shipped one
        out[model] = folder
        print(f"shipped        {model}: {folder} (validation DBA {metrics.get('dba', float('nan')):.3f})")
    return out


def _main() -> None:
    from omegaconf import DictConfig

    from twin.cli import entry_point, run_task
    from twin.dataset.resolve import resolve_store, scenario_of
    from twin.errors import UsageError

    @run_task
    def task(cfg: DictConfig) -> None:
        known = {**FAMILIES, **DERIVED}  # families first: a variant derives from its family's new checkpoint
        names = list(cfg.families or known)
        unknown = [name for name in names if name not in known]
        if unknown:  # before anything is traced
            raise UsageError(f"families: {unknown} are not shipped families; expected some of {list(known)}")
        scenario = scenario_of(cfg)
        training = training_scenario(scenario, int(cfg.shipped_drives))
        resolved = resolve_store(cfg, progress=cfg.progress, scenario=training)
        print(f"dataset        {resolved.path} (runs {TRAINING_FIRST_RUN} on: never evaluated by twin.run)")
        families = {name: known[name] for name in known if name in names}
        train_shipped(resolved.path, scenario.name, families, progress=cfg.progress)

    entry_point(task, config_name="shipped")()


if __name__ == "__main__":
    _main()

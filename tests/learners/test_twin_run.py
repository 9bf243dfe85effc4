"""What the main job asks of the learners: train within a budget (or reuse), attach the checkpoints,
and score every policy only on drives no learned policy trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learners.train import fit
from learners.twin_run import learned_run_config, prepare_learned
from twin.errors import ConfigError
from twin.loop.evaluate import evaluate, evaluation_from
from twin.scenario.config import ScenarioConfig
from twin.store import TwinStore

QUICK = {"time_budget_s": 60, "settings": {"epochs": 2, "batch_size": 16}}
GRID = {"seeds": [0], "conditions": ["clean"], "blockage_rates_per_s": [], "dropout_probabilities": []}


def split_of(checkpoint: str | Path) -> dict[str, list[str]]:
    return json.loads((Path(checkpoint) / "config.json").read_text())["split"]


def test_trained_models_join_the_policies_and_all_are_scored_on_held_out_drives(
    tiny: ScenarioConfig, tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = learned_run_config({**QUICK, "train": ["mlp", "gru"], "checkpoint_dir": str(tmp_path)})
    plan = prepare_learned(tiny_store, config, evaluation_from(GRID), ["genie", "gps"], progress=False)
    assert plan.policies == ["genie", "gps", "mlp", "gru"]
    assert f"training       gru on {tiny_store} (at most 60 s)" in capsys.readouterr().out
    checkpoints = {n: plan.evaluation.policy_options[n]["checkpoint"] for n in ("mlp", "gru")}
    assert all(Path(c).parent.parent == tmp_path for c in checkpoints.values())
    trained = set().union(*(split_of(c)["train"] for c in checkpoints.values()))
    with TwinStore(tiny_store) as store:
        every = store.episode_ids
    assert plan.drive_ids == [d for d in every if d not in trained] and plan.drive_ids
    assert "never trained on" in plan.notes[0]

    result = evaluate(
        tiny_store, tiny.faults, plan.evaluation, plan.policies, progress=False, drive_ids=plan.drive_ids,
        notes=plan.notes,
    )  # fmt: skip
    assert result.drives == plan.drive_ids
    assert {row["policy"] for row in result.rows} == {"genie", "gps", "mlp", "gru"}
    assert all(row["drives"] == len(plan.drive_ids) for row in result.rows)
    assert plan.notes[0] in result.notes

    # The same settings on the same data: the checkpoints are reused, not retrained.
    stamps = {n: (Path(c) / "model.safetensors").stat().st_mtime_ns for n, c in checkpoints.items()}
    again = prepare_learned(tiny_store, config, evaluation_from(GRID), ["genie"], progress=False)
    out = capsys.readouterr().out
    assert "reusing        gru trained with these settings" in out and "training " not in out
    for name, checkpoint in checkpoints.items():
        assert again.evaluation.policy_options[name]["checkpoint"] == checkpoint
        assert (Path(checkpoint) / "model.safetensors").stat().st_mtime_ns == stamps[name]


def test_a_checkpoint_configured_by_hand_also_restricts_the_drives(tiny_store: Path, tmp_path: Path) -> None:
    checkpoint = fit(tiny_store, {"model": "mlp", "epochs": 1}, tmp_path / "mlp", progress=False).checkpoint
    evaluation = evaluation_from({**GRID, "policy_options": {"mlp": {"checkpoint": str(checkpoint)}}})
    config = learned_run_config({"train": []})
    plan = prepare_learned(tiny_store, config, evaluation, ["genie", "mlp"], progress=False)
    assert plan.policies == ["genie", "mlp"]
    assert plan.drive_ids == split_of(checkpoint)["val"]
    # A checkpoint of other data (here: no split recorded for this store) leaves every drive in.
    meta = json.loads((checkpoint / "config.json").read_text())
    meta["store"]["config_digest"] = "0" * 64
    (checkpoint / "config.json").write_text(json.dumps(meta))
    assert prepare_learned(tiny_store, config, evaluation, ["mlp"], progress=False).drive_ids is None


def test_a_time_budget_that_cuts_training_is_said_and_not_reused_without_one(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert learned_run_config({}).time_budget_s is None  # by default the epochs decide
    capped = learned_run_config(
        {"train": ["mlp"], "settings": {"epochs": 5, "time_budget_s": 1e-9}, "checkpoint_dir": str(tmp_path)}
    )
    plan = prepare_learned(tiny_store, capped, evaluation_from(GRID), ["genie"], progress=False)
    (note,) = [n for n in plan.notes if "time budget" in n]
    assert note.startswith("mlp: training stopped by its time budget (1e-09 s) after 1 of 5 epochs")
    assert f"note           {note}" in capsys.readouterr().out
    # The same settings without a budget: the cut checkpoint is not reused, training runs its epochs.
    uncapped = learned_run_config(
        {"train": ["mlp"], "settings": {"epochs": 5}, "checkpoint_dir": str(tmp_path)}
    )
    again = prepare_learned(tiny_store, uncapped, evaluation_from(GRID), ["genie"], progress=False)
    out = capsys.readouterr().out
    assert "retraining     mlp: its checkpoint was cut short by a time budget" in out
    assert not [n for n in again.notes if "time budget" in n] and "note " not in out
    checkpoint = again.evaluation.policy_options["mlp"]["checkpoint"]
    assert checkpoint == plan.evaluation.policy_options["mlp"]["checkpoint"]  # one cache, same folder
    meta = json.loads((Path(checkpoint) / "config.json").read_text())
    assert meta["stopped"] in ("epochs", "early stop") and len(meta["history"]) >= 1


def test_a_model_needing_sensors_the_store_lacks_is_skipped_with_a_note(
    tiny_store: Path, tmp_path: Path
) -> None:
    config = learned_run_config(
        {**QUICK, "train": ["beamtransfuser", "mlp"], "checkpoint_dir": str(tmp_path)}
    )
    stripped = tmp_path / "no-camera.h5"
    _copy_without(tiny_store, stripped, "camera")
    plan = prepare_learned(stripped, config, evaluation_from(GRID), ["genie"], progress=False)
    assert plan.policies == ["genie", "mlp"]  # the GPS MLP needs no camera
    assert plan.notes[0] == "beamtransfuser not trained: the store has no 'camera' (camera)"


def _copy_without(source: Path, target: Path, field: str) -> None:
    """A valid copy of a store with one sensor field removed (a store recorded without a camera)."""
    import shutil

    import h5py

    shutil.copy(source, target)
    with h5py.File(target, "r+") as f:
        for group in f["episodes"].values():
            if field in group:
                del group[field]
        f.attrs["modalities"] = json.dumps([m for m in json.loads(f.attrs["modalities"]) if m != field])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": ["resnet"]}, "learned.train[0] = 'resnet': unknown model; available: "),
        (
            {"train": ["gru"], "options": {"mlp": {}}},
            "learned.options.mlp: not a model in learned.train (gru)",
        ),
        ({"train": ["gru"], "settings": {"epochs": -1}}, "learned.settings.epochs = -1"),
        ({"train": ["gru"], "options": {"gru": {"bogus": 1}}}, "learned.options.gru.bogus: unknown key"),
        ({"time_budget_s": 0}, "learned.time_budget_s = 0"),
        ({"bogus": 1}, "learned.bogus: unknown key"),
    ],
)
def test_bad_learned_settings_fail_in_one_line(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        learned_run_config(data)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_shipped_checkpoints_join_by_default_and_every_drive_is_scored(
    tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The main job's default: the checkpoints shipped for the store's scenario (trained on another
    store) run beside the classical policies, with the Kalman filter, on every drive."""
    import learners.shipped as shipped

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "assets")
    fit(tiny_store, {"model": "mlp", "epochs": 1}, tmp_path / "assets" / "tiny" / "mlp", progress=False)
    plan = prepare_learned(
        tiny_store, learned_run_config({}), evaluation_from(GRID), ["genie"], progress=False
    )
    assert plan.policies == ["genie", "mlp", "kalman"]
    assert plan.evaluation.policy_options["mlp"]["checkpoint"] == str(tmp_path / "assets" / "tiny" / "mlp")
    assert "shipped        mlp" in capsys.readouterr().out and any(
        "shipped for tiny" in n for n in plan.notes
    )
    # fit() on this very store: its held-out drives still apply (it is the same data here).
    retrained = learned_run_config({**QUICK, "train": ["mlp"], "checkpoint_dir": str(tmp_path / "ck")})
    mine = prepare_learned(tiny_store, retrained, evaluation_from(GRID), ["genie"], progress=False)
    assert Path(mine.evaluation.policy_options["mlp"]["checkpoint"]).parent.parent == tmp_path / "ck"
    none = prepare_learned(
        tiny_store, learned_run_config({"shipped": False}), evaluation_from(GRID), ["genie"], progress=False
    )
    assert none.policies == ["genie"] and none.drive_ids is None

"""Training: reproducible by seed, early stopping, time budget, checkpoints (round trip, validation,
no code execution), frozen layers, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from learners.checkpoint import CONFIG, WEIGHTS, CheckpointError, load_checkpoint
from learners.data import WindowDataset, load_frames
from learners.train import fit, train, train_config, train_or_load
from tests.conftest import REPO
from twin.errors import ConfigError

FAST = {"model": "mlp", "epochs": 2, "batch_size": 16}


def test_same_seed_same_checkpoint_and_round_trip(tiny_store: Path, tmp_path: Path) -> None:
    config = {"model": "beamtransfuser", "epochs": 1, "seed": 7}
    first = fit(tiny_store, config, tmp_path / "a", progress=False)
    second = fit(tiny_store, config, tmp_path / "b", progress=False)
    a, b = load_file(str(first.checkpoint / WEIGHTS)), load_file(str(second.checkpoint / WEIGHTS))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = load_file(
        str(fit(tiny_store, {**config, "seed": 8}, tmp_path / "c", progress=False).checkpoint / WEIGHTS)
    )
    assert not all(torch.equal(a[k], other[k]) for k in a)
    # Round trip: the loaded model decides exactly as the trained one on the validation windows.
    checkpoint = load_checkpoint(first.checkpoint)
    meta = json.loads((first.checkpoint / CONFIG).read_text())
    assert meta["model"] == "beamtransfuser" and meta["options"]["preset"] == "tiny"
    assert set(meta["split"]["val"]).isdisjoint(meta["split"]["train"]) and meta["split"]["val"]
    assert meta["metrics"]["samples"] > 0 and 0 <= meta["metrics"]["dba"] <= 1
    frames = load_frames(tiny_store, checkpoint.model.inputs, checkpoint.preprocess)
    val = [i for i, d in enumerate(frames.drives) if d.id in meta["split"]["val"]]
    loaded = next(iter(DataLoader(WindowDataset(frames, val, checkpoint.data), batch_size=8)))
    again = load_checkpoint(first.checkpoint / WEIGHTS).model  # the weights file names the folder too
    with torch.no_grad():
        assert torch.equal(
            checkpoint.model(loaded["inputs"], loaded["masks"]), again(loaded["inputs"], loaded["masks"])
        )


def test_early_stopping_and_time_budget(tiny_store: Path, tmp_path: Path) -> None:
    stuck = fit(
        tiny_store, {**FAST, "epochs": 20, "lr": 1e-7, "patience": 2}, tmp_path / "stuck", progress=False
    )
    assert stuck.stopped == "early stop" and len(stuck.history) == 3
    hurried = fit(
        tiny_store, {**FAST, "epochs": 50, "time_budget_s": 1e-3}, tmp_path / "hurried", progress=False
    )
    assert hurried.stopped == "time budget" and len(hurried.history) == 1
    assert load_checkpoint(hurried.checkpoint).kind == "mlp"
    assert (
        train(tiny_store, FAST, tmp_path / "budget", time_budget_s=1e-3, progress=False)
        == tmp_path / "budget"
    )


def test_nothing_to_train_still_saves_an_evaluated_checkpoint(tiny_store: Path, tmp_path: Path) -> None:
    result = fit(tiny_store, {"model": "kalman"}, tmp_path / "kalman", progress=False)
    assert result.stopped == "nothing to train" and result.history == []
    assert result.metrics["samples"] > 0 and result.metrics["dba"] > 0.3


def test_frozen_backbone_keeps_its_weights_while_the_head_learns(tiny_store: Path, tmp_path: Path) -> None:
    base = fit(tiny_store, FAST, tmp_path / "base", progress=False).checkpoint
    tuned = fit(tiny_store, {**FAST, "init_from": str(base), "freeze": ["net.0", "net.3"], "seed": 1},
                tmp_path / "tuned", progress=False).checkpoint  # fmt: skip
    before, after = load_file(str(base / WEIGHTS)), load_file(str(tuned / WEIGHTS))
    assert torch.equal(before["net.0.weight"], after["net.0.weight"])
    assert torch.equal(before["net.3.bias"], after["net.3.bias"])
    assert not torch.equal(before["net.9.weight"], after["net.9.weight"])
    with pytest.raises(ConfigError, match="no parameter starts with 'backbone'"):
        fit(tiny_store, {**FAST, "freeze": ["backbone"]}, tmp_path / "bad", progress=False)


def test_train_or_load_reuses_a_checkpoint_of_the_same_settings(tiny_store: Path, tmp_path: Path) -> None:
    folder = train_or_load(tiny_store, FAST, tmp_path, progress=False)
    stamp = (folder / WEIGHTS).stat().st_mtime_ns
    assert train_or_load(tiny_store, FAST, tmp_path, progress=False) == folder
    assert (folder / WEIGHTS).stat().st_mtime_ns == stamp
    assert train_or_load(tiny_store, {**FAST, "lr": 2e-3}, tmp_path, progress=False) != folder


def test_broken_checkpoints_fail_in_one_line_naming_the_file(tiny_store: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")
    folder = fit(tiny_store, FAST, tmp_path / "ok", progress=False).checkpoint
    meta, weights = folder / CONFIG, folder / WEIGHTS
    good_meta, good_weights = meta.read_text(), weights.read_bytes()

    meta.write_text("{not json")
    with pytest.raises(CheckpointError, match=f"^{meta}: not valid JSON"):
        load_checkpoint(folder)
    meta.write_text(json.dumps({**json.loads(good_meta), "format": "pickle"}))
    with pytest.raises(CheckpointError, match=f"^{meta}: not a beam-learner-checkpoint config"):
        load_checkpoint(folder)
    meta.write_text(json.dumps({**json.loads(good_meta), "options": {"hidden": [0]}}))
    with pytest.raises(CheckpointError, match=r"options\.hidden = \[0\]: expected values in"):
        load_checkpoint(folder)
    meta.write_text(good_meta)

    tensors = load_file(str(weights))
    tensors["net.0.weight"] = torch.zeros(3, 3)
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError, match=rf"^{weights}: tensor 'net.0.weight' is \(3, 3\)"):
        load_checkpoint(folder)
    del tensors["net.0.weight"]
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError, match=r"missing \['net.0.weight'\]"):
        load_checkpoint(folder)
    weights.write_bytes(b"\x80\x04pickled" * 4)  # not safetensors: refused, never unpickled
    with pytest.raises(CheckpointError, match=f"^{weights}: not a readable safetensors file"):
        load_checkpoint(folder)
    weights.write_bytes(good_weights)
    assert load_checkpoint(folder).kind == "mlp"


def test_bad_training_settings_fail_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^train\.model = 'svm': unknown model; available: "):
        train_config({"model": "svm"})
    with pytest.raises(ConfigError, match=r"^train\.options\.layers = 0: expected a value in \[1, 64\]$"):
        train_config({"model": "beamtransfuser", "options": {"layers": 0}})
    with pytest.raises(ConfigError, match=r"^train\.data\.future = -1: expected"):
        train_config({"data": {"future": -1}})
    with pytest.raises(ConfigError, match=r"^train\.label_fraction = 0: expected a value in \[0\.01, 1\]"):
        train_config({"label_fraction": 0})


def test_command_line_trains_with_validation_metrics(tiny_store: Path, tmp_path: Path) -> None:
    common = [
        sys.executable, "-m", "learners.train", "scenario=tiny", "scenario.dataset.drives=8",
        "scenario.dataset.frames_per_drive=20", "scenario.traffic.served_per_run=1",
        f"cache_dir={tiny_store.parent}", f"hydra.run.dir={tmp_path / 'run'}", "progress=false",
    ]  # fmt: skip
    command = [*common, "model=gru", "train.epochs=2", f"checkpoint_dir={tmp_path / 'gru'}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "traced" not in result.stdout  # the cached store is reused
    assert "gru epoch 2: train loss" in result.stdout and "DBA" in result.stdout
    assert f"checkpoint     {tmp_path / 'gru'}" in result.stdout
    assert load_checkpoint(tmp_path / "gru").kind == "gru"
    bad = subprocess.run([*common, "model=gru", "model.options.hidden=0"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: model.options.hidden = 0: expected a value in [1, 4096]"


def test_zero_epochs_is_refused_instead_of_saving_untrained_weights(tiny_store: Path, tmp_path: Path) -> None:
    message = "train.epochs = 0: expected a value in [1, 100000]"
    with pytest.raises(ConfigError) as refused:
        train_config({"model": "gru", "epochs": 0})
    assert str(refused.value) == message
    command = [sys.executable, "-m", "learners.train", "scenario=tiny", "model=gru", "train.epochs=0",
               f"cache_dir={tiny_store.parent}", f"checkpoint_dir={tmp_path / 'gru'}",
               f"hydra.run.dir={tmp_path / 'run'}", "progress=false"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2 and result.stderr == f"error: {message}\n"
    assert not (tmp_path / "gru").exists()  # no checkpoint written

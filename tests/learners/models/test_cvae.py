"""The CVAE that generates a missing radar or LiDAR input: shapes, the decoder-only inference, training
through learners.train (deterministic, no posterior collapse, better than the mean map), errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from learners.checkpoint import load_checkpoint, read_config
from learners.data import WindowDataset
from learners.models.registry import build_model, model_options
from learners.train import fit, generator_settings, train_config
from tests.conftest import REPO
from tests.learners.models.test_beamtransfuser import batch, context
from twin.errors import ConfigError


def test_generated_inputs_have_the_targets_shape_and_the_encoder_is_not_used() -> None:
    for target in ("radar", "lidar"):
        model = build_model("cvae", {"target": target}, context()).eval()
        inputs, masks = batch(3)
        masks[target][:] = False
        model.encoder.forward = None  # any call of the encoder fails
        with torch.no_grad():
            filled, filled_masks = model.fill(inputs, masks)
            assert filled[target].shape == inputs[target].shape
            fr = model.predictor.frames
            assert filled_masks[target][:, -fr:].all() and not filled_masks[target][:, :-fr].any()
            assert not torch.equal(filled[target][:, -fr:], inputs[target][:, -fr:])
            assert model(inputs, masks).shape == (3, 1, 64)
        assert set(model.conditions) == {"camera", "radar", "lidar"} - {target}


def test_present_frames_are_kept_unless_all_are_replaced() -> None:
    model = build_model("cvae", {}, context()).eval()
    inputs, masks = batch(2)
    masks["radar"][0] = False
    with torch.no_grad():
        filled, _ = model.fill(inputs, masks, generator=torch.Generator().manual_seed(0))
        assert torch.equal(filled["radar"][1], inputs["radar"][1])
        assert not torch.equal(filled["radar"][0, -1], inputs["radar"][0, -1])
        again, _ = model.fill(inputs, masks, generator=torch.Generator().manual_seed(0))
        assert torch.equal(filled["radar"], again["radar"])


def test_options_are_checked_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^model\.options\.target = 'camera': expected one of 'radar'"):
        model_options("cvae", {"target": "camera"})
    with pytest.raises(ConfigError, match=r"^model\.options\.target = 'radar': the predictor reads no radar"):
        model_options("cvae", {"predictor_options": {"modalities": ["camera", "lidar", "gps"]}})
    with pytest.raises(ConfigError, match=r"^predictor: missing; model=cvae needs predictor="):
        generator_settings({"model": "cvae"}, None, "radar")


@pytest.fixture(scope="module")
def trained_cvae(tiny_store: Path, trained_beamtransfuser: Path, tmp_path_factory: pytest.TempPathFactory):
    base = {
        "model": "cvae",
        "epochs": 4,
        "seed": 0,
        "lr": 3e-3,
        "batch_size": 8,
        "patience": 10,
        "keep": "last",
    }
    settings = generator_settings(base, trained_beamtransfuser, "radar")
    folders = []
    for name in ("a", "b"):
        folder = tmp_path_factory.mktemp("cvae") / name
        result = fit(tiny_store, settings, folder, progress=False)
        folders.append((folder, result))
    return folders


def test_training_is_deterministic_keeps_the_predictor_and_learns(
    trained_cvae, trained_beamtransfuser: Path, tiny_store: Path
) -> None:
    (first, result), (second, _) = trained_cvae
    a, b = load_checkpoint(first).model, load_checkpoint(second).model
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    predictor = load_checkpoint(trained_beamtransfuser).model.state_dict()
    for name, tensor in predictor.items():  # frozen: the predictor's weights unchanged
        assert torch.equal(a.state_dict()["predictor." + name], tensor), name
    assert result.metrics["samples"] > 0 and read_config(first)["model"] == "cvae"
    # No posterior collapse, and the reconstruction beats the mean map of the training frames.
    model = a.train()
    settings = train_config(read_config(first)["train"])
    checkpoint = load_checkpoint(first)
    from learners.data import load_frames

    frames = load_frames(tiny_store, model.inputs, checkpoint.preprocess, checkpoint.data.label)
    train_ids, _ = frames.split(checkpoint.data, settings.seed)
    windows = WindowDataset(frames, train_ids, checkpoint.data, training=False)
    loader = torch.utils.data.DataLoader(windows, batch_size=64)
    torch.manual_seed(0)
    errors, mean_errors, kls = [], [], []
    with torch.no_grad():
        targets = torch.cat([model._frames(b["inputs"], b["masks"], "radar")[0] for b in loader])
        mean_map = targets.mean(0)
        for b in loader:
            y, mask = model._frames(b["inputs"], b["masks"], "radar")
            condition, present = model._condition(b["inputs"], b["masks"])
            rows = mask & present
            mu, log_var = model.encode(y[rows], condition[rows])
            kls.append(float((-0.5 * (1 + log_var - mu**2 - log_var.exp()).sum(1)).mean()))
            errors.append(float(((model.decode(mu, condition[rows]) - y[rows]) ** 2).mean()))
            mean_errors.append(float(((mean_map - y[rows]) ** 2).mean()))
    assert np.mean(kls) > 0.01
    assert np.mean(errors) < np.mean(mean_errors)


def test_command_line_trains_a_generator(
    tiny_store: Path, trained_beamtransfuser: Path, tmp_path: Path
) -> None:
    common = [
        sys.executable, "-m", "learners.train", f"store={tiny_store}", f"hydra.run.dir={tmp_path / 'run'}",
        "progress=false", "model=cvae", "train.epochs=1",
    ]  # fmt: skip
    command = [
        *common,
        "target=lidar",
        f"predictor={trained_beamtransfuser}",
        f"checkpoint_dir={tmp_path / 'g'}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "cvae epoch 1" in result.stdout
    assert load_checkpoint(tmp_path / "g").model.target == "lidar"
    bad = subprocess.run([*common, "target=lidar"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: predictor: missing")

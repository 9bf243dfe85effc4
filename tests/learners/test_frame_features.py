"""The closed loop's fast path: a policy encodes each frame once, when it arrives, and hands the
window's features to the model; its logits must be those of the model run on the raw window (the
reference every decision used to pay for), under sensor dropout and across lockstep lanes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from learners.models.registry import ModelContext, build_model, model_class, model_options
from learners.policy import collate, policy_class
from learners.preprocess import Preprocessor, preprocess_config
from twin.loop.env import BeamSelectionEnv
from twin.store import TwinStore
from twin.store.deployment import read_deployment

# (history, future) as each family is trained for the main job (learners.shipped)
WINDOWS = {"beamtransfuser": (5, 1), "vipoe": (5, 1), "jepa": (8, 6)}


def untrained(kind: str, store: Path) -> torch.nn.Module:
    """A tiny, randomly initialised model of `kind` for the store (equivalence needs no training)."""
    torch.manual_seed(0)
    options = model_options(kind, {"preset": "tiny"})
    cls = model_class(kind)
    preprocess = preprocess_config(cls.preprocess_defaults(options))
    with TwinStore(store) as opened:
        deployment = read_deployment(opened)
    pre = Preprocessor(preprocess, deployment)
    shapes = {m: pre.shape(m) for m in cls.inputs_of(options) if m != "beams"}
    history, future = WINDOWS[kind]
    context = ModelContext(deployment.num_beams, history, future, shapes, deployment, preprocess)
    return build_model(kind, options, context).eval()


@pytest.mark.parametrize("kind", sorted(WINDOWS))
def test_cached_frame_features_give_the_reference_logits(kind: str, tiny_store: Path) -> None:
    model = untrained(kind, tiny_store)
    assert model.frame_local_inputs()
    policy = policy_class(kind)()
    policy.use(model)
    faults = {"dropout": {"camera": {"probability": 0.5, "mode": "missing"}}}
    sensors = BeamSelectionEnv(tiny_store, modalities=[]).context.sensors
    modalities = sorted(policy.reads(sensors))
    envs = [BeamSelectionEnv(tiny_store, faults=faults, modalities=modalities) for _ in range(2)]
    observations = [env.reset(options={"episode": i, "fault_seed": 3})[0] for i, env in enumerate(envs)]
    policy.reset_batch(envs[0].context, [np.random.default_rng(i) for i in range(2)])
    missing = 0
    for _ in range(12):
        logits = policy.scores(observations)
        with torch.inference_mode():
            inputs, masks = collate(policy.windows)
            reference = model(inputs, masks)[:, 0].numpy()
        np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-5)
        missing += int((~masks["camera"][:, -1]).sum())
        observations = [env.step(int(np.argmax(row)))[0] for env, row in zip(envs, logits)]
    assert missing  # dropout did hide frames: the zero frame's features were exercised


def test_features_only_for_frame_local_inputs(tiny_store: Path) -> None:
    model = untrained("beamtransfuser", tiny_store)
    with pytest.raises(ValueError, match="gps"), model.reading_features(("gps",)):
        pass
    with model.reading_features(("camera",)):
        assert model._pre_encoded == {"camera"}
    assert not model._pre_encoded

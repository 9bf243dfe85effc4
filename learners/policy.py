"""A trained predictor as an environment policy (twin.loop.policies.Policy).

The adapter keeps its own history window, built frame by frame from the observations exactly as
learners.data builds training windows: sensor inputs of the last H frames through the same
preprocessing (a frame whose mask is 0 — missing, in an outage, before the first fix — enters as
zeros with mask 0), and the RF history of the beams it served with their RSRP feedback. It serves the
top-ranked beam of the first predicted frame and reports the top three. Deciding for many drives at
once (the evaluator's lockstep lanes), it keeps one window per lane and runs one forward pass for
all of them; one drive is a batch of one. A model with frame-local encoders (the first image stage of
BeamTransFuser, the JEPA's image tokenisers, VI-PoE's experts' encoders) has each frame encoded once,
when it arrives, and reads the window as those features (`encode_once`; the same logits to float
precision, tests/learners/test_frame_features.py).

Options (evaluation.policy_options.<name>): `checkpoint` (a folder written by learners.train),
`probe` (measure the top-`probe` predicted beams and serve the strongest: beam refinement at the
price of `probe` measurement slots per frame; 0: trust the prediction), `initial_sweep` (a model
that reads only the RF history sweeps every beam while it has no feedback yet, as initial access),
`generate` (a CVAE checkpoint, learners.models.cvae: the frames in which its modality is missing are
generated from the others instead of entering masked; without `checkpoint`, the policy runs the
BeamTransFuser frozen inside the CVAE checkpoint; z is the prior's mean, or with `sample` drawn from
N(0, I), seeded at every reset).

Besides every model name, `beamtransfuser_pruned` (a `checkpoint` written by learners.compress) and
`beamtransfuser_generated` (with `generate`) are registered, so one closed loop compares the full, the
pruned and the generating BeamTransFuser under the same sensor dropout.

Every model name (beamtransfuser, gru, transformer, ar, kalman, mlp) is registered as a policy name
on import of this module; `kalman` needs no checkpoint (it is built from the store's deployment).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from learners.checkpoint import CheckpointError, load_checkpoint, read_config
from learners.data import RF_INPUT
from learners.models.cvae import FilledInputs
from learners.models.registry import MODELS, BeamPredictor, ModelContext, model_class
from learners.preprocess import (
    CHANNEL_INPUT,
    PreprocessConfig,
    Preprocessor,
    channel_shape,
    check_channel_fits,
    input_source,
    rsrp_normalised,
)
from learners.threads import one_thread
from twin.errors import ConfigError
from twin.loop.drives import TwinContext
from twin.loop.policies import POLICIES, Decision, Link, Observation, Policy, mask_of, register_policy
from twin.store import TwinStore
from twin.store.deployment import read_deployment
from twin.validation import between, spec

_PARENT_PID = os.getpid()
VARIANTS = ("pruned", "generated")


@dataclass(frozen=True)
class LearnedOptions:
    checkpoint: str = spec("")
    probe: int = spec(0, check=between(0, 4096))
    initial_sweep: bool = spec(True)
    generate: str = spec("")  # CVAE checkpoint filling a missing radar or LiDAR input
    sample: bool = spec(False)  # with generate: z ~ N(0, I) (seeded per reset) instead of the prior's mean


class FrameMemo:
    """Preprocessed sensor frames by content. The base station's frames recur in every drive of a run
    and in every fault condition that leaves the modality alone, and preprocessing them is about a
    third of a decision's time; a SHA-1 digest of the raw bytes identifies a frame (hashing is
    most of a memo hit's cost, and SHA-1 runs twice as fast as BLAKE2 here; no adversary). Bounded
    by bytes, not entries: the tiny GPS features must not push the image frames out (an evaluation
    condition on urban_street touches about 2,000 entries, 10 MB, then the next one the same)."""

    def __init__(self, preprocessor: Preprocessor, capacity_bytes: int = 256 * 2**20):
        self.preprocessor = preprocessor
        self.capacity_bytes = capacity_bytes
        self.entries: OrderedDict[tuple[object, ...], np.ndarray] = OrderedDict()
        self.size_bytes = 0
        self.hits = self.misses = 0

    def __call__(self, name: str, raw: np.ndarray) -> np.ndarray:
        raw = np.ascontiguousarray(raw)
        key = (name, raw.dtype.str, raw.shape, hashlib.sha1(raw.data, usedforsecurity=False).digest())
        frame = self.entries.get(key)
        if frame is not None:
            self.hits += 1
            self.entries.move_to_end(key)
            return frame
        self.misses += 1
        frame = self.preprocessor.frame(name, raw)
        frame.flags.writeable = False  # shared by every window that holds this frame
        self.entries[key] = frame
        self.size_bytes += frame.nbytes
        while self.size_bytes > self.capacity_bytes and self.entries:
            self.size_bytes -= self.entries.popitem(last=False)[1].nbytes
        return frame

    def clear(self) -> None:
        self.entries.clear()
        self.size_bytes = 0


class HistoryWindow:
    """The last frames of inputs a model reads, assembled into a batch of one window."""

    def __init__(
        self,
        model: BeamPredictor,
        preprocessor: Preprocessor,
        noise_power_dbm: float,
        memo: FrameMemo,
        encode_once: bool = True,
    ):
        context = model.context
        self.model = model
        self.preprocessor = preprocessor
        self.memo = memo
        self.noise_power_dbm = noise_power_dbm
        self.sensors = [n for n in model.inputs if n != RF_INPUT]
        self.rf = RF_INPUT in model.inputs
        h = context.history
        self.frames: dict[str, deque[np.ndarray]] = {n: deque(maxlen=h) for n in self.sensors}
        self.masks: dict[str, deque[bool]] = {n: deque(maxlen=h) for n in self.sensors}
        self.zeros = {n: np.zeros(preprocessor.shape(n), np.float32) for n in self.sensors}
        self.beams: deque[tuple[int, float, bool]] = deque(maxlen=h)
        # Frame-local features of the frames held (None: not encoded yet; the policy encodes every
        # lane's new frames in one batch before its forward pass).
        self.encoded = [n for n in model.frame_local_inputs() if n in self.sensors] if encode_once else []
        self.features: dict[str, deque[torch.Tensor | None]] = {n: deque(maxlen=h) for n in self.encoded}
        for _ in range(h):  # frames before the drive's start: zeros, mask 0
            for n in self.sensors:
                self.frames[n].append(self.zeros[n])
                self.masks[n].append(False)
            for n in self.encoded:
                self.features[n].append(None)
            self.beams.append((0, 0.0, False))

    def observe(self, obs: Mapping[str, np.ndarray]) -> None:
        """Add this frame's sensors and the feedback on the previous frame's beam."""
        for name in self.sensors:
            source = self.preprocessor.source(name)
            usable = source in obs and mask_of(obs, source)
            self.frames[name].append(self.memo(name, obs[source]) if usable else self.zeros[name])
            self.masks[name].append(bool(usable))
            if name in self.features:
                self.features[name].append(None)
        if self.rf:
            if mask_of(obs, "rsrp"):
                rsrp = float(
                    rsrp_normalised(float(obs["rsrp"][0]), self.noise_power_dbm, self.preprocessor.config)
                )
                self.beams.append((int(obs["beam"][0]), rsrp, True))
            else:
                self.beams.append((0, 0.0, False))

    @property
    def has_feedback(self) -> bool:
        return any(ok for _, _, ok in self.beams)

    def batch(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """This window as a batch of one."""
        return collate([self])


def encode_new_frames(windows: Sequence[HistoryWindow]) -> None:
    """Encode the frames the windows hold without features yet: per input, one batch of them all
    (a missing frame's zeros included, so its features are what forward would compute)."""
    model = windows[0].model
    for name in windows[0].encoded:
        todo = [(w, i) for w in windows for i, f in enumerate(w.features[name]) if f is None]
        if not todo:
            continue
        frames = np.stack([w.frames[name][i] for w, i in todo])
        features = model.encode_frames(name, torch.from_numpy(frames))
        for (w, i), feature in zip(todo, features):
            w.features[name][i] = feature


def collate_features(
    windows: Sequence[HistoryWindow],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """As `collate`, with the frame-local inputs as their features (encoded first where new)."""
    encode_new_frames(windows)
    inputs, masks = collate(windows, skip=frozenset(windows[0].encoded))
    for name in windows[0].encoded:
        stacked = torch.stack([f for w in windows for f in w.features[name]])
        inputs[name] = stacked.view(len(windows), -1, *stacked.shape[1:])
    return inputs, masks


def collate(
    windows: Sequence[HistoryWindow], skip: frozenset[str] = frozenset()
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Windows of one model as a batch: inputs (B, H, ...) and masks (B, H), window i in row i."""
    first = windows[0]
    count, history = len(windows), len(first.beams)
    inputs, masks = {}, {}
    for name in first.sensors:
        masks[name] = torch.tensor([list(w.masks[name]) for w in windows])
        if name in skip:
            continue
        frames = np.stack([frame for w in windows for frame in w.frames[name]])
        inputs[name] = torch.from_numpy(frames.reshape(count, history, *frames.shape[1:]))
    if first.rf:
        beams, rsrp, ok = (np.array([[entry[j] for entry in w.beams] for w in windows]) for j in range(3))
        inputs[RF_INPUT] = torch.from_numpy(beams.astype(np.int64))
        inputs["beam_rsrp"] = torch.from_numpy(rsrp.astype(np.float32))
        masks[RF_INPUT] = torch.from_numpy(ok.astype(bool))
    return inputs, masks


class LearnedPolicy(Policy):
    """Serves the beams a trained predictor ranks highest for the current frame."""

    name = "learned"
    kind = ""  # the model kind a registered name insists on ("" for load_policy: any)
    variant = ""  # "pruned": needs a pruned checkpoint; "generated": needs `generate`
    encode_once = True  # False: re-encode every history frame at every decision (the reference)

    def __init__(self, options: LearnedOptions | None = None):
        self.options = options or LearnedOptions()
        self.model: BeamPredictor | None = None
        self.preprocessor: Preprocessor | None = None
        key = f"evaluation.policy_options.{self.name}"
        generator = None
        if self.options.generate:
            generator = load_checkpoint(self.options.generate)
            if generator.kind != "cvae":
                raise CheckpointError(
                    f"{generator.path}: a {generator.kind} checkpoint; {key}.generate takes a cvae one "
                    "(python -m learners.train model=cvae)"
                )
        if self.options.checkpoint:
            checkpoint = load_checkpoint(self.options.checkpoint)
            if self.kind and checkpoint.kind != self.kind:
                raise CheckpointError(
                    f"{checkpoint.path}: a {checkpoint.kind} checkpoint, but policy {self.name!r} runs "
                    f"{self.kind} models"
                )
            if self.variant == "pruned" and not getattr(checkpoint.model, "pruned", False):
                raise CheckpointError(
                    f"{checkpoint.path}: not a pruned checkpoint (python -m learners.compress writes one)"
                )
            model = checkpoint.model
        elif generator is not None:
            model = generator.model.predictor
        else:
            model = None
        if model is not None:
            if generator is not None:
                model = FilledInputs(model, generator.model, sample=self.options.sample)
            self.use(model)
        elif self.kind and not model_class(self.kind).needs_training:
            # Known before reset (evaluators ask what a policy reads first): the default inputs.
            self.modalities = frozenset({input_source("gps", PreprocessConfig())})

    def use(self, model: BeamPredictor) -> None:
        """Run `model` (and preprocess its inputs as it was trained)."""
        self.model = model.eval()
        self.preprocessor = Preprocessor(model.context.preprocess, model.context.deployment)
        self.memo = FrameMemo(self.preprocessor)
        self.modalities = frozenset(self.preprocessor.source(n) for n in model.inputs if n != RF_INPUT)

    def reset(self, context: TwinContext, rng: np.random.Generator) -> None:
        self.reset_batch(context, [rng])

    def reset_batch(self, context: TwinContext, rngs: Sequence[np.random.Generator]) -> None:
        super().reset(context, rngs[0] if rngs else np.random.default_rng(0))
        if os.getpid() != _PARENT_PID:
            # A forked evaluation worker: torch's OpenMP pool does not survive fork (the first
            # parallel op would hang), and the evaluator already runs one worker per core.
            torch.set_num_threads(1)
        if self.model is None:
            self._build_untrained(context)
        model = self.model
        if model.context.num_beams != context.num_beams:
            raise ConfigError(
                f"policy {self.name}: the model predicts {model.context.num_beams} beams, "
                f"the store {context.path} has {context.num_beams}"
            )
        if context.deployment is not None and CHANNEL_INPUT in model.inputs:
            trained = model.context.shapes.get(CHANNEL_INPUT)
            served = channel_shape(context.deployment)  # the environment observes the csi where there is one
            check_channel_fits(trained, served, f"policy {self.name}", context.path)
        if isinstance(model, FilledInputs):
            model.reseed()  # the same draws of z in every evaluation condition
        self.windows = [
            HistoryWindow(model, self.preprocessor, context.noise_power_dbm, self.memo, self.encode_once)
            for _ in rngs
        ]
        self.window = self.windows[0] if self.windows else None  # the one drive's, outside lockstep
        self._all = np.arange(context.num_beams)

    def _build_untrained(self, context: TwinContext) -> None:
        key = f"evaluation.policy_options.{self.name}"
        if self.variant == "generated":
            raise ConfigError(f"{key}.generate: missing; policy {self.name} needs a cvae checkpoint folder")
        if self.variant == "pruned":
            raise ConfigError(
                f"{key}.checkpoint: missing; policy {self.name} needs a pruned checkpoint (learners.compress)"
            )
        if not self.kind or model_class(self.kind).needs_training:
            model = self.kind or "..."
            raise ConfigError(
                f"policy {self.name}: no checkpoint; train one (python -m learners.train model={model}) "
                f"and set evaluation.policy_options.{self.name}.checkpoint=<folder>"
            )
        with TwinStore(context.path) as store:
            deployment = read_deployment(store)
        model_context = ModelContext(deployment.num_beams, 5, 1, {}, deployment, PreprocessConfig())
        self.use(model_class(self.kind)(model_class(self.kind).Options(), model_context))

    @torch.inference_mode()
    def scores(self, observations: Sequence[Observation]) -> np.ndarray:
        """Observe the frame of every lane still driving and return the model's (B, K) logits for
        them, from one forward pass."""
        windows = self.windows[: len(observations)]
        for window, obs in zip(windows, observations):
            window.observe(obs)
        with one_thread():
            inputs, masks = collate_features(windows)
            with self.model.reading_features(tuple(windows[0].encoded)):
                return self.model(inputs, masks)[:, 0].numpy()

    def act(self, obs: Mapping[str, np.ndarray], link: Link) -> Decision:
        return self.act_batch([obs], [link])[0]

    def act_batch(self, observations: Sequence[Observation], links: Sequence[Link]) -> list[Decision]:
        logits = self.scores(observations)
        return [self._decide(row, window, link) for row, window, link in zip(logits, self.windows, links)]

    def _decide(self, logits: np.ndarray, window: HistoryWindow, link: Link) -> Decision:
        if self.options.initial_sweep and not window.sensors and not window.has_feedback:
            return _ranked(link.measure(self._all), self._all)
        order = np.argsort(-logits, kind="stable")
        if self.options.probe:
            candidates = order[: self.options.probe]
            best = int(candidates[np.argmax(link.measure(candidates))])
            order = np.concatenate([[best], order[order != best]])
        return order[:3]


def _ranked(values: np.ndarray, beams: np.ndarray) -> np.ndarray:
    return beams[np.argsort(-values, kind="stable")[:3]]


def policy_class(kind: str, variant: str = "") -> type[LearnedPolicy]:
    """The policy class registered for a model kind (its `name` is the kind[_variant])."""
    name = f"{kind}_{variant}" if variant else kind
    return type(f"Learned_{name}", (LearnedPolicy,), {"name": name, "kind": kind, "variant": variant})


def load_policy(checkpoint: str | Path, probe: int = 0, initial_sweep: bool = True) -> LearnedPolicy:
    """A policy running the model of a checkpoint folder (named after the model)."""
    options = LearnedOptions(checkpoint=str(checkpoint), probe=probe, initial_sweep=initial_sweep)
    return policy_class(str(read_config(checkpoint)["model"]))(options)


def register_learned_policies() -> list[str]:
    """Register every model kind as a policy name (idempotent); returns the names."""
    names = []
    for kind in MODELS:
        if kind not in POLICIES or getattr(POLICIES[kind].factory, "kind", None) != kind:
            register_policy(kind, policy_class(kind), LearnedOptions)
        names.append(kind)
    for variant in VARIANTS:
        name = f"beamtransfuser_{variant}"
        if name not in POLICIES or getattr(POLICIES[name].factory, "variant", None) != variant:
            register_policy(name, policy_class("beamtransfuser", variant), LearnedOptions)
        names.append(name)
    from learners.blockage.policy import register_blockage_policy  # here: it imports this package's siblings

    register_blockage_policy()
    names.append("blockage_aware")
    return names


register_learned_policies()

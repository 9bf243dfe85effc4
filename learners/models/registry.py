"""The interface every beam predictor implements, and the registry that builds one by name.

A predictor maps a batch of input windows (see learners.data) to beam logits (B, F, K): one row of K
scores per target frame. It declares the inputs it reads, so the pipeline preprocesses only those
and the policy adapter observes only those. Options are a frozen dataclass per model, validated
with one-line errors (`model.options.<key> = value: expected ...`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from learners.preprocess import PreprocessConfig
from twin.errors import ConfigError
from twin.store.deployment import Deployment
from twin.validation import build, to_dict

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelContext:
    """What a model's shape depends on: the data it reads and the deployment it serves."""

    num_beams: int
    history: int
    future: int
    shapes: dict[str, tuple[int, ...]]  # per sensor input, one frame
    deployment: Deployment
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)


@dataclass(frozen=True)
class PretrainStage:
    """A representation-learning stage a model runs before its supervised head (learners.stages):
    its own objective (`BeamPredictor.stage_loss`), epochs and learning rate, on windows whose
    sensor inputs are `unpaired` (each from another window) or `aligned`, from the training drives
    of the model's `aligned` share, the rest (`unaligned`, all when there is no rest) or `all`."""

    name: str
    epochs: int
    lr: float
    windows: str = "aligned"  # unpaired | aligned
    drives: str = "all"  # all | aligned | unaligned


class BeamPredictor(nn.Module):
    """Base class: `forward(inputs, masks)` → (B, F, K) logits."""

    kind: ClassVar[str] = ""
    Options: ClassVar[type] = object
    needs_training: ClassVar[bool] = True  # False: usable straight from the store's deployment
    _pre_encoded: frozenset[str] = frozenset()  # inputs forward reads as features (reading_features)

    def __init__(self, options: Any, context: ModelContext):
        super().__init__()
        self.options = options
        self.context = context

    @classmethod
    def inputs_of(cls, options: Any) -> tuple[str, ...]:
        """The model inputs (learners.data.INPUTS) this configuration reads."""
        raise NotImplementedError

    @classmethod
    def preprocess_defaults(cls, options: Any) -> dict[str, Any]:
        """Preprocessing settings this configuration expects unless the user overrides them."""
        return {}

    @classmethod
    def convert_state(cls, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Tensors of an older checkpoint layout in this model's current one (default: as they are)."""
        return tensors

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """A model's own training objective on a batch; None: the focal loss on its logits."""
        return None

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.inputs_of(self.options)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        raise NotImplementedError

    # Pretraining (optional): stages before the supervised head, which then trains on a frozen backbone.

    def pretraining_stages(self) -> tuple[PretrainStage, ...]:
        return ()

    def stage_loss(
        self, stage: PretrainStage, batch: dict[str, Any], progress: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The stage's objective on a batch (`progress`: share of the stage's steps done, 0 … 1), and
        its terms for the progress lines."""
        raise NotImplementedError

    def backbone_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes frozen for the head stage after pretraining."""
        return ()

    def frozen_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes frozen from the start (a head on encoders loaded by init_from)."""
        return ()

    def aligned_fraction(self) -> float:
        """Share of the training drives whose windows aligned stages see (the rest: unaligned ones)."""
        return 1.0

    # Frame-local encoding (optional): inputs whose every frame goes through an encoder that sees that
    # frame alone before anything mixes frames. A closed-loop policy encodes each frame once when it
    # arrives and hands the features of the whole window in, instead of re-encoding every history
    # frame at every decision (learners.policy).

    def frame_local_inputs(self) -> tuple[str, ...]:
        """The inputs `encode_frames` can encode (default: none)."""
        return ()

    def encode_frames(self, name: str, frames: torch.Tensor) -> torch.Tensor:
        """(N, ...) frames of input `name` → (N, ...) features, each row from its own frame only."""
        raise NotImplementedError(f"{self.kind}: no frame-local encoder for {name}")

    def frame_features(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) frames → (B, T, ...) features; passed through when the caller gave features."""
        if name in self._pre_encoded:
            return x
        return self.encode_frames(name, x.flatten(0, 1)).unflatten(0, x.shape[:2])

    @contextmanager
    def reading_features(self, names: tuple[str, ...]) -> Iterator[None]:
        """Within the block, `forward` reads `inputs[name]` as `encode_frames` features (B, T, ...)
        for every name given; a missing frame's features must be those of the all-zero frame, as
        forward would compute them."""
        unknown = set(names) - set(self.frame_local_inputs())
        if unknown:
            raise ValueError(f"{self.kind}: {sorted(unknown)} are not frame-local inputs")
        before = self._pre_encoded
        self._pre_encoded = frozenset(names)
        try:
            yield
        finally:
            self._pre_encoded = before


MODELS: dict[str, type[BeamPredictor]] = {}


class PresetModel(BeamPredictor):
    """A predictor whose options start from a named preset (`options.preset`, default `tiny`), with
    preprocessing defaults per preset and inputs chosen from `options.modalities`."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    PREPROCESS_PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    MODALITIES: ClassVar[tuple[str, ...]] = ()  # in the order the model reads them

    @classmethod
    def resolve_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """A preset's values under the explicitly given ones."""
        preset = options.get("preset", "tiny")
        if preset not in cls.PRESETS:
            raise ConfigError(f"model.options.preset = {preset!r}: expected one of {', '.join(cls.PRESETS)}")
        return {**cls.PRESETS[preset], **options}

    @classmethod
    def preprocess_defaults(cls, options: Any) -> dict[str, Any]:
        return dict(cls.PREPROCESS_PRESETS[options.preset])

    @classmethod
    def inputs_of(cls, options: Any) -> tuple[str, ...]:
        return tuple(m for m in cls.MODALITIES if m in options.modalities)


def register_model(cls: type[BeamPredictor]) -> type[BeamPredictor]:
    MODELS[cls.kind] = cls
    return cls


def model_class(kind: str, key: str = "model.name") -> type[BeamPredictor]:
    if kind not in MODELS:
        raise ConfigError(f"{key} = {kind!r}: unknown model; available: {', '.join(MODELS)}")
    return MODELS[kind]


def model_options(kind: str, options: Mapping[str, Any] | None, prefix: str = "model.options") -> Any:
    """The validated options dataclass of a model (presets resolved by the model's own builder)."""
    cls = model_class(kind)
    resolve: Callable[[dict[str, Any]], dict[str, Any]] = getattr(cls, "resolve_options", lambda d: d)
    return build(cls.Options, resolve(dict(options or {})), prefix)


def options_json(options: Any) -> dict[str, Any]:
    return to_dict(options)


def build_model(kind: str, options: Mapping[str, Any] | Any, context: ModelContext) -> BeamPredictor:
    cls = model_class(kind)
    if not isinstance(options, cls.Options):
        options = model_options(kind, options)
    return cls(options, context)

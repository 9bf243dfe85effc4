"""A conditional VAE that fills a missing radar or LiDAR input of BeamTransFuser from the modalities
present (the paper's §IV-B): radar from camera + LiDAR, LiDAR from camera + radar; the camera is never
generated.

- condition c(x): per available image modality a small strided CNN pooled to a vector, concatenated;
- encoder q(z | x, y) (training only): Conv2d → ReLU → adaptive average pool → flatten, with c(x),
  into two FC layers for μ and log σ² (the paper's encoder);
- decoder p(y | x, z): c(x) ⊕ z → FC → a small grid, upsampled by transposed convolutions to y's
  shape (the paper leaves it open);
- loss (16): squared error of the reconstruction + β · KL(q ‖ N(0, I)), per input element.

The checkpoint carries a frozen copy of the BeamTransFuser it feeds (`predictor`, initialised from the
predictor's checkpoint and never trained here): its forward generates the target for every frame the
predictor reads — the real target is ignored — with z ~ N(0, I), decoder only, and returns that
predictor's logits, so validation scores the generated input. `fill` generates only the frames whose
target is missing, for a policy whose sensor drops out. Given a torch generator, z ~ N(0, I) is drawn
from it (learners.generation_study: mean ± std over draws); without one z is the prior's mean, so a
policy decides the same one drive at a time and in lockstep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from learners.models.beamtransfuser import IMAGE_INPUTS, BeamTransFuser, BeamTransFuserOptions
from learners.models.registry import BeamPredictor, ModelContext, Tensors, register_model
from twin.errors import ConfigError
from twin.validation import between, one_of, spec

TARGETS = ("radar", "lidar")


@dataclass(frozen=True)
class CVAEOptions:
    target: str = spec("radar", check=one_of(*TARGETS))
    latent: int = spec(16, check=between(1, 4096))  # the paper: 128
    width: int = spec(32, check=between(1, 4096))  # CNN channels and condition size per modality
    beta: float = spec(1.0, check=between(0, 1000))
    # The frozen predictor's options (from its checkpoint: learners.train model=cvae predictor=<folder>).
    predictor_options: BeamTransFuserOptions = spec(factory=BeamTransFuserOptions)

    def validate(self, prefix: str) -> None:
        options = self.predictor_options
        images = [m for m in IMAGE_INPUTS if m in options.modalities]
        if self.target not in images:
            raise ConfigError(
                f"{prefix}.target = {self.target!r}: the predictor reads no {self.target} "
                f"(its modalities: {', '.join(options.modalities)})"
            )
        if len(images) < 2:
            raise ConfigError(f"{prefix}.target = {self.target!r}: the predictor has no other image input")


def _cnn(channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, width, 5, 2, 2),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, 2, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((2, 2)),
        nn.Flatten(),
        nn.Linear(4 * width, width),
        nn.ReLU(),
    )


@register_model
class ModalityCVAE(BeamPredictor):
    kind = "cvae"
    Options = CVAEOptions
    init_prefix: ClassVar[str] = "predictor."  # learners.train init_from a beamtransfuser checkpoint

    @classmethod
    def preprocess_defaults(cls, options: CVAEOptions) -> dict[str, Any]:
        return BeamTransFuser.preprocess_defaults(options.predictor_options)

    @classmethod
    def inputs_of(cls, options: CVAEOptions) -> tuple[str, ...]:
        return BeamTransFuser.inputs_of(options.predictor_options)

    def __init__(self, options: CVAEOptions, context: ModelContext):
        super().__init__(options, context)
        self.predictor = BeamTransFuser(options.predictor_options, context)
        self.target = options.target
        self.conditions = [m for m in self.predictor.images if m != self.target]
        channels, height, width = context.shapes[self.target]
        self.shape = (channels, height, width)
        w = options.width
        in_channels = BeamTransFuser.IN_CHANNELS
        self.condition = nn.ModuleDict({m: _cnn(in_channels[m], w) for m in self.conditions})
        conditioned = w * len(self.conditions)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 5, 2, 2), nn.ReLU(), nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten()
        )
        self.mu = nn.Linear(16 * w + conditioned, options.latent)
        self.log_var = nn.Linear(16 * w + conditioned, options.latent)
        self.grid = (max(1, min(8, height // 4)), max(1, min(8, width // 4)))
        self.decoder_input = nn.Linear(options.latent + conditioned, w * self.grid[0] * self.grid[1])
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(w, w, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(w, w, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(w, channels, 3, 1, 1),
        )
        # The decoder adds its output to a mean map, set to the first training batch's mean (as
        # ActNorm initialises from data) and trained on: it then learns what the condition adds.
        self.mean_map = nn.Parameter(torch.zeros(channels, height, width))
        nn.init.zeros_(self.decoder[-1].weight)  # the residual starts at 0: the mean map exactly
        nn.init.zeros_(self.decoder[-1].bias)
        self.register_buffer("mean_set", torch.tensor(False))
        self.last_terms: dict[str, float] = {}

    def _frames(self, inputs: Tensors, masks: Tensors, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames the predictor reads, flattened to (B·frames, ...), zeroed where masked."""
        fr = self.predictor.frames
        x, m = inputs[name][:, -fr:], masks[name][:, -fr:]
        x = x * m.view(*m.shape, 1, 1, 1)
        return x.flatten(0, 1), m.flatten(0, 1)

    def _condition(self, inputs: Tensors, masks: Tensors) -> tuple[torch.Tensor, torch.Tensor]:
        """c(x) per frame, and whether any condition modality was present in it."""
        parts, present = [], []
        for m in self.conditions:
            x, mask = self._frames(inputs, masks, m)
            parts.append(self.condition[m](x))
            present.append(mask)
        return torch.cat(parts, 1), torch.stack(present, 1).any(1)

    def decode(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        h = self.decoder_input(torch.cat([z, condition], 1)).view(len(z), -1, *self.grid)
        y = self.decoder(h)
        if tuple(y.shape[-2:]) != self.shape[1:]:
            y = F.interpolate(y, size=self.shape[1:], mode="bilinear", align_corners=False)
        return y + self.mean_map

    def encode(self, y: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.encoder(y), condition], 1)
        return self.mu(h), self.log_var(h)

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """Negative ELBO per input element on the frames whose target and some condition are present."""
        inputs, masks = batch["inputs"], batch["masks"]
        y, target_mask = self._frames(inputs, masks, self.target)
        condition, present = self._condition(inputs, masks)
        rows = target_mask & present
        if not rows.any():
            return (self.mu.weight.sum() * 0.0) + 0.0
        y, condition = y[rows], condition[rows]
        if not self.mean_set:
            with torch.no_grad():
                self.mean_map.copy_(y.mean(0))
                self.mean_set.fill_(True)
        mu, log_var = self.encode(y, condition)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        reconstruction = ((self.decode(z, condition) - y) ** 2).flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + log_var - mu**2 - log_var.exp()).sum(1)).mean()
        self.last_terms = {"reconstruction": float(reconstruction.detach()), "kl": float(kl.detach())}
        return (reconstruction + self.options.beta * kl) / y[0].numel()

    def generate(
        self, inputs: Tensors, masks: Tensors, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated target frames (B·frames, C, h, w), and the frames that had a condition to generate
        from. z ~ N(0, I) drawn from `generator`; without one, z = 0, the prior's mean: deterministic
        and independent of what else is in the batch (the same decisions one drive at a time or in
        lockstep). The encoder is not used."""
        condition, present = self._condition(inputs, masks)
        shape = (len(condition), self.options.latent)
        z = torch.zeros(shape) if generator is None else torch.randn(shape, generator=generator)
        return self.decode(z, condition), present

    def fill(
        self,
        inputs: Tensors,
        masks: Tensors,
        only_missing: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensors, Tensors]:
        """Inputs and masks with the target generated in the frames the predictor reads: those whose
        target is missing (or all of them), wherever a condition modality is present."""
        fr = self.predictor.frames
        generated, present = self.generate(inputs, masks, generator)
        real, real_mask = inputs[self.target][:, -fr:], masks[self.target][:, -fr:]
        batch = real.shape[0]
        replace = present.view(batch, fr)
        if only_missing:
            replace = replace & ~real_mask
        filled = torch.where(replace.view(batch, fr, 1, 1, 1), generated.view_as(real), real)
        target = torch.cat([inputs[self.target][:, :-fr], filled], 1)
        mask = torch.cat([masks[self.target][:, :-fr], real_mask | replace], 1)
        return {**inputs, self.target: target}, {**masks, self.target: mask}

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        return self.predictor(*self.fill(inputs, masks, only_missing=False))


class FilledInputs(BeamPredictor):
    """A predictor whose missing target input (of `generator`'s modality) is generated first: what a
    policy runs with `generate`. z is the prior's mean unless `sample`, then drawn from its own
    generator, reseeded at every reset."""

    def __init__(
        self, predictor: BeamPredictor, generator: ModalityCVAE, sample: bool = False, seed: int = 0
    ):
        super().__init__(predictor.options, predictor.context)
        target = generator.target
        if target not in predictor.inputs:
            raise ConfigError(f"generate: the {predictor.kind} model reads no {target}; nothing to generate")
        ours, theirs = predictor.context, generator.context
        if ours.shapes.get(target) != theirs.shapes.get(target) or ours.preprocess != theirs.preprocess:
            raise ConfigError(
                f"generate: the generator's {target} input ({theirs.shapes.get(target)}) is not preprocessed "
                f"as the predictor's ({ours.shapes.get(target)}); train it for this predictor"
            )
        self.kind = predictor.kind
        self.predictor, self.generator = predictor, generator
        self.seed = seed
        self.noise = torch.Generator().manual_seed(seed) if sample else None

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.predictor.inputs

    def reseed(self) -> None:
        if self.noise is not None:
            self.noise.manual_seed(self.seed)

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        return self.predictor(*self.generator.fill(inputs, masks, only_missing=True, generator=self.noise))

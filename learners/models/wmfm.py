"""WMFM: the contrastive wireless multimodal foundation model, after
shared/papers/wmfm-wireless-multimodal-foundation-model.txt (§IV, §VII; reading notes NOTES.md §3).

- Stage 1 (self-supervised, learners.stages): an image encoder (own ResNet, random init) and a
  convolutional channel encoder map the base station's camera frame and the uplink channel estimate
  of the same frame (the store's csi, (2, N, S) over its subcarriers — the paper's 16 × 8 — or the
  narrowband h, (2, N, 1), where it has none) to d-dimensional embeddings; projection heads (used
  only here) map both into the space where the symmetric InfoNCE (eq. 6, τ = 0.1) pulls each pair
  together and pushes the batch's other pairs apart. Optionally the channel is noised at an SNR
  drawn per sample (§VII-A).
- Stage 2 (learners.train, frozen encoders, batch-norm statistics too): light heads over
  z = [z_CAM; z_CSI]: a modality MLP each → a one-layer transformer over the two tokens (the paper's
  attention gate) → MLP. Kinds:
  - `wmfm`: Stage 1, then the K-beam head (beyond the paper: WMFM as a `twin.run` policy);
  - `wmfm_beam`, `wmfm_los`, `wmfm_loc`: the beam, LoS/nLoS (focal loss, eq. 17) or localisation
    head (x regression, lane class, vehicle-kind class; eq. 19) on encoders from `init_from`
    (a `wmfm` checkpoint); with `freeze_encoders=false` and no `init_from` the same network is the
    paper's E2E baseline; `modalities=[channel]` is its CSI-only ablation.

Choices the paper leaves open (NOTES.md §3 Risks): channel-encoder depth and widths, the head sizes,
α = 0.75 for non-LoS and γ = 2, λ = 1 for every localisation term, x in units of `x_scale_m`, and one
camera instead of three. Each window's last frame is the sample (train with data.history=1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from learners.models.registry import ModelContext, PresetModel, PretrainStage, Tensors, register_model
from learners.models.wmfm_blocks import (
    ChannelEncoder,
    ImageEncoder,
    add_channel_noise,
    class_focal_loss,
    info_nce,
    projection_head,
)
from learners.task_metrics import balanced_accuracy, per_class
from twin.validation import between, each_between, one_of, spec

MODALITIES = ("camera", "channel")
LANES = 4  # lane classes (the paper's O1 street has 4; urban_street uses 2 of them)
KINDS = 3  # vehicle-kind classes (learners.data.VEHICLE_KINDS)
ENCODERS = ("camera_encoder", "channel_encoder")

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {  # NOTES.md §3: ResNet 16/32/64/64 at 36×64, channel convs 16/32/32, projection 64 → 16
        "dim": 32,
        "image_widths": (16, 32, 64, 64),
        "image_blocks": (1, 1, 1, 1),
        "bottleneck": False,
        "paper_stem": False,
        "image_hidden": 64,
        "channel_widths": (16, 32, 32),
        "channel_hidden": 32,
        "projection": (64, 16),
        "head_width": 32,
        "pretrain_epochs": 10,
    },
    "paper": {  # §VII: ResNet-50, MLP 1024 → 128, channel MLP 32 → 128, projection 256 → 32
        "dim": 128,
        "image_widths": (64, 128, 256, 512),
        "image_blocks": (3, 4, 6, 3),
        "bottleneck": True,
        "paper_stem": True,
        "image_hidden": 1024,
        "channel_widths": (32, 64, 64),
        "channel_hidden": 32,
        "projection": (256, 32),
        "head_width": 128,
        "pretrain_epochs": 60,
    },
}

PREPROCESS_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"camera_size": (36, 64)},
    "paper": {"camera_size": (90, 160)},  # the 180×320 camera halved (the paper: three cameras ÷ 4)
}


def _modalities(value: Any) -> str | None:
    if value and len(set(value)) == len(value) and all(v in MODALITIES for v in value):
        return None
    return "a non-empty list of distinct names among " + ", ".join(MODALITIES)


@dataclass(frozen=True)
class WMFMOptions:
    preset: str = spec("tiny", check=one_of(*PRESETS))
    modalities: tuple[str, ...] = spec(MODALITIES, check=_modalities)
    dim: int = spec(32, check=between(1, 4096))  # encoder embedding d
    image_widths: tuple[int, ...] = spec((16, 32, 64, 64), check=each_between(1, 4096))
    image_blocks: tuple[int, ...] = spec((1, 1, 1, 1), check=each_between(1, 64))
    bottleneck: bool = spec(False)  # ResNet-50 bottleneck blocks (×4 expansion)
    paper_stem: bool = spec(False)  # 7×7 stride-2 convolution + max-pool
    image_hidden: int = spec(64, check=between(1, 8192))
    channel_widths: tuple[int, ...] = spec((16, 32, 32), check=each_between(1, 4096))
    channel_hidden: int = spec(32, check=between(1, 8192))
    projection: tuple[int, ...] = spec((64, 16), check=each_between(1, 8192))
    tau: float = spec(0.1, check=between(1e-3, 10))
    # Stage 1 (kind `wmfm`; the head variants default to 0: their encoders come from init_from)
    pretrain_epochs: int = spec(10, check=between(0, 100_000))
    pretrain_lr: float = spec(1e-3, check=between(1e-7, 10))
    pretrain_noise: bool = spec(False)  # add channel noise at an SNR ~ N(snr_mean_db, snr_std_db²)
    snr_mean_db: float = spec(20.0, check=between(-50, 100))
    snr_std_db: float = spec(10.0, check=between(0, 100))
    # Stage 2
    freeze_encoders: bool = spec(True)  # false: E2E (the encoders train with the head)
    head_width: int = spec(32, check=between(1, 8192))
    focal_gamma: float = spec(2.0, check=between(0, 10))
    nlos_alpha: float = spec(0.75, check=between(0, 1))  # α of non-LoS; LoS gets 1 − α
    x_scale_m: float = spec(30.0, check=between(0.1, 1e4))
    lambda_x: float = spec(1.0, check=between(0, 1e4))
    lambda_y: float = spec(1.0, check=between(0, 1e4))
    lambda_z: float = spec(1.0, check=between(0, 1e4))

    def validate(self, prefix: str) -> None:
        from twin.errors import ConfigError

        if len(self.image_blocks) != len(self.image_widths):
            raise ConfigError(
                f"{prefix}.image_blocks = {list(self.image_blocks)}: expected one count per width "
                f"({len(self.image_widths)})"
            )


CONTRASTIVE = "contrastive"


class FusionHead(nn.Module):
    """z = [z_CAM; z_CSI] → one MLP per modality → a transformer layer over the modality tokens (a
    missing modality's token is masked out) → mean of the present tokens → MLP → outputs."""

    def __init__(self, modalities: list[str], dim: int, width: int, outputs: int):
        super().__init__()
        self.modalities = modalities
        self.token = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(dim, width), nn.GELU(), nn.Linear(width, width)) for m in modalities}
        )
        self.position = nn.Parameter(torch.zeros(len(modalities), width))
        self.attention = nn.TransformerEncoderLayer(width, 2, 2 * width, dropout=0.0, batch_first=True)
        self.out = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, outputs))

    def forward(self, embeddings: Tensors, present: torch.Tensor) -> torch.Tensor:
        tokens = torch.stack([self.token[m](embeddings[m]) for m in self.modalities], 1) + self.position
        absent = ~present
        absent = absent & ~absent.all(1, keepdim=True)  # nothing present: attend to the zero tokens
        mixed = self.attention(tokens, src_key_padding_mask=absent)
        keep = (~absent).unsqueeze(-1).to(mixed.dtype)
        return self.out((mixed * keep).sum(1) / keep.sum(1))


class WMFM(PresetModel):
    """The encoders, the projection heads and one task head (`TASK`)."""

    Options = WMFMOptions
    PRESETS = PRESETS
    PREPROCESS_PRESETS = PREPROCESS_PRESETS
    MODALITIES = MODALITIES
    TASK: ClassVar[str] = "beam"

    def __init__(self, options: WMFMOptions, context: ModelContext):
        super().__init__(options, context)
        o = options
        self.names = list(self.inputs_of(o))
        if "camera" in self.names:
            self.camera_encoder = ImageEncoder(
                o.image_widths, o.image_blocks, o.bottleneck, o.paper_stem, o.image_hidden, o.dim
            )
            self.camera_projection = projection_head(o.dim, o.projection)
        if "channel" in self.names:
            self.channel_encoder = ChannelEncoder(
                context.shapes["channel"], o.channel_widths, o.channel_hidden, o.dim
            )
            self.channel_projection = projection_head(o.dim, o.projection)
        outputs = {"beam": context.future * context.num_beams, "los": 2, "loc": 1 + LANES + KINDS}[self.TASK]
        self.head = FusionHead(self.names, o.dim, o.head_width, outputs)
        self.register_buffer("alpha", torch.tensor([o.nlos_alpha, 1 - o.nlos_alpha]), persistent=False)

    # --- learners.stages / learners.train hooks ----------------------------------------------------

    def pretraining_stages(self) -> tuple[PretrainStage, ...]:
        if self.options.pretrain_epochs == 0 or len(self.names) < 2:
            return ()
        return (PretrainStage(CONTRASTIVE, self.options.pretrain_epochs, self.options.pretrain_lr),)

    def backbone_prefixes(self) -> tuple[str, ...]:
        return self.encoder_prefixes() if self.options.freeze_encoders else ()

    def frozen_prefixes(self) -> tuple[str, ...]:
        """Frozen from the start: encoders loaded by init_from (the head variants)."""
        if self.pretraining_stages() or not self.options.freeze_encoders:
            return ()
        return self.encoder_prefixes()

    def encoder_prefixes(self) -> tuple[str, ...]:
        return tuple(f"{m}_encoder" for m in self.names)

    def stage_loss(
        self, stage: PretrainStage, batch: dict[str, Any], progress: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        # Only pairs with both frames (modality dropout or a missing frame leaves no positive pair).
        masks = batch["masks"]
        both = masks["camera"][:, -1].bool() & masks["channel"][:, -1].bool()
        inputs = {m: batch["inputs"][m][both] for m in MODALITIES}
        camera, channel = self.projections(inputs, noise=self.options.pretrain_noise)
        loss = info_nce(camera, channel, self.options.tau)
        return loss, {"log N": float(np.log(max(len(camera), 1)))}

    def projections(self, inputs: Tensors, noise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected camera and channel embeddings of each window's last frame (the InfoNCE space)."""
        z = self.embeddings(inputs, noise=noise)
        return self.camera_projection(z["camera"]), self.channel_projection(z["channel"])

    def embeddings(self, inputs: Tensors, noise: bool = False) -> Tensors:
        """Encoder embeddings (B, d) per modality of each window's last frame."""
        out = {}
        if "camera" in self.names:
            out["camera"] = self.camera_encoder(inputs["camera"][:, -1])
        if "channel" in self.names:
            h = inputs["channel"][:, -1]
            if noise:
                h, _ = add_channel_noise(h, self.options.snr_mean_db, self.options.snr_std_db)
            out["channel"] = self.channel_encoder(h)
        return out

    def head_outputs(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        present = torch.stack([masks[m][:, -1].bool() for m in self.names], 1)
        return self.head(self.embeddings(inputs), present)

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        out = self.head_outputs(inputs, masks)
        if self.TASK == "beam":
            return out.view(-1, self.context.future, self.context.num_beams)
        return out


@register_model
class WMFMBeamPretrained(WMFM):
    """`wmfm`: Stage 1 here, then the K-beam head on the frozen encoders."""

    kind = "wmfm"


class WMFMHead(WMFM):
    """A head variant: Stage 1 off unless asked (`pretrain_epochs`), encoders from init_from."""

    @classmethod
    def resolve_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {**super().resolve_options(options), "pretrain_epochs": options.get("pretrain_epochs", 0)}


@register_model
class WMFMBeam(WMFMHead):
    kind = "wmfm_beam"


@register_model
class WMFMLoS(WMFMHead):
    """LoS/nLoS on the served frame: class 1 LoS, 0 non-LoS; focal loss with α per class."""

    kind = "wmfm_los"
    TASK = "los"

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        logits = self(batch["inputs"], batch["masks"])
        return class_focal_loss(logits, batch["labels"]["los"][:, 0], self.alpha, self.options.focal_gamma)

    @torch.no_grad()
    def evaluate_task(self, batches: Any) -> dict[str, Any]:
        self.eval()
        logits, truth = [], []
        for batch in batches:
            logits.append(self(batch["inputs"], batch["masks"]))
            truth.append(batch["labels"]["los"][:, 0])
        if not logits:
            return {}
        lg, y = torch.cat(logits), torch.cat(truth)
        predicted, t = lg.argmax(-1).numpy(), y.numpy()
        classes = per_class(predicted, t, 2)
        return {
            "samples": len(t),
            "loss": float(class_focal_loss(lg, y, self.alpha, self.options.focal_gamma)),
            "accuracy": float((predicted == t).mean()),
            "balanced_accuracy": balanced_accuracy(predicted, t, 2),
            "score": balanced_accuracy(predicted, t, 2),
            "nlos": {k: v[0] for k, v in classes.items()},
            "los": {k: v[1] for k, v in classes.items()},
            "los_share": float(t.mean()),
        }


@register_model
class WMFMLoc(WMFMHead):
    """Localisation (eq. 19): x by regression (in units of x_scale_m), lane and vehicle kind by class.
    The Euclidean error uses x and the lane's centre across the street (class centres, NOTES.md §3)."""

    kind = "wmfm_loc"
    TASK = "loc"

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return out[:, 0], out[:, 1 : 1 + LANES], out[:, 1 + LANES :]

    def losses(self, out: torch.Tensor, labels: Tensors) -> dict[str, torch.Tensor]:
        x, lane, kind = self.split(out)
        target_x = labels["x"][:, 0] / self.options.x_scale_m
        kinds = labels["kind"][:, 0]
        known = kinds >= 0
        z = F.cross_entropy(kind[known], kinds[known]) if bool(known.any()) else out.new_zeros(())
        return {"x": F.mse_loss(x, target_x), "y": F.cross_entropy(lane, labels["lane"][:, 0]), "z": z}

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        terms = self.losses(self(batch["inputs"], batch["masks"]), batch["labels"])
        o = self.options
        return o.lambda_x * terms["x"] + o.lambda_y * terms["y"] + o.lambda_z * terms["z"]

    @torch.no_grad()
    def evaluate_task(self, batches: Any, lane_width_m: float = 3.5) -> dict[str, Any]:
        self.eval()
        outs, labels = [], []
        for batch in batches:
            outs.append(self(batch["inputs"], batch["masks"]))
            labels.append({k: batch["labels"][k] for k in ("x", "lane", "kind")})
        if not outs:
            return {}
        out = torch.cat(outs)
        truth = {k: torch.cat([b[k] for b in labels]) for k in labels[0]}
        terms = self.losses(out, truth)
        x, lane, kind = self.split(out)
        error_x = (x * self.options.x_scale_m - truth["x"][:, 0]).abs()
        lane_hat, kind_hat = lane.argmax(-1), kind.argmax(-1)
        error_y = (lane_hat - truth["lane"][:, 0]).abs().float() * lane_width_m
        euclid = torch.sqrt(error_x**2 + error_y**2)
        o = self.options
        loss = o.lambda_x * terms["x"] + o.lambda_y * terms["y"] + o.lambda_z * terms["z"]
        kinds = truth["kind"][:, 0]
        return {
            "samples": len(out),
            "loss": float(loss),
            "score": -float(euclid.mean()),
            "euclidean_m": float(euclid.mean()),
            "x_mae_m": float(error_x.mean()),
            "x_mse": float(terms["x"]),
            "y_ce": float(terms["y"]),
            "z_ce": float(terms["z"]),
            "y_accuracy": float((lane_hat == truth["lane"][:, 0]).float().mean()),
            "z_accuracy": float((kind_hat == kinds).float().mean()),
            "kinds_present": int(torch.unique(kinds[kinds >= 0]).numel()),
        }

"""BeamTransFuser (camera, LiDAR, radar and GPS fused by transformers at four scales), after the
paper's §III and §V-B (see shared/papers/beamtransfuser-compression-modality-generation.txt):

- branches: camera, LiDAR and radar each start with a 7×7 stride-2 convolution, batch norm, ReLU and
  max pooling, then four residual stages (ResNet-34's block counts for the camera, ResNet-18's for
  LiDAR and radar, written here; nothing pretrained); GPS is an MLP (here over the whole history
  window, so it sees the motion too);
- after each stage a fusion block average-pools every branch's feature map to a small grid, projects
  the cells to the stage's embedding size, concatenates the tokens of all modalities (and frames)
  with a learned position embedding, runs a shared multi-head self-attention encoder over them, and
  adds the result back to each branch: upsampled to the map's size, a residual re-injection;
- the last stage's features are pooled per modality and combined with learned softmax weights over
  the modalities present; an MLP head maps them to F × K logits; training uses the focal loss.

Masks: frames of a missing modality are excluded from attention (key padding) and from the
aggregation, whose softmax is renormalised over the modalities present, so a dead sensor does not
feed zeros into the decision. Presets: `tiny` trains in minutes on two CPU cores; `paper` has the
paper's 64/128/256/512 embedding sizes, 4 heads, FFN ratio 4 and 8 layers per fusion block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from learners.models.registry import ModelContext, PresetModel, Tensors, register_model
from learners.preprocess import GPS_FEATURES
from twin.errors import ConfigError
from twin.validation import between, each_between, one_of, spec

IMAGE_INPUTS = ("camera", "lidar", "radar")
MODALITIES = (*IMAGE_INPUTS, "gps")
STAGES = 4

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "channels": (16, 32, 64, 64),
        "stem": 16,
        "camera_blocks": (1, 1, 1, 1),
        "sensor_blocks": (1, 1, 1, 1),
        "layers": 1,
        "heads": 4,
        "ffn_ratio": 2,
        "grid": (2, 2),
        "frames": 2,
        "head": (64, 32),
        "gps_hidden": 32,
        "dropout": 0.1,
    },
    "mid": {  # between tiny (0.57 M) and paper (77.7 M): a few epochs fit ~20 min on one CPU thread
        "channels": (32, 64, 128, 256),
        "stem": 32,
        "camera_blocks": (1, 1, 1, 1),
        "sensor_blocks": (1, 1, 1, 1),
        "layers": 2,
        "heads": 4,
        "ffn_ratio": 4,
        "grid": (4, 4),
        "frames": 1,
        "head": (128, 64),
        "gps_hidden": 64,
        "dropout": 0.1,
    },
    "paper": {
        "channels": (64, 128, 256, 512),
        "stem": 64,
        "camera_blocks": (3, 4, 6, 3),  # ResNet-34
        "sensor_blocks": (2, 2, 2, 2),  # ResNet-18 (the paper's "ResNet16" has ResNet-18's size)
        "layers": 8,
        "heads": 4,
        "ffn_ratio": 4,
        "grid": (8, 8),
        "frames": 1,  # the paper predicts from one sample
        "head": (256, 128),  # 512 → 256 → 128 → K, eq. (10)
        "gps_hidden": 128,
        "dropout": 0.1,
    },
}

PREPROCESS_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"camera_size": (36, 64), "bev_size": (32, 64), "radar_size": (32, 32)},
    "mid": {"camera_size": (72, 128), "bev_size": (64, 128), "radar_size": (64, 64)},
    "paper": {"camera_size": (256, 256), "bev_size": (256, 256), "radar_size": (256, 64)},
}


def _modalities(value: Any) -> str | None:
    if value and len(set(value)) == len(value) and all(v in MODALITIES for v in value):
        return None
    return "a non-empty list of distinct names among " + ", ".join(MODALITIES)


@dataclass(frozen=True)
class BeamTransFuserOptions:
    preset: str = spec("tiny", check=one_of(*PRESETS))
    modalities: tuple[str, ...] = spec(MODALITIES, check=_modalities)
    channels: tuple[int, int, int, int] = spec(PRESETS["tiny"]["channels"], check=each_between(1, 4096))
    stem: int = spec(16, check=between(1, 4096))
    camera_blocks: tuple[int, int, int, int] = spec((1, 1, 1, 1), check=each_between(1, 64))
    sensor_blocks: tuple[int, int, int, int] = spec((1, 1, 1, 1), check=each_between(1, 64))
    layers: int = spec(1, check=between(1, 64))  # transformer layers per fusion block
    heads: int = spec(4, check=between(1, 64))
    ffn_ratio: int = spec(2, check=between(1, 16))
    grid: tuple[int, int] = spec((2, 2), check=each_between(1, 64))  # token grid per feature map
    frames: int = spec(2, check=between(1, 64))  # latest history frames through the CNN branches
    head: tuple[int, ...] = spec((64, 32), check=each_between(1, 8192))
    gps_hidden: int = spec(32, check=between(1, 8192))
    dropout: float = spec(0.1, check=between(0, 0.9))
    # Pruned widths (learners.compress), per fusion block; empty: unpruned.
    embed_widths: tuple[int, ...] = spec((), check=each_between(1, 4096))  # residual channels
    head_dims: tuple[tuple[int, ...], ...] = spec(())  # per layer: q/k/v dimensions of every head
    ffn_widths: tuple[tuple[int, ...], ...] = spec(())  # per layer: FFN neurons
    # Pruned inner widths of the CNN branches' residual blocks (learners.compress branches=true, an
    # extension beyond the paper, which prunes the fusion blocks only): per image modality, one
    # width per BasicBlock in stage order (conv1's outputs = conv2's inputs); absent: unpruned.
    branch_widths: dict[str, tuple[int, ...]] = spec(factory=dict)

    def branch_blocks(self, modality: str) -> tuple[int, ...]:
        return self.camera_blocks if modality == "camera" else self.sensor_blocks

    def block_stages(self, modality: str) -> list[int]:
        """The stage of every residual block of a branch, in block order."""
        return [s for s, count in enumerate(self.branch_blocks(modality)) for _ in range(count)]

    def validate(self, prefix: str) -> None:
        for i, width in enumerate(self.channels):
            if width % self.heads:
                raise ConfigError(
                    f"{prefix}.channels[{i}] = {width}: expected a multiple of heads ({self.heads})"
                )
        limits = {
            "embed_widths": lambda s: self.channels[s],
            "head_dims": lambda s: self.channels[s] // self.heads,
            "ffn_widths": lambda s: self.channels[s] * self.ffn_ratio,
        }
        for key, limit in limits.items():
            value = getattr(self, key)
            if not value:
                continue
            if len(value) != STAGES:
                raise ConfigError(f"{prefix}.{key} = {list(value)}: expected one entry per fusion block (4)")
            for s, entry in enumerate(value):
                per_layer = (entry,) if key == "embed_widths" else entry
                if key != "embed_widths" and len(per_layer) != self.layers:
                    raise ConfigError(
                        f"{prefix}.{key}[{s}] = {list(per_layer)}: expected one per layer ({self.layers})"
                    )
                if not all(1 <= w <= limit(s) for w in per_layer):
                    raise ConfigError(
                        f"{prefix}.{key}[{s}] = {entry}: expected widths between 1 and {limit(s)}"
                    )
        self._validate_branch_widths(prefix)

    def _validate_branch_widths(self, prefix: str) -> None:
        images = [m for m in IMAGE_INPUTS if m in self.modalities]
        for modality, widths in self.branch_widths.items():
            key = f"{prefix}.branch_widths.{modality}"
            if modality not in images:
                raise ConfigError(
                    f"{key}: not an image branch of this model; expected one of {', '.join(images)}"
                )
            stages = self.block_stages(modality)
            if len(widths) != len(stages):
                raise ConfigError(
                    f"{key} = {list(widths)}: expected one width per residual block ({len(stages)})"
                )
            for i, (width, s) in enumerate(zip(widths, stages)):
                if not 1 <= width <= self.channels[s]:
                    raise ConfigError(
                        f"{key}[{i}] = {width}: expected a width between 1 and {self.channels[s]} "
                        f"(block {i} is in stage {s})"
                    )


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3×3 convolutions with batch norm and an identity (or 1×1) shortcut.

    `inner` (default `outputs`) is conv1's output = conv2's input width, the only one branch pruning
    narrows, so the block's input and output shapes never change. `inner_mask` (inner,) is the
    reference path importance scoring uses: the masked inner channels computed as if cut."""

    def __init__(self, inputs: int, outputs: int, stride: int, inner: int | None = None):
        super().__init__()
        inner = inner or outputs
        self.conv1 = nn.Conv2d(inputs, inner, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.inner_mask: torch.Tensor | None = None
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.inner_mask is not None:  # a cut channel feeds conv2 nothing: the same as zeros
            out = out * self.inner_mask.to(out.dtype).view(1, -1, 1, 1)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ImageBranch(nn.Module):
    """Encoder (7×7/2 conv, BN, ReLU, 3×3/2 max pool) and four residual stages, run stage by stage;
    `inner` (one per block, in stage order; empty: unpruned) are the blocks' inner widths."""

    def __init__(
        self,
        in_channels: int,
        stem: int,
        channels: tuple[int, ...],
        blocks: tuple[int, ...],
        inner: tuple[int, ...] = (),
    ):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages = []
        width = stem
        widths = iter(inner or [None] * sum(blocks))
        for i, (out, count) in enumerate(zip(channels, blocks)):
            layers = [BasicBlock(width, out, 1 if i == 0 else 2, next(widths))]
            layers += [BasicBlock(out, out, 1, next(widths)) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            width = out
        self.stages = nn.ModuleList(stages)

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if index == 0:
            x = self.encoder(x)
        return self.stages[index](x)


def masked_layer_norm(norm: nn.LayerNorm, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """LayerNorm over the channels `mask` keeps (the others come out as zeros): what the same norm
    computes once the masked channels are cut away."""
    if mask is None:
        return norm(x)
    m = mask.to(x.dtype)
    count = m.sum()
    mean = (x * m).sum(-1, keepdim=True) / count
    var = (((x - mean) * m) ** 2).sum(-1, keepdim=True) / count
    return ((x - mean) * torch.rsqrt(var + norm.eps) * norm.weight + norm.bias) * m


class PrunableAttention(nn.Module):
    """Multi-head self-attention with separate query, key, value and output projections, so each
    can be cut: `heads` heads of `head_dim` query/key/value dimensions on a `width`-channel stream.
    The scale stays the unpruned head size's (`scale_dim`), so a cut dimension changes nothing else."""

    def __init__(self, width: int, heads: int, head_dim: int, scale_dim: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.scale = scale_dim**-0.5
        self.dropout = dropout
        inner = heads * head_dim
        self.q_proj = nn.Linear(width, inner)
        self.k_proj = nn.Linear(width, inner)
        self.v_proj = nn.Linear(width, inner)
        self.out_proj = nn.Linear(inner, width)
        self.head_mask: torch.Tensor | None = None  # (heads·head_dim,) for importance scoring

    def forward(self, x: torch.Tensor, ignore: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.head_mask is not None:
            m = self.head_mask.to(x.dtype)
            q, k, v = q * m, k * m, v * m
        q, k, v = (t.view(batch, length, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        attend = ~ignore[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attend, dropout_p=self.dropout if self.training else 0.0, scale=self.scale
        )
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, -1))


class PrunableEncoderLayer(nn.Module):
    """A pre-norm transformer encoder layer (as torch's with norm_first=True and ReLU) whose residual
    width, per-head query/key/value dimensions and FFN neurons can each be pruned."""

    def __init__(self, width: int, heads: int, head_dim: int, ffn: int, scale_dim: int, dropout: float):
        super().__init__()
        self.self_attn = PrunableAttention(width, heads, head_dim, scale_dim, dropout)
        self.norm1 = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)
        self.linear1 = nn.Linear(width, ffn)
        self.linear2 = nn.Linear(ffn, width)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.ffn_mask: torch.Tensor | None = None  # (ffn,) for importance scoring

    def forward(self, x: torch.Tensor, ignore: torch.Tensor, channels: torch.Tensor | None) -> torch.Tensor:
        attended = self.self_attn(masked_layer_norm(self.norm1, x, channels), ignore)
        if channels is not None:
            attended = attended * channels.to(x.dtype)
        x = x + self.dropout1(attended)
        hidden = F.relu(self.linear1(masked_layer_norm(self.norm2, x, channels)))
        if self.ffn_mask is not None:
            hidden = hidden * self.ffn_mask.to(x.dtype)
        out = self.linear2(self.dropout(hidden))
        if channels is not None:
            out = out * channels.to(x.dtype)
        return x + self.dropout2(out)


class PrunableEncoder(nn.Module):
    def __init__(self, layers: list[PrunableEncoderLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, ignore: torch.Tensor, channels: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, ignore, channels)
        return x


@dataclass(frozen=True)
class BlockWidths:
    """The widths of one fusion block: residual channels, per-head q/k/v dimensions and FFN neurons
    per layer. Unpruned: the stage's channels, channels / heads and channels × ffn_ratio."""

    embed: int
    head_dims: tuple[int, ...]
    ffn: tuple[int, ...]


class FusionBlock(nn.Module):
    """Shared self-attention over the concatenated tokens of every modality and frame.

    Pruned (`widths.embed` < dim), the block runs on the residual channels in the buffer `keep`
    (sorted indices into dim): tokens are those channels of the projected cells, and the fused result
    goes back into the same channels (the others get no residual), so the branches' shapes never
    change. `channel_mask` (dim,) is the reference path importance scoring uses: the same block with
    the masked channels computed as if cut."""

    def __init__(
        self,
        dim: int,
        channels: dict[str, int],
        grids: dict[str, tuple[int, int]],
        frames: int,
        gps: bool,
        options: BeamTransFuserOptions,
        widths: BlockWidths | None = None,
    ):
        super().__init__()
        self.dim = dim
        self.grids = grids
        heads = options.heads
        widths = widths or default_widths(dim, options)
        self.widths = widths
        self.to_tokens = nn.ModuleDict(
            {m: nn.Identity() if c == dim else nn.Linear(c, dim) for m, c in channels.items()}
        )
        self.from_tokens = nn.ModuleDict(
            {m: nn.Identity() if c == dim else nn.Linear(dim, c) for m, c in channels.items()}
        )
        width = widths.embed
        if width < dim:
            self.register_buffer("keep", torch.arange(width))
        else:
            self.keep = None
        count = sum(frames * g[0] * g[1] for g in grids.values()) + int(gps)
        self.position = nn.Parameter(torch.randn(1, count, width) * 0.02)
        self.encoder = PrunableEncoder(
            [
                PrunableEncoderLayer(width, heads, head_dim, ffn, dim // heads, options.dropout)
                for head_dim, ffn in zip(widths.head_dims, widths.ffn)
            ]
        )
        self.channel_mask: torch.Tensor | None = None

    def _select(self, x: torch.Tensor) -> torch.Tensor:
        if self.keep is not None:
            return x.index_select(-1, self.keep)
        if self.channel_mask is not None:
            return x * self.channel_mask.to(x.dtype)
        return x

    def _restore(self, x: torch.Tensor) -> torch.Tensor:
        if self.keep is None:
            return x
        out = x.new_zeros(*x.shape[:-1], self.dim)
        return out.index_copy(-1, self.keep, x)

    def forward(
        self,
        maps: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        gps: torch.Tensor | None,
        gps_mask: torch.Tensor | None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """maps: (B, frames, C, h, w) per modality; gps: (B, dim). Returns both with the fused residual."""
        tokens, ignore, sizes = [], [], []
        for m, x in maps.items():
            batch, frames, c, h, w = x.shape
            gh, gw = self.grids[m]
            pooled = F.adaptive_avg_pool2d(x.flatten(0, 1), (gh, gw))  # (B·frames, C, gh, gw)
            cells = pooled.view(batch, frames, c, gh * gw).permute(0, 1, 3, 2).reshape(batch, -1, c)
            tokens.append(self._select(self.to_tokens[m](cells)))
            ignore.append((~masks[m]).repeat_interleave(gh * gw, dim=1))
            sizes.append(cells.shape[1])
        if gps is not None:
            tokens.append(self._select(gps).unsqueeze(1))
            ignore.append(~gps_mask.unsqueeze(1))
            sizes.append(1)
        position = self.position
        if self.channel_mask is not None:
            position = position * self.channel_mask.to(position.dtype)
        sequence = torch.cat(tokens, 1) + position
        ignore_all = torch.cat(ignore, 1)
        ignore_all = ignore_all & ~ignore_all.all(1, keepdim=True)  # nothing present: attend to all
        fused = self.encoder(sequence, ignore_all, self.channel_mask)
        parts = [self._restore(p) for p in fused.split(sizes, 1)]
        out = {}
        for (m, x), part in zip(maps.items(), parts):
            batch, frames, c, h, w = x.shape
            gh, gw = self.grids[m]
            delta = self.from_tokens[m](part).reshape(batch * frames, gh, gw, c).permute(0, 3, 1, 2)
            delta = F.interpolate(delta, size=(h, w), mode="bilinear", align_corners=False)
            out[m] = x + delta.view(batch, frames, c, h, w)
        new_gps = gps + parts[-1][:, 0] if gps is not None else None
        return out, new_gps


def default_widths(dim: int, options: BeamTransFuserOptions) -> BlockWidths:
    layers = options.layers
    return BlockWidths(dim, (dim // options.heads,) * layers, (dim * options.ffn_ratio,) * layers)


def block_widths(options: BeamTransFuserOptions) -> list[BlockWidths]:
    """Every fusion block's widths: the pruned ones the options record, else the unpruned."""
    out = []
    for s, dim in enumerate(options.channels):
        full = default_widths(dim, options)
        out.append(
            BlockWidths(
                options.embed_widths[s] if options.embed_widths else full.embed,
                options.head_dims[s] if options.head_dims else full.head_dims,
                options.ffn_widths[s] if options.ffn_widths else full.ffn,
            )
        )
    return out


def convert_legacy_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors saved with torch's TransformerEncoderLayer (one packed in_proj) in the layout of
    PrunableAttention (separate q/k/v projections): the same numbers, split."""
    out = {}
    for name, tensor in tensors.items():
        for kind in ("weight", "bias"):
            suffix = f".self_attn.in_proj_{kind}"
            if name.endswith(suffix):
                stem = name[: -len(suffix)] + ".self_attn."
                for proj, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, 0)):
                    out[f"{stem}{proj}.{kind}"] = part.contiguous()
                break
        else:
            out[name] = tensor
    return out


@register_model
class BeamTransFuser(PresetModel):
    kind = "beamtransfuser"
    Options = BeamTransFuserOptions
    IN_CHANNELS: ClassVar[dict[str, int]] = {"camera": 3, "lidar": 1, "radar": 2}

    PRESETS = PRESETS
    PREPROCESS_PRESETS = PREPROCESS_PRESETS
    MODALITIES = MODALITIES

    def __init__(self, options: BeamTransFuserOptions, context: ModelContext):
        super().__init__(options, context)
        self.images = [m for m in IMAGE_INPUTS if m in options.modalities]
        self.use_gps = "gps" in options.modalities
        self.frames = min(options.frames, context.history)
        channels = options.channels
        self.branches = nn.ModuleDict(
            {
                m: ImageBranch(
                    self.IN_CHANNELS[m],
                    options.stem,
                    channels,
                    options.branch_blocks(m),
                    options.branch_widths.get(m, ()),
                )
                for m in self.images
            }
        )
        if self.use_gps:
            self.gps_encoder = nn.Sequential(
                nn.Linear(context.history * (GPS_FEATURES + 1), options.gps_hidden),
                nn.ReLU(),
                nn.Linear(options.gps_hidden, channels[0]),
            )
            self.gps_stages = nn.ModuleList(
                [nn.Sequential(nn.Linear(channels[i - 1], channels[i]), nn.ReLU()) for i in range(1, STAGES)]
            )
        sizes = self._map_sizes(context)
        widths = block_widths(options)
        self.fusion = nn.ModuleList(
            [
                FusionBlock(
                    channels[s],
                    {m: channels[s] for m in self.images},
                    {
                        m: (min(options.grid[0], sizes[m][s][0]), min(options.grid[1], sizes[m][s][1]))
                        for m in self.images
                    },
                    self.frames,
                    self.use_gps,
                    options,
                    widths[s],
                )
                for s in range(STAGES)
            ]
        )
        self.modality_weights = nn.Parameter(torch.zeros(len(self.images) + int(self.use_gps)))
        layers: list[nn.Module] = []
        width = channels[-1]
        for hidden in options.head:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, context.future * context.num_beams))
        self.head = nn.Sequential(*layers)

    @property
    def pruned(self) -> bool:
        o = self.options
        return bool(o.embed_widths or o.head_dims or o.ffn_widths or o.branch_widths)

    @classmethod
    def convert_state(cls, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return convert_legacy_state(tensors)

    def _map_sizes(self, context: ModelContext) -> dict[str, list[tuple[int, int]]]:
        """Feature-map size after each stage, per image branch (from a dry run on one frame)."""
        sizes = {}
        with torch.no_grad():
            for m in self.images:
                x = torch.zeros(1, *context.shapes[m])
                sizes[m] = []
                branch = self.branches[m].eval()
                for s in range(STAGES):
                    x = branch.stage(s, x)
                    sizes[m].append(tuple(x.shape[-2:]))
                branch.train()
        return sizes

    def frame_local_inputs(self) -> tuple[str, ...]:
        return tuple(self.images)

    def encode_frames(self, name: str, frames: torch.Tensor) -> torch.Tensor:
        """The first stage of the image branch: before it, nothing mixes frames or modalities."""
        return self.branches[name].stage(0, frames)

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        fr = self.frames
        maps, frame_masks = {}, {}
        for m in self.images:
            x = inputs[m][:, -fr:]
            frame_masks[m] = masks[m][:, -fr:]
            if m not in self._pre_encoded:  # a missing frame enters as zeros
                x = x * frame_masks[m].view(*frame_masks[m].shape, 1, 1, 1)
            maps[m] = self.frame_features(m, x)
        batch = next(iter(masks.values())).shape[0]
        gps = gps_mask = None
        if self.use_gps:
            gps_frames = masks["gps"].float().unsqueeze(-1)
            gps = self.gps_encoder(torch.cat([inputs["gps"] * gps_frames, gps_frames], -1).flatten(1))
            gps_mask = masks["gps"].any(1)
        for s in range(STAGES):
            for m in self.images if s > 0 else ():  # stage 0: frame_features above
                x = maps[m]
                y = self.branches[m].stage(s, x.flatten(0, 1))
                maps[m] = y.view(batch, fr, *y.shape[1:])
            if gps is not None and s > 0:
                gps = self.gps_stages[s - 1](gps)
            maps, gps = self.fusion[s](maps, frame_masks, gps, gps_mask)
        features, present = [], []
        for m in self.images:
            mask = frame_masks[m].float()
            pooled = maps[m].mean(dim=(-2, -1))  # (B, frames, C)
            features.append((pooled * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1))
            present.append(frame_masks[m].any(1))
        if gps is not None:
            features.append(gps)
            present.append(gps_mask)
        stacked = torch.stack(features, 1)  # (B, M, C)
        available = torch.stack(present, 1)
        available = available | ~available.any(1, keepdim=True)  # nothing present: weigh all equally
        scores = self.modality_weights.expand_as(available).masked_fill(~available, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        fused = (weights.unsqueeze(-1) * stacked).sum(1)
        return self.head(fused).view(-1, self.context.future, self.context.num_beams)

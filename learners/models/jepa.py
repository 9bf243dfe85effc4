"""JEPA world model with a frozen backbone and three heads, after shared/papers/jepa-msac.txt (§III;
the reading notes are NOTES.md §4).

A window is T = H + F − 1 frames: the H history frames t−H+1 … t and the F − 1 future frames
t+1 … t+F−1 (`data.history = 8`, `data.future = 6`, `data.future_sensors = true`: 8 + 5 frames).
Each frame of each modality becomes tokens (learners.models.jepa_tokens): camera, radar and LiDAR
g² tokens each, GPS and the RF sweep one each; every token gets the factorised embedding
E_t[frame] + E_m[modality] + E_p[slot] (12).
- Pretraining (a PretrainStage run by learners.pretrain, no labels): per modality one contiguous
  block of ⌊ρT⌋ frames is masked (all its tokens); the context encoder sees the visible tokens only
  (the others are left out of attention), the predictor fills every other slot with one shared mask
  token plus its embedding, the EMA target encoder sees every present token, and the loss is the
  Smooth-L1 between predicted and target tokens on the masked ones (17). A share `future_share` of
  windows instead masks every modality's future frames, the pattern the heads use (NOTES.md §4,
  risks). The target encoder's momentum rises 0.996 → 1 on a cosine over the stage; its update runs
  at the start of each training step, on the weights the previous step left (the stage runner owns
  the optimiser step, so the EMA trails it by one step, which changes no end point).
- Downstream (§III-E), on the frozen backbone: the history is visible and every future token
  masked; a frame that is missing (outage, dropout) is masked too, so the predictor fills it from the
  rest: the policy plans through short outages of its inputs. The predictor's outputs pooled per
  frame, for frames t … t+F−1, next to the context encoder's global token and standardised per
  feature (batch norm in the head), feed the heads: position = constant-velocity extrapolation of the
  last two GPS fixes + a learned residual (21); beam = [S; position] → projection → 1-layer GRU → K
  logits (the `twin.run` policy serves horizon 0); power = the last RF token's sweep + a learned
  residual, a K-beam profile whose mean linear power is the RSSI. `forward` returns the beam logits.
- RF token: the environment reports only the served beam's RSRP, so the RF input, in training as in
  the closed loop, is the sparse sweep of the feedback (that RSRP at the served beam, zero
  elsewhere; jepa_tokens.sparse_sweep), lagging one frame like learners.data's RF history.

Reconstructed (not in the paper): head count (4), the global token always visible (a sample with
no visible token would leave attention undefined), pooling over all of a frame's predicted tokens,
GroupNorm for batch norm, the future-block share, the head loss weights, and against the collapse
measured without them (RankMe 2.7 of 32 after the shipped pretraining), targets layer-normed without
affine parameters (as I-JEPA) and a VICReg variance hinge across the batch on the context
encoder's global token and mean visible token.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from learners.data import RF_INPUT
from learners.losses import focal_loss
from learners.models.jepa_tokens import ImageTokeniser, VectorTokeniser, sparse_sweep
from learners.models.registry import ModelContext, PresetModel, PretrainStage, Tensors, register_model
from twin.errors import ConfigError
from twin.validation import between, each_between, one_of, spec

MODALITIES = ("camera", "radar", "lidar", "gps", RF_INPUT)
IMAGES = ("camera", "radar", "lidar")
GPS_XY = 2  # learners.preprocess: x / scale, y / scale come first

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "dim": 32,
        "heads": 4,
        "encoder_layers": 2,
        "predictor_layers": 2,
        "grids": (2, 2, 2),  # camera, radar, LiDAR: 4 tokens each
        "vision": "cnn",
        "widths": (8, 16, 32),
        "head_hidden": 64,
        "pretrain_epochs": 5,
    },
    "paper": {  # Tab. I / IV: D = 128, 4 + 4 layers, tokens (9, 16, 16, 1, 1)
        "dim": 128,
        "heads": 4,
        "encoder_layers": 4,
        "predictor_layers": 4,
        "grids": (3, 4, 4),
        "vision": "efficientnet",
        "widths": (16, 32, 64),
        "head_hidden": 256,
        "pretrain_epochs": 100,
        "stage_lr": 3e-4,
    },
}

PREPROCESS_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"camera_size": (18, 32), "radar_size": (16, 16), "lidar_view": "depth", "depth_size": (16, 64)},
    "paper": {
        "camera_size": (224, 224),
        "radar_size": (64, 64),
        "lidar_view": "depth",
        "depth_size": (64, 256),
    },
}


def _modalities(value: Any) -> str | None:
    if value and len(set(value)) == len(value) and all(v in MODALITIES for v in value):
        return None
    return "a non-empty list of distinct names among " + ", ".join(MODALITIES)


@dataclass(frozen=True)
class JEPAOptions:
    preset: str = spec("tiny", check=one_of(*PRESETS))
    modalities: tuple[str, ...] = spec(MODALITIES, check=_modalities)
    dim: int = spec(32, check=between(4, 4096))
    heads: int = spec(4, check=between(1, 64))
    encoder_layers: int = spec(2, check=between(1, 64))  # context (and target) encoder
    predictor_layers: int = spec(2, check=between(1, 64))
    grids: tuple[int, ...] = spec((2, 2, 2), check=each_between(1, 16))  # camera, radar, LiDAR: g² tokens
    vision: str = spec("cnn", check=one_of("cnn", "efficientnet"))
    widths: tuple[int, ...] = spec((8, 16, 32), check=each_between(1, 4096))  # small CNNs
    mask_ratio: float = spec(0.5, check=between(0.01, 0.99))  # ρ: block of ⌊ρT⌋ frames per modality
    future_share: float = spec(0.25, check=between(0, 1))  # windows masked as downstream (all future)
    ema_start: float = spec(0.996, check=between(0, 1))  # target momentum at the stage's start (→ 1)
    pretrain_epochs: int = spec(5, check=between(0, 100_000))
    stage_lr: float = spec(1e-3, check=between(1e-7, 10))
    # Against collapse (measured: without it the tiny preset's embeddings fell to RankMe 2.7 of 32):
    variance_weight: float = spec(1.0, check=between(0, 1e4))  # VICReg variance hinge across the batch
    head_hidden: int = spec(64, check=between(1, 8192))
    position_weight: float = spec(1.0, check=between(0, 1e4))  # head losses next to the beam's focal loss
    power_weight: float = spec(1.0, check=between(0, 1e4))
    # The paper's E2E baseline: the same network, no pretraining, backbone trained with the heads.
    e2e: bool = spec(False)

    def validate(self, prefix: str) -> None:
        if self.dim % self.heads:
            raise ConfigError(f"{prefix}.dim = {self.dim}: expected a multiple of heads ({self.heads})")
        if len(self.grids) != len(IMAGES):
            raise ConfigError(
                f"{prefix}.grids = {list(self.grids)}: expected one grid per image ({len(IMAGES)})"
            )


def momentum(start: float, progress: float) -> float:
    """The target encoder's EMA momentum at `progress` (0 … 1) through the stage: start → 1, cosine."""
    return 1.0 - (1.0 - start) * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, m: float) -> None:
    """θ_target ← m θ_target + (1 − m) θ_online, parameter by parameter."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(m).add_(o.detach(), alpha=1.0 - m)


def block_masks(
    batch: int, frames: int, modalities: int, length: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, M, T) bool: for each sample and modality, one contiguous block of `length` frames, its
    start uniform over the T − length + 1 places."""
    starts = torch.randint(0, frames - length + 1, (batch, modalities, 1), generator=generator)
    index = torch.arange(frames).view(1, 1, -1)
    return (index >= starts) & (index < starts + length)


def variance_hinge(embeddings: torch.Tensor) -> torch.Tensor:
    """VICReg's variance term: mean over dimensions of max(0, 1 − std) over the (N, D) rows."""
    std = torch.sqrt(embeddings.var(0) + 1e-4)
    return F.relu(1.0 - std).mean()


def rankme(embeddings: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values of the
    (N, D) embeddings, between 1 (collapse onto a line) and min(N, D)."""
    s = torch.linalg.svdvals(embeddings.double())
    p = s / s.sum() + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def lda_rank(views: torch.Tensor, delta: float = 1e-4, eps: float = 1e-7) -> float:
    """LDA-rank (Thilak et al. 2023, the paper's R_LDA) of (N, A, D) embeddings, A views per sample:
    exp of the entropy of the normalised eigenvalues of Σ_w^-1/2 Σ_b Σ_w^-1/2, Σ_w the covariance
    within each sample's views (+ δ I so that it inverts), Σ_b the covariance of the sample means."""
    if views.dim() != 3 or views.shape[0] < 2 or views.shape[1] < 2:
        raise ValueError(f"lda_rank: views of shape {tuple(views.shape)}: expected (N >= 2, A >= 2, D)")
    x = views.double()
    means = x.mean(1)
    within = (x - means[:, None]).reshape(-1, x.shape[-1])
    sw = within.T @ within / within.shape[0] + delta * torch.eye(x.shape[-1], dtype=x.dtype)
    centred = means - means.mean(0)
    sb = centred.T @ centred / centred.shape[0]
    w, v = torch.linalg.eigh(sw)
    root = v @ torch.diag(w.rsqrt()) @ v.T  # Σ_w^-1/2, symmetric
    lam = torch.linalg.eigvalsh(root @ sb @ root).clamp_min(0)
    q = lam / lam.sum() + eps
    return float(torch.exp(-(q * torch.log(q)).sum()))


def _transformer(o: JEPAOptions, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(o.dim, o.heads, 4 * o.dim, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)  # fmt: skip
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(o.dim), enable_nested_tensor=False)


class TokenLayout(nn.Module):
    """Tokenisers, the factorised embeddings and the layout of a window's tokens (modality-major,
    then frame, then slot)."""

    def __init__(self, names: list[str], o: JEPAOptions, context: ModelContext, frames: int):
        super().__init__()
        self.names, self.frames, self.num_beams = names, frames, context.num_beams
        tokenisers, counts = {}, []
        for name in names:
            if name in IMAGES:
                grid = o.grids[IMAGES.index(name)]
                channels = context.shapes[name][0]
                efficient = name == "camera" and o.vision == "efficientnet"
                tokenisers[name] = ImageTokeniser(channels, o.dim, grid, tuple(o.widths), efficient)
                counts.append(grid * grid)
            else:
                width = context.num_beams if name == RF_INPUT else GPS_XY
                tokenisers[name] = VectorTokeniser(width, o.dim)
                counts.append(1)
        self.tokenisers = nn.ModuleDict(tokenisers)
        self.counts = counts
        self.time = nn.Parameter(torch.randn(frames, o.dim) * 0.02)
        self.modality = nn.Parameter(torch.randn(len(MODALITIES), o.dim) * 0.02)
        self.slot = nn.Parameter(torch.randn(max(counts), o.dim) * 0.02)
        mod, row, frame, slot = [], [], [], []
        for i, (name, n) in enumerate(zip(names, counts)):
            mod += [MODALITIES.index(name)] * frames * n
            row += [i] * frames * n
            frame += [t for t in range(frames) for _ in range(n)]
            slot += list(range(n)) * frames
        self.register_buffer("token_modality", torch.tensor(mod), persistent=False)
        self.register_buffer("token_row", torch.tensor(row), persistent=False)
        self.register_buffer("token_frame", torch.tensor(frame), persistent=False)
        self.register_buffer("token_slot", torch.tensor(slot), persistent=False)

    def embedding(self) -> torch.Tensor:
        """(L, D): E_t + E_m + E_p of every token slot."""
        return self.time[self.token_frame] + self.modality[self.token_modality] + self.slot[self.token_slot]

    def tokens(self, values: Tensors, encoded: frozenset[str] = frozenset()) -> torch.Tensor:
        """values: per modality (B, T, ...) frames → (B, L, D) tokens with their embeddings; for the
        modalities in `encoded`, values are already tokens (B, T, slots, D)."""
        parts = []
        for name in self.names:
            x = values[name]
            batch = x.shape[0]
            tokens = x if name in encoded else self.tokenisers[name](x.flatten(0, 1))
            parts.append(tokens.reshape(batch, -1, self.time.shape[1]))
        return torch.cat(parts, 1) + self.embedding()

    def token_mask(self, frame_masks: torch.Tensor) -> torch.Tensor:
        """(B, M, T) per modality (in `names` order) and frame → (B, L) per token."""
        return frame_masks[:, self.token_row, self.token_frame]


class Encoder(nn.Module):
    """Tokens → encoded tokens, attending only to the tokens marked `visible` (plus one global token
    that is always visible)."""

    def __init__(self, names: list[str], o: JEPAOptions, context: ModelContext, frames: int):
        super().__init__()
        self.layout = TokenLayout(names, o, context, frames)
        self.register = nn.Parameter(torch.zeros(1, 1, o.dim))
        self.transformer = _transformer(o, o.encoder_layers)

    def forward(self, values: Tensors, visible: torch.Tensor) -> torch.Tensor:
        return self.encode(values, visible)[:, 1:]

    def encode(
        self, values: Tensors, visible: torch.Tensor, encoded: frozenset[str] = frozenset()
    ) -> torch.Tensor:
        """(B, 1 + L, D): the global token's output, then every visible token's (zeros where hidden:
        nothing reads them)."""
        x = self.layout.tokens(values, encoded)
        x = torch.cat([self.register.expand(x.shape[0], -1, -1), x], 1)
        keep = torch.cat([visible.new_ones(visible.shape[0], 1), visible], 1)
        return visible_only(self.transformer, x, keep)


def visible_only(transformer: nn.TransformerEncoder, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`transformer(x, src_key_padding_mask=~keep)` at the kept positions, run on the kept tokens
    alone (packed to the front, padded to the row with most): a hidden token is no key, so its
    query's output is all it adds, and the closed loop hides five of thirteen frames. Hidden
    positions come back as zeros."""
    count = int(keep.sum(1).max())
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :count]  # kept first, in order
    packed_keep = keep.gather(1, order)
    index = order.unsqueeze(-1).expand(-1, -1, x.shape[-1])
    out = transformer(x.gather(1, index), src_key_padding_mask=~packed_keep)
    out = out * packed_keep.unsqueeze(-1).to(out.dtype)
    return x.new_zeros(x.shape).scatter(1, index, out)


@register_model
class JEPA(PresetModel):
    kind = "jepa"
    Options = JEPAOptions

    PRESETS = PRESETS
    PREPROCESS_PRESETS = PREPROCESS_PRESETS
    MODALITIES = MODALITIES

    def __init__(self, options: JEPAOptions, context: ModelContext):
        super().__init__(options, context)
        if "radar" in options.modalities and context.preprocess.radar_view != "maps":
            raise ConfigError(
                "preprocess.radar_view = 'cube': jepa's radar tokeniser reads the maps (expected 'maps')"
            )
        o = options
        self.names = list(self.inputs_of(o))
        self.frames = context.history + context.future - 1
        self.encoder = Encoder(self.names, o, context, self.frames)
        self.target = copy.deepcopy(self.encoder)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, o.dim))
        self.predictor = _transformer(o, o.predictor_layers)
        self.predictor_out = nn.Linear(o.dim, o.dim)
        hidden, k = o.head_hidden, context.num_beams
        # The pooled states vary little between windows next to their common part (std ~0.06): the
        # heads standardise them per feature with batch statistics (running ones when deployed).
        self.state_norm = nn.BatchNorm1d(2 * o.dim)
        self.position_head = nn.Sequential(nn.Linear(2 * o.dim, hidden), nn.GELU(), nn.Linear(hidden, GPS_XY))
        self.beam_in = nn.Linear(2 * o.dim + GPS_XY, hidden)
        self.beam_gru = nn.GRU(hidden, hidden, batch_first=True)
        self.beam_out = nn.Linear(hidden, k)
        self.power_head = nn.Sequential(nn.Linear(2 * o.dim, hidden), nn.GELU(), nn.Linear(hidden, k))

    def frame_local_inputs(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n in IMAGES)

    def encode_frames(self, name: str, frames: torch.Tensor) -> torch.Tensor:
        """The image tokeniser: (N, C, h, w) frames → (N, slots, D) tokens."""
        return self.encoder.layout.tokenisers[name](frames).reshape(frames.shape[0], -1, self.options.dim)

    # --- the interface of learners.pretrain --------------------------------------------------------

    def pretraining_stages(self) -> tuple[PretrainStage, ...]:
        if self.options.e2e:  # no stage, so learners.train freezes nothing: end to end from scratch
            return ()
        return (PretrainStage("jepa", self.options.pretrain_epochs, self.options.stage_lr),)

    def backbone_prefixes(self) -> tuple[str, ...]:
        return ("encoder", "target", "mask_token", "predictor.", "predictor_out")

    def stage_loss(
        self, stage: PretrainStage, batch: dict[str, Any], progress: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        m = momentum(self.options.ema_start, progress)
        if self.training:  # the previous step's weights into the target (see the module docstring)
            ema_update(self.target, self.encoder, m)
        values, present = self.window(batch)
        masked = self.pretraining_mask(present.shape[0])
        loss, _ = self.jepa_loss(values, present, masked)
        return loss, {"momentum": m}

    def pretraining_mask(self, batch: int) -> torch.Tensor:
        """(B, M, T) masked frames: a block per modality, or (a `future_share` of windows) every future
        frame of every modality."""
        o, h = self.options, self.context.history
        length = max(1, math.floor(o.mask_ratio * self.frames))
        masked = block_masks(batch, self.frames, len(self.names), length)
        future = torch.rand(batch) < o.future_share
        masked[future] = False
        masked[future, :, h:] = True
        return masked

    def jepa_loss(
        self, values: Tensors, present: torch.Tensor, masked: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Smooth-L1 between predicted and target tokens over the masked present ones; and the
        context encoder's output. present, masked: (B, M, T)."""
        layout = self.encoder.layout
        present_tokens = layout.token_mask(present)
        visible = present_tokens & ~layout.token_mask(masked)
        predicted, context = self.predict(values, visible)
        with torch.no_grad():  # per-token normalised targets, as I-JEPA: their scale cannot shrink
            target = F.layer_norm(self.target(values, present_tokens), (self.options.dim,))
        chosen = present_tokens & ~visible
        loss = predicted.sum() * 0.0
        if chosen.any():
            loss = loss + F.smooth_l1_loss(predicted[chosen], target[chosen])
        if self.options.variance_weight and visible.shape[0] > 1:
            # across the batch, not across tokens (slot embeddings alone would satisfy that)
            weights = visible.unsqueeze(-1).to(context.dtype)
            pooled = (context * weights).sum(1) / weights.sum(1).clamp(min=1)
            spread = variance_hinge(self._summary) + variance_hinge(pooled)
            loss = loss + self.options.variance_weight * spread
        return loss, context

    def predict(self, values: Tensors, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted tokens for every slot, context encoder output): the predictor sees the context
        encoder's output where visible and the shared mask token plus the slot's embedding elsewhere."""
        encoded = self.encoder.encode(values, visible, self._pre_encoded)
        self._summary = encoded[:, 0]  # the global token: what the heads read besides the predictions
        context = encoded[:, 1:]
        fill = self.mask_token + self.encoder.layout.embedding()
        x = torch.where(visible.unsqueeze(-1), context, fill.expand_as(context))
        return self.predictor_out(self.predictor(x)), context

    # --- windows -----------------------------------------------------------------------------------

    def window(self, batch: dict[str, Any]) -> tuple[Tensors, torch.Tensor]:
        """A pretraining window's T frames per modality and which are present (B, M, T)."""
        f = self.context.future
        inputs, masks = batch["inputs"], batch["masks"]
        if f > 1 and "future_inputs" not in batch:
            raise ConfigError("data.future_sensors = false: jepa pretrains on future frames (expected true)")
        values, present = self.history_values(inputs, masks)
        if f <= 1:  # a window without future frames: the history alone (nothing ahead to predict)
            return values, present
        future_values, future_present = {}, []
        for name in self.names:
            if name == RF_INPUT:  # feedback on frames t … t+F−2, the best beam served (as offline)
                beams = batch["target"][:, : f - 1]
                rsrp = batch["target_rsrp"][:, : f - 1].gather(-1, beams.unsqueeze(-1)).squeeze(-1)
                mask = batch["target_mask"][:, : f - 1]
                future_values[name] = sparse_sweep(beams, rsrp, mask, self.context.num_beams)
            else:
                x = batch["future_inputs"][name]
                future_values[name] = x[..., :GPS_XY] if name == "gps" else x
                mask = batch["future_masks"][name]
            future_present.append(mask.bool())
        values = {n: torch.cat([values[n], future_values[n]], 1) for n in self.names}
        return values, torch.cat([present, torch.stack(future_present, 1)], 2)

    def history_values(self, inputs: Tensors, masks: Tensors) -> tuple[Tensors, torch.Tensor]:
        """The history frames per modality (GPS: x, y; RF: the sparse sweep) and presence (B, M, H)."""
        values, present = {}, []
        for name in self.names:
            mask = masks[name].bool() if name in masks else None
            if name == RF_INPUT:
                mask = mask if mask is not None else torch.zeros_like(inputs[RF_INPUT], dtype=torch.bool)
                values[name] = sparse_sweep(
                    inputs[RF_INPUT], inputs["beam_rsrp"], mask, self.context.num_beams
                )
            else:
                x = inputs[name]
                values[name] = x[..., :GPS_XY] if name == "gps" else x
                mask = mask if mask is not None else torch.zeros(x.shape[:2], dtype=torch.bool)
            present.append(mask)
        return values, torch.stack(present, 1)

    # --- downstream --------------------------------------------------------------------------------

    def frame_states(self, inputs: Tensors, masks: Tensors) -> tuple[torch.Tensor, Tensors]:
        """(B, F, 2D): the predictor's tokens pooled per frame for frames t … t+F−1, the history visible
        and every future (or missing) token masked, next to the context encoder's global token; and the
        history values."""
        h, f = self.context.history, self.context.future
        values, present = self.history_values(inputs, masks)
        batch = present.shape[0]
        full = {}
        for name, x in values.items():
            full[name] = torch.cat([x, x.new_zeros(batch, f - 1, *x.shape[2:])], 1)
        frame_present = torch.cat([present, present.new_zeros(batch, len(self.names), f - 1)], 2)
        visible = self.encoder.layout.token_mask(frame_present)
        predicted, _ = self.predict(full, visible)
        layout = self.encoder.layout
        onehot = F.one_hot(layout.token_frame, self.frames).to(predicted.dtype)  # (L, T)
        pooled = torch.einsum("bld,lt->btd", predicted, onehot) / onehot.sum(0).view(1, -1, 1)
        summary = self._summary.unsqueeze(1).expand(-1, f, -1)
        return torch.cat([pooled[:, h - 1 :], summary], -1), values

    def heads(self, inputs: Tensors, masks: Tensors) -> dict[str, torch.Tensor]:
        """Beam logits (B, F, K), positions (B, F, 2) in GPS units and power profiles (B, F, K)."""
        states, values = self.frame_states(inputs, masks)
        return self.head_outputs(states, values, masks)

    def head_outputs(self, states: torch.Tensor, values: Tensors, masks: Tensors) -> dict[str, torch.Tensor]:
        """The heads alone, on `frame_states`' output (timed apart from the backbone)."""
        states = self.state_norm(states.flatten(0, 1)).view(states.shape)
        position = self.position_head(states) + self.constant_velocity(values, masks)
        beam = self.beam_out(self.beam_gru(self.beam_in(torch.cat([states, position], -1)))[0])
        power = self.power_head(states)
        if RF_INPUT in values:
            power = power + values[RF_INPUT][:, -1:]
        return {"beam": beam, "position": position, "power": power}

    def constant_velocity(self, values: Tensors, masks: Tensors) -> torch.Tensor:
        """(B, F, 2): p[t] + τ (p[t] − p[t−1]) for τ = 0 … F−1 (21); zero velocity without both fixes,
        zero without the last."""
        f = self.context.future
        if "gps" not in values:
            batch = next(iter(values.values())).shape[0]
            return torch.zeros(batch, f, GPS_XY)
        p, ok = values["gps"], masks["gps"].bool()
        last, before = p[:, -1], p[:, -2] if p.shape[1] > 1 else p[:, -1]
        both = (ok[:, -1] & ok[:, -2]) if p.shape[1] > 1 else ok[:, -1]
        velocity = (last - before) * both.unsqueeze(-1).to(p.dtype)
        tau = torch.arange(f, dtype=p.dtype).view(1, -1, 1)
        return (last * ok[:, -1:].to(p.dtype)).unsqueeze(1) + tau * velocity.unsqueeze(1)

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        return self.heads(inputs, masks)["beam"]

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The heads' objective on the frozen backbone: focal loss on the beams, L1 on the positions
        (where the GPS fix of the frame exists), Smooth-L1 on the power profiles."""
        out = self.heads(batch["inputs"], batch["masks"])
        mask = batch["target_mask"]
        loss = focal_loss(out["beam"], batch["target"], mask, gamma=2.0, sigma_beams=2.0)
        if self.options.power_weight:
            err = F.smooth_l1_loss(out["power"], batch["target_rsrp"], reduction="none").mean(-1)
            loss = loss + self.options.power_weight * (err * mask).sum() / mask.sum().clamp(min=1)
        targets = position_targets(batch)
        if self.options.position_weight and "gps" in self.names and targets is not None:
            truth, ok = targets
            err = (out["position"] - truth).abs().sum(-1)
            loss = loss + self.options.position_weight * (err * ok).sum() / ok.sum().clamp(min=1)
        return loss


def position_targets(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(B, F, 2) GPS positions of frames t … t+F−1 (the noisy fixes: the store's truth is not a
    window target) and which exist; None without the future GPS frames."""
    if "gps" not in batch["inputs"]:
        return None
    now, ok_now = batch["inputs"]["gps"][:, -1:, :GPS_XY], batch["masks"]["gps"][:, -1:]
    if "future_inputs" not in batch or "gps" not in batch["future_inputs"]:
        return now, ok_now.float()
    future = batch["future_inputs"]["gps"][..., :GPS_XY]
    ok = torch.cat([ok_now, batch["future_masks"]["gps"]], 1) & batch["target_mask"].bool()
    return torch.cat([now, future], 1), ok.float()

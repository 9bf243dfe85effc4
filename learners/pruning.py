"""Splitting-and-pruning of BeamTransFuser's fusion blocks (the paper's §IV-A, Fig. 4).

Each of the four fusion blocks is pruned on its own (splitting), in three phases: residual channels
(`embed`), the query/key/value dimensions inside every head with all heads kept (`head_dims`), and
FFN neurons (`ffn`). A structure's importance is the KL divergence between the model's output beam
distributions before and after masking it, averaged over calibration windows (`exact`: one masked
forward pass per structure; `grouped`: one per group of `group` neighbouring structures, each member
scored with its group's divergence). Masks run the reference path of the blocks (a masked channel,
dimension or neuron computed as if cut), so the pruned model equals the masked one.

The budget is one retention shared by every block in proportion to its parameters: each block keeps
that fraction of its own parameters, its three widths shrunk by one common factor and its FFN width
set to land on the budget exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from learners.models.beamtransfuser import BeamTransFuser, BlockWidths, FusionBlock, block_widths
from learners.models.registry import Tensors
from twin.errors import ConfigError

PHASES = ("embed", "head_dims", "ffn")
Batch = tuple[Tensors, Tensors]


def parameter_count(model: torch.nn.Module, prefix: str = "") -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


def fusion_parameter_count(model: BeamTransFuser) -> int:
    return parameter_count(model, "fusion.")


def block_parameters(block: FusionBlock, widths: BlockWidths) -> int:
    """Parameters of `block` at `widths` (token projections, position embedding, encoder layers)."""
    heads = block.encoder.layers[0].self_attn.heads
    fixed = parameter_count(block.to_tokens) + parameter_count(block.from_tokens)
    tokens = block.position.shape[1]
    d = widths.embed
    total = fixed + tokens * d
    for head_dim, ffn in zip(widths.head_dims, widths.ffn):
        inner = heads * head_dim
        total += 4 * d  # two LayerNorms
        total += 3 * (d * inner + inner) + inner * d + d  # q, k, v, out
        total += d * ffn + ffn + ffn * d + d  # FFN
    return total


def plan_widths(model: BeamTransFuser, keep: float) -> list[BlockWidths]:
    """Each block's widths keeping `keep` of its parameters: embed, head dims and FFN shrunk by one
    factor (found by bisection), the FFN width then set to meet the block's budget."""
    if not 0 < keep <= 1:
        raise ConfigError(f"fusion retention {keep:.3f}: expected a fraction in (0, 1]")
    out = []
    for block, full in zip(model.fusion, block_widths(model.options)):
        if keep == 1:
            out.append(full)
            continue
        target = keep * block_parameters(block, full)

        def at(s: float, full: BlockWidths = full) -> BlockWidths:
            return BlockWidths(
                max(1, round(s * full.embed)),
                tuple(max(1, round(s * h)) for h in full.head_dims),
                tuple(max(1, round(s * f)) for f in full.ffn),
            )

        layers = len(full.ffn)
        candidates = []
        for step in range(1, 401):  # common factors; the FFN width then lands on the budget
            shrink = step / 400
            widths = at(shrink)
            no_ffn = block_parameters(block, dataclasses.replace(widths, ffn=(0,) * layers))
            per_neuron = layers * (2 * widths.embed + 1)
            ffn = min(max(1, round((target - no_ffn) / per_neuron)), min(full.ffn))
            widths = dataclasses.replace(widths, ffn=(ffn,) * layers)
            error = abs(block_parameters(block, widths) - target) / target
            # Within 0.2 % of the budget, prefer the FFN shrunk like the other widths.
            candidates.append((max(error, 0.002), abs(ffn / min(full.ffn) - shrink), widths))
        out.append(min(candidates, key=lambda c: c[:2])[2])
    return out


# --- masks and importance ----------------------------------------------------------------------------


def _mask_slots(block: FusionBlock, phase: str) -> list[tuple[object, str, int]]:
    """(module, attribute, size) of the masks a phase sets in a block: one, or one per layer."""
    if phase == "embed":
        if block.keep is not None:
            raise ConfigError("pruning: the residual channels of a block can only be pruned once")
        return [(block, "channel_mask", block.dim)]
    if phase == "head_dims":
        return [
            (layer.self_attn, "head_mask", layer.self_attn.q_proj.out_features)
            for layer in block.encoder.layers
        ]
    if phase == "ffn":
        return [(layer, "ffn_mask", layer.linear1.out_features) for layer in block.encoder.layers]
    raise ConfigError(f"pruning phase {phase!r}: expected one of {', '.join(PHASES)}")


@contextlib.contextmanager
def masked(model: BeamTransFuser, masks: dict[tuple[int, str, int], torch.Tensor]) -> Iterator[None]:
    """Run the model with masks set: {(stage, phase, slot): (size,) bool}, slot = layer (0 for embed)."""
    slots = []
    for (stage, phase, slot), mask in masks.items():
        module, attribute, _ = _mask_slots(model.fusion[stage], phase)[slot]
        slots.append((module, attribute))
        setattr(module, attribute, mask)
    try:
        yield
    finally:
        for module, attribute in slots:
            setattr(module, attribute, None)


def _log_probs(model: BeamTransFuser, batches: Sequence[Batch]) -> list[torch.Tensor]:
    return [F.log_softmax(model(inputs, masks), -1) for inputs, masks in batches]


def _kl(reference: list[torch.Tensor], model: BeamTransFuser, batches: Sequence[Batch]) -> float:
    """KL(before ‖ after) per window and target frame, averaged over the calibration windows."""
    total, count = 0.0, 0
    for ref, (inputs, masks) in zip(reference, batches):
        after = F.log_softmax(model(inputs, masks), -1)
        kl = (ref.exp() * (ref - after)).sum(-1)
        total += float(kl.clamp_min(0).sum())
        count += kl.numel()
    return total / max(count, 1)


@torch.no_grad()
def importance(
    model: BeamTransFuser,
    batches: Sequence[Batch],
    stage: int,
    phase: str,
    method: str = "exact",
    group: int = 4,
) -> list[torch.Tensor]:
    """KL importance of every structure a phase prunes in one block: one (size,) tensor per slot."""
    model.eval()
    reference = _log_probs(model, batches)
    out = []
    step = 1 if method == "exact" else group
    for slot, (_, _, size) in enumerate(_mask_slots(model.fusion[stage], phase)):
        scores = torch.zeros(size)
        for start in range(0, size, step):
            mask = torch.ones(size, dtype=torch.bool)
            mask[start : start + step] = False
            with masked(model, {(stage, phase, slot): mask}):
                scores[start : start + step] = _kl(reference, model, batches)
        out.append(scores)
    return out


def select(scores: torch.Tensor, count: int, groups: int = 1) -> torch.Tensor:
    """Sorted indices of the `count` most important structures; with `groups` (heads), `count / groups`
    in each equal contiguous group."""
    per = scores.numel() // groups
    keep = count // groups
    chosen = [g * per + torch.topk(scores[g * per : (g + 1) * per], keep).indices for g in range(groups)]
    return torch.sort(torch.cat(chosen)).values


# --- slicing -----------------------------------------------------------------------------------------


@dataclass
class BlockKeep:
    """What one phase keeps in one block: embed channel indices, or per layer q/k/v or FFN indices."""

    embed: torch.Tensor | None = None
    head_dims: list[torch.Tensor] | None = None
    ffn: list[torch.Tensor] | None = None


def pruned_options(model: BeamTransFuser, keeps: dict[int, BlockKeep]) -> object:
    heads = model.options.heads
    widths = block_widths(model.options)
    for stage, keep in keeps.items():
        w = widths[stage]
        widths[stage] = BlockWidths(
            int(keep.embed.numel()) if keep.embed is not None else w.embed,
            tuple(int(k.numel()) // heads for k in keep.head_dims) if keep.head_dims else w.head_dims,
            tuple(int(k.numel()) for k in keep.ffn) if keep.ffn else w.ffn,
        )
    return dataclasses.replace(
        model.options,
        embed_widths=tuple(w.embed for w in widths),
        head_dims=tuple(w.head_dims for w in widths),
        ffn_widths=tuple(w.ffn for w in widths),
    )


def _slice_state(state: dict[str, torch.Tensor], prefix: str, block: FusionBlock, keep: BlockKeep) -> None:
    def take(name: str, dim: int, index: torch.Tensor) -> None:
        state[name] = state[name].index_select(dim, index).contiguous()

    if keep.embed is not None:
        e = keep.embed
        state[prefix + "keep"] = e.clone() if block.keep is None else block.keep[e]
        take(prefix + "position", 2, e)
    for i in range(len(block.encoder.layers)):
        layer = f"{prefix}encoder.layers.{i}."
        if keep.embed is not None:
            e = keep.embed
            for norm in ("norm1", "norm2"):
                take(layer + norm + ".weight", 0, e)
                take(layer + norm + ".bias", 0, e)
            for proj in ("q_proj", "k_proj", "v_proj"):
                take(layer + f"self_attn.{proj}.weight", 1, e)
            take(layer + "self_attn.out_proj.weight", 0, e)
            take(layer + "self_attn.out_proj.bias", 0, e)
            take(layer + "linear1.weight", 1, e)
            take(layer + "linear2.weight", 0, e)
            take(layer + "linear2.bias", 0, e)
        if keep.head_dims:
            h = keep.head_dims[i]
            for proj in ("q_proj", "k_proj", "v_proj"):
                take(layer + f"self_attn.{proj}.weight", 0, h)
                take(layer + f"self_attn.{proj}.bias", 0, h)
            take(layer + "self_attn.out_proj.weight", 1, h)
        if keep.ffn:
            f = keep.ffn[i]
            take(layer + "linear1.weight", 0, f)
            take(layer + "linear1.bias", 0, f)
            take(layer + "linear2.weight", 1, f)


def prune(model: BeamTransFuser, keeps: dict[int, BlockKeep]) -> BeamTransFuser:
    """A new model with only the kept structures of each block (weights sliced, nothing retrained)."""
    options = pruned_options(model, keeps)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for stage, keep in keeps.items():
        _slice_state(state, f"fusion.{stage}.", model.fusion[stage], keep)
    new = BeamTransFuser(options, model.context)
    new.load_state_dict(state)
    return new.train(model.training)


def phase_keeps(
    model: BeamTransFuser,
    batches: Sequence[Batch],
    phase: str,
    targets: Sequence[BlockWidths],
    method: str = "exact",
    group: int = 4,
) -> dict[int, BlockKeep]:
    """Per block, the most important structures of `phase` up to the target widths (blocks already
    at their target are left out)."""
    heads = model.options.heads
    keeps = {}
    for stage, (current, target) in enumerate(zip(block_widths(model.options), targets)):
        if phase == "embed" and target.embed < current.embed:
            (scores,) = importance(model, batches, stage, phase, method, group)
            keeps[stage] = BlockKeep(embed=select(scores, target.embed))
        elif phase == "head_dims" and target.head_dims != current.head_dims:
            scores = importance(model, batches, stage, phase, method, group)
            keeps[stage] = BlockKeep(
                head_dims=[select(s, heads * d, heads) for s, d in zip(scores, target.head_dims)]
            )
        elif phase == "ffn" and target.ffn != current.ffn:
            scores = importance(model, batches, stage, phase, method, group)
            keeps[stage] = BlockKeep(ffn=[select(s, f) for s, f in zip(scores, target.ffn)])
    return keeps


def masks_of(
    model: BeamTransFuser, phase: str, keeps: dict[int, BlockKeep]
) -> dict[tuple[int, str, int], torch.Tensor]:
    """The masks that compute, on the unpruned `model`, what `prune(model, keeps)` computes."""
    out = {}
    for stage, keep in keeps.items():
        kept = {"embed": [keep.embed] if keep.embed is not None else None, "head_dims": keep.head_dims,
                "ffn": keep.ffn}[phase]  # fmt: skip
        for slot, ((_, _, size), index) in enumerate(
            zip(_mask_slots(model.fusion[stage], phase), kept or [])
        ):
            mask = torch.zeros(size, dtype=torch.bool)
            mask[index] = True
            out[(stage, phase, slot)] = mask
    return out

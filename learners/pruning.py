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

Beyond the paper (opt-in, `branches=True` in learners.compress): a fourth phase, `branch`, prunes the
inner channels of every residual block of the camera/LiDAR/radar CNN branches (conv1's outputs =
bn1 = conv2's inputs), so every block's input and output shapes, the stage widths and thus the
fusion blocks stay as they are. Its importance is the same KL with the inner channel masked, and
the same retention applies: every residual block keeps that share of its own parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from learners.models.beamtransfuser import BasicBlock, BeamTransFuser, BlockWidths, FusionBlock, block_widths
from learners.models.registry import Tensors
from twin.errors import ConfigError

PHASES = ("embed", "head_dims", "ffn")
BRANCH_PHASE = "branch"  # beyond the paper: the CNN branches' residual blocks
Batch = tuple[Tensors, Tensors]


def parameter_count(model: torch.nn.Module, prefix: str = "") -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


def fusion_parameter_count(model: BeamTransFuser) -> int:
    return parameter_count(model, "fusion.")


def phases(branches: bool) -> tuple[str, ...]:
    return (*PHASES, BRANCH_PHASE) if branches else PHASES


def stage_blocks(model: BeamTransFuser, stage: int) -> list[tuple[str, int, BasicBlock]]:
    """(modality, block index within the branch, block) of every residual block of `stage`, over
    the image branches in the model's order: the slots of the branch phase at that stage."""
    out = []
    for m in model.images:
        first = sum(len(model.branches[m].stages[s]) for s in range(stage))
        out += [(m, first + j, block) for j, block in enumerate(model.branches[m].stages[stage])]
    return out


def branch_block_parameter_count(model: BeamTransFuser) -> int:
    """Parameters of the branches' residual blocks (what the branch phase prunes; the stems stay)."""
    return sum(parameter_count(b) for s in range(len(model.fusion)) for _, _, b in stage_blocks(model, s))


def basic_block_parameters(block: BasicBlock, inner: int) -> int:
    """Parameters of `block` with `inner` inner channels (conv1, bn1, conv2 scale with it)."""
    fixed = parameter_count(block.bn2) + parameter_count(block.shortcut)
    return fixed + inner * (block.conv1.in_channels * 9 + 2 + block.conv2.out_channels * 9)


def branch_widths(model: BeamTransFuser) -> list[tuple[int, ...]]:
    """Per stage, the inner width of every residual block in `stage_blocks` order."""
    return [
        tuple(b.conv1.out_channels for _, _, b in stage_blocks(model, s)) for s in range(len(model.fusion))
    ]


def plan_branch_widths(model: BeamTransFuser, keep: float) -> list[tuple[int, ...]]:
    """Per stage, inner widths that keep `keep` of every residual block's parameters: each block's
    exact share rounded down, then the blocks with the largest remainders given one more channel
    while the total stays within half a channel of the whole budget."""
    if not 0 < keep <= 1:
        raise ConfigError(f"branch retention {keep:.3f}: expected a fraction in (0, 1]")
    blocks = [b for s in range(len(model.fusion)) for _, _, b in stage_blocks(model, s)]
    full = [b.conv1.out_channels for b in blocks]
    if keep == 1:
        chosen = full
    else:
        per_channel = [basic_block_parameters(b, 1) - basic_block_parameters(b, 0) for b in blocks]
        fixed = [basic_block_parameters(b, 0) for b in blocks]
        exact = [
            min(max((keep * basic_block_parameters(b, n) - f) / c, 1.0), n)
            for b, n, f, c in zip(blocks, full, fixed, per_channel)
        ]
        chosen = [int(e) for e in exact]
        target = keep * sum(basic_block_parameters(b, n) for b, n in zip(blocks, full))
        total = sum(basic_block_parameters(b, n) for b, n in zip(blocks, chosen))
        for i in sorted(range(len(blocks)), key=lambda i: chosen[i] - exact[i]):
            if chosen[i] < full[i] and total + per_channel[i] / 2 <= target:
                chosen[i] += 1
                total += per_channel[i]
    out, start = [], 0
    for s in range(len(model.fusion)):
        count = len(stage_blocks(model, s))
        out.append(tuple(chosen[start : start + count]))
        start += count
    return out


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


def _mask_slots(model: BeamTransFuser, stage: int, phase: str) -> list[tuple[object, str, int]]:
    """(module, attribute, size) of the masks a phase sets at a stage: one, one per layer, or (branch)
    one per residual block of the stage."""
    if phase == BRANCH_PHASE:
        return [(b, "inner_mask", b.conv1.out_channels) for _, _, b in stage_blocks(model, stage)]
    block = model.fusion[stage]
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
    raise ConfigError(f"pruning phase {phase!r}: expected one of {', '.join(phases(True))}")


@contextlib.contextmanager
def masked(model: BeamTransFuser, masks: dict[tuple[int, str, int], torch.Tensor]) -> Iterator[None]:
    """Run the model with masks set: {(stage, phase, slot): (size,) bool}, slot = layer (0 for embed)."""
    slots = []
    for (stage, phase, slot), mask in masks.items():
        module, attribute, _ = _mask_slots(model, stage, phase)[slot]
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
    for slot, (_, _, size) in enumerate(_mask_slots(model, stage, phase)):
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
    """What one phase keeps at one stage: the fusion block's embed channel indices, or per layer q/k/v
    or FFN indices, or (branch) the inner channel indices of every residual block of the stage."""

    embed: torch.Tensor | None = None
    head_dims: list[torch.Tensor] | None = None
    ffn: list[torch.Tensor] | None = None
    branch: list[torch.Tensor] | None = None


def pruned_options(model: BeamTransFuser, keeps: dict[int, BlockKeep]) -> object:
    heads = model.options.heads
    widths = block_widths(model.options)
    inner = {
        m: [b.conv1.out_channels for stage in model.branches[m].stages for b in stage] for m in model.images
    }
    for stage, keep in keeps.items():
        for (m, index, _), kept in zip(stage_blocks(model, stage), keep.branch or []):
            inner[m][index] = int(kept.numel())
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
        branch_widths=_branch_options(model, inner),
    )


def _branch_options(model: BeamTransFuser, inner: dict[str, list[int]]) -> dict[str, tuple[int, ...]]:
    """The options' branch_widths: only the branches with a pruned block are recorded."""
    out = {}
    for m, widths in inner.items():
        full = [b.conv2.out_channels for stage in model.branches[m].stages for b in stage]
        if widths != full:
            out[m] = tuple(widths)
    return out


def _slice_branch(state: dict[str, torch.Tensor], model: BeamTransFuser, stage: int, keep: BlockKeep) -> None:
    for (m, _, _), index, local in zip(
        stage_blocks(model, stage), keep.branch or [], _local_indices(model, stage)
    ):
        prefix = f"branches.{m}.stages.{stage}.{local}."
        for name, dim in (("conv1.weight", 0), ("bn1.weight", 0), ("bn1.bias", 0), ("bn1.running_mean", 0),
                          ("bn1.running_var", 0), ("conv2.weight", 1)):  # fmt: skip
            state[prefix + name] = state[prefix + name].index_select(dim, index).contiguous()


def _local_indices(model: BeamTransFuser, stage: int) -> list[int]:
    """Each stage_blocks entry's index inside its stage's Sequential."""
    return [j for m in model.images for j in range(len(model.branches[m].stages[stage]))]


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
        _slice_branch(state, model, stage, keep)
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


def branch_keeps(
    model: BeamTransFuser,
    batches: Sequence[Batch],
    targets: Sequence[tuple[int, ...]],
    method: str = "exact",
    group: int = 4,
) -> dict[int, BlockKeep]:
    """Per stage, the most important inner channels of every residual block up to the target widths
    (`plan_branch_widths`); stages already at their target are left out."""
    keeps = {}
    for stage, (current, target) in enumerate(zip(branch_widths(model), targets)):
        if tuple(target) != current:
            scores = importance(model, batches, stage, BRANCH_PHASE, method, group)
            keeps[stage] = BlockKeep(branch=[select(s, w) for s, w in zip(scores, target)])
    return keeps


def masks_of(
    model: BeamTransFuser, phase: str, keeps: dict[int, BlockKeep]
) -> dict[tuple[int, str, int], torch.Tensor]:
    """The masks that compute, on the unpruned `model`, what `prune(model, keeps)` computes."""
    out = {}
    for stage, keep in keeps.items():
        kept = {"embed": [keep.embed] if keep.embed is not None else None, "head_dims": keep.head_dims,
                "ffn": keep.ffn, BRANCH_PHASE: keep.branch}[phase]  # fmt: skip
        for slot, ((_, _, size), index) in enumerate(zip(_mask_slots(model, stage, phase), kept or [])):
            mask = torch.zeros(size, dtype=torch.bool)
            mask[index] = True
            out[(stage, phase, slot)] = mask
    return out

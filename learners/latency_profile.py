"""Where a BeamTransFuser decision's time goes: `python -m learners.latency_profile preset=paper`.

Times one window's forward pass split by component (the CNN branches per modality, the four fusion
blocks, the GPS encoder, the head, and the rest: masking, pooling, modality weights) with forward
hooks, for the unpruned model and for the fusion blocks cut to `retention`; then the fusion-only
ceiling: the same model with its fusion blocks removed entirely (every map passes through unfused),
the fastest any pruning of the fusion blocks alone can get. The models run in turn on every window,
so a change in the machine's load falls on all of them alike. `branches=true` adds the model whose CNN
branches' residual blocks are pruned too, to the same retention (an extension beyond the paper's
method; learners.compress branches=true). Structure only (untrained models, random inputs): latency
depends on the widths, not on the weights.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from learners.compression_study import random_windows, structure_model
from learners.models.beamtransfuser import PRESETS, BeamTransFuser
from twin.errors import ConfigError

Window = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]


class PassThrough(nn.Module):
    """A fusion block that fuses nothing: the maps and GPS features go on unchanged."""

    def forward(self, maps, frame_masks, gps, gps_mask):  # type: ignore[no-untyped-def]
        return maps, gps


@dataclass(frozen=True)
class Profile:
    total_ms: float  # p50 of the whole forward pass
    parts_ms: dict[str, float]  # p50 per component; "other" is the total's median minus the parts'


def component_modules(model: BeamTransFuser) -> dict[str, list[nn.Module]]:
    parts: dict[str, list[nn.Module]] = {f"branch {m}": [model.branches[m]] for m in model.images}
    parts["fusion"] = list(model.fusion)
    if model.use_gps:
        parts["gps"] = [model.gps_encoder, *model.gps_stages]
    parts["head"] = [model.head]
    return parts


def _timed(module: nn.Module, name: str, spent: dict[str, float]) -> list[torch.utils.hooks.RemovableHandle]:
    # ImageBranch.stage calls its encoder and stages directly, so time those, not the branch itself.
    children = [module.encoder, *module.stages] if hasattr(module, "stages") else [module]
    handles = []
    for child in children:
        start: list[float] = []
        handles.append(child.register_forward_pre_hook(lambda *_, s=start: s.append(time.perf_counter())))
        handles.append(
            child.register_forward_hook(
                lambda *_, s=start: spent.__setitem__(name, spent[name] + time.perf_counter() - s.pop())
            )
        )
    return handles


def profile(model: BeamTransFuser, windows: list[Window], threads: int) -> Profile:
    """p50 over `windows` of the forward pass and of each component's share of it."""
    return profile_interleaved({"model": model}, windows, threads)["model"]


def profile_interleaved(
    models: dict[str, BeamTransFuser], windows: list[Window], threads: int
) -> dict[str, Profile]:
    """`profile` of several models, run in turn on every window, so that a change in the machine's
    load (other jobs on shared cores) falls on all of them alike rather than on whichever ran then."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    spent = {label: defaultdict(float) for label in models}
    handles = [
        h
        for label, model in models.items()
        for name, mods in component_modules(model.eval()).items()
        for m in mods
        for h in _timed(m, name, spent[label])
    ]
    totals: dict[str, list[float]] = defaultdict(list)
    parts: dict[str, dict[str, list[float]]] = {label: defaultdict(list) for label in models}
    try:
        with torch.no_grad():
            for model in models.values():
                for inputs, masks in windows[:2]:  # warm-up
                    model(inputs, masks)
            for inputs, masks in windows:
                for label, model in models.items():
                    spent[label].clear()
                    tick = time.perf_counter()
                    model(inputs, masks)
                    totals[label].append((time.perf_counter() - tick) * 1e3)
                    for name in component_modules(model):
                        parts[label][name].append(spent[label][name] * 1e3)
    finally:
        for handle in handles:
            handle.remove()
        torch.set_num_threads(previous)
    out = {}
    for label in models:
        medians = {name: float(np.median(values)) for name, values in parts[label].items()}
        total = float(np.median(totals[label]))
        medians["other"] = max(0.0, total - sum(medians.values()))
        out[label] = Profile(total, medians)
    return out


def without_fusion(model: BeamTransFuser) -> BeamTransFuser:
    """The same model with every fusion block replaced by a pass-through (the fusion-only ceiling)."""
    model.fusion = nn.ModuleList([PassThrough() for _ in model.fusion])
    return model


def describe(rows: dict[str, Profile]) -> str:
    names = list(dict.fromkeys(n for p in rows.values() for n in p.parts_ms))
    lines = [
        "| model | total p50 ms | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for label, p in rows.items():
        cells = " | ".join(
            f"{p.parts_ms[n]:.1f} ({p.parts_ms[n] / p.total_ms:.0%})" if n in p.parts_ms else "–"
            for n in names
        )
        lines.append(f"| {label} | {p.total_ms:.1f} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    options = {"preset": "paper", "retention": "0.6", "windows": "10", "threads": "2", "seed": "0",
               "branches": "false"}  # fmt: skip
    for arg in argv:
        key, _, value = arg.partition("=")
        if key not in options or not value:
            raise ConfigError(
                f"latency_profile: {arg!r}: expected KEY=VALUE with KEY among {', '.join(options)}"
            )
        options[key] = value
    if options["branches"] not in ("true", "false"):
        raise ConfigError(f"latency_profile: branches={options['branches']}: expected true or false")
    if options["preset"] not in PRESETS:
        raise ConfigError(
            f"latency_profile: preset={options['preset']}: expected one of {', '.join(PRESETS)}"
        )
    try:
        preset, retention = options["preset"], float(options["retention"])
        count, threads, seed = int(options["windows"]), int(options["threads"]), int(options["seed"])
    except ValueError as error:
        raise ConfigError(
            f"latency_profile: {error}: retention is a number, windows/threads/seed integers"
        ) from None
    if not (0 < retention <= 1 and count >= 1 and threads >= 1 and seed >= 0):
        raise ConfigError(
            "latency_profile: expected 0 < retention <= 1, windows >= 1, threads >= 1, seed >= 0"
        )
    unpruned = structure_model(preset, 1.0, "fusion")
    windows = random_windows(unpruned, count, torch.Generator().manual_seed(seed))
    models = {
        "unpruned": unpruned,
        f"fusion retention {retention:g}": structure_model(preset, retention, "fusion"),
    }
    if options["branches"] == "true":
        models[f"fusion + branches retention {retention:g}"] = structure_model(
            preset, retention, "fusion", branches=True
        )
    models["fusion removed (ceiling)"] = without_fusion(structure_model(preset, 1.0, "fusion"))
    rows = profile_interleaved(models, windows, threads)
    print(
        f"{preset} preset, one window, {threads} threads, p50 of {count} windows, the models interleaved "
        "(share of the total)"
    )
    print(describe(rows))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from None

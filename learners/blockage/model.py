"""The recurrent blockage predictor: a GRU over the 8 normalised sweeps, one logit for "blocked".

A GRU rather than an LSTM: DeepSense's wireless-only blockage baselines run a gated recurrent unit
over the beam-power sequence, and with 380 to 4,176 training windows per horizon its fewer gates
(three quarters of an LSTM's weights at the same width) overfit less; 8 steps need no LSTM memory cell.
Each sweep is embedded by a linear layer first (64 beams → `embedding`), so the recurrence sees
the shape of the sweep rather than 64 separate powers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from twin.validation import between, build, spec, to_dict


@dataclass(frozen=True)
class BlockageOptions:
    embedding: int = spec(32, check=between(1, 4096))
    hidden: int = spec(32, check=between(1, 4096))
    layers: int = spec(1, check=between(1, 8))
    dropout: float = spec(0.2, check=between(0, 0.9))

    def to_json(self) -> dict[str, Any]:
        return to_dict(self)


def blockage_options(
    data: dict[str, Any] | BlockageOptions | None, prefix: str = "model.options"
) -> BlockageOptions:
    if isinstance(data, BlockageOptions):
        return data
    return build(BlockageOptions, {k: v for k, v in (data or {}).items() if v is not None}, prefix)


class BlockageGRU(nn.Module):
    """(B, S, K) normalised sweeps → (B,) logits of the link being blocked N frames after the last."""

    kind = "blockage"

    def __init__(self, options: BlockageOptions, num_beams: int):
        super().__init__()
        self.options, self.num_beams = options, num_beams
        self.embed = nn.Sequential(nn.Linear(num_beams, options.embedding), nn.ReLU())
        inner = options.dropout if options.layers > 1 else 0.0
        self.gru = nn.GRU(options.embedding, options.hidden, options.layers, batch_first=True, dropout=inner)
        self.head = nn.Sequential(nn.Dropout(options.dropout), nn.Linear(options.hidden, 1))

    def forward(self, sweeps: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(self.embed(sweeps))
        return self.head(last[-1]).squeeze(-1)

"""The MLP network: `layers` blocks of Linear → ReLU → Dropout, then a 3-class linear head."""

from __future__ import annotations

import torch
from torch import nn

from alphafactory.models._base import N_CLASSES


class MLP(nn.Module):
    """Feed-forward network from one standardised feature row (batch × features) to logits."""

    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        blocks.append(nn.Linear(width, N_CLASSES))
        self.body = nn.Sequential(*blocks)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.body(rows)

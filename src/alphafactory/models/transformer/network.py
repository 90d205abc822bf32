"""The Transformer network: each step of a window (batch × steps × features) embedded
linearly plus a learnt position vector, a pre-norm Transformer encoder, and the last step's
normalised state into a 3-class linear head. Attention spans the window only, whose rows
all lie at or before the event."""

from __future__ import annotations

import torch
from torch import nn

from alphafactory.models._base import N_CLASSES


class TransformerNet(nn.Module):
    """`layers` encoder layers of width `d_model`, `heads` attention heads, `feedforward`
    hidden units."""

    def __init__(
        self,
        n_features: int,
        lookback: int,
        d_model: int,
        heads: int,
        layers: int,
        feedforward: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(n_features, d_model)
        self.position = nn.Parameter(torch.randn(1, lookback, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, feedforward, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, N_CLASSES)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        states = self.encoder(self.embed(windows) + self.position)
        return self.head(self.norm(states[:, -1]))

"""The CNN1D network: causal convolutions over a window (batch × steps × features), then
the last step's and the mean step's channels into a 3-class linear head."""

from __future__ import annotations

import torch
from torch import nn

from alphafactory.models._base import N_CLASSES


class CNN1D(nn.Module):
    """`layers` blocks of left-padded Conv1d (each output step sees only itself and the
    `kernel_size - 1` steps before it) → ReLU → Dropout."""

    def __init__(
        self, n_features: int, channels: int, kernel_size: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            blocks += [
                nn.ConstantPad1d((kernel_size - 1, 0), 0.0),
                nn.Conv1d(width, channels, kernel_size),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            width = channels
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(2 * channels, N_CLASSES)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        maps = self.body(windows.transpose(1, 2))  # batch × channels × steps
        return self.head(torch.cat([maps[:, :, -1], maps.mean(dim=2)], dim=1))

"""The LSTM network: an LSTM over a window (batch × steps × features); the last step's
hidden state goes through dropout into a 3-class linear head."""

from __future__ import annotations

import torch
from torch import nn

from alphafactory.models._base import N_CLASSES


class LSTMNet(nn.Module):
    """`layers` stacked LSTM layers of `hidden` units (dropout between them)."""

    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features, hidden, num_layers=layers, batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, N_CLASSES)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(windows)
        return self.head(self.dropout(states[:, -1]))

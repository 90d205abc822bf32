"""The LSTM family: a recurrent network over each event's window of matrix rows."""

from __future__ import annotations

from alphafactory.models.lstm.family import LSTMFamily, LSTMModel, LSTMParams

__all__ = ["LSTMFamily", "LSTMModel", "LSTMParams"]

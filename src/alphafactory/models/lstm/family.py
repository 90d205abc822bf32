"""The LSTM family: an LSTM over each event's window of the `lookback` matrix rows ending
at it (`models/neural/sequences.py`). Training, storage and the scaler are the neural
families' shared ones (`models/neural/family.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from alphafactory.models._base import require
from alphafactory.models.neural.family import EXTRA, NeuralFamily, NeuralModel, SequenceParams


class LSTMParams(SequenceParams):
    """`layers` LSTM layers of `hidden` units."""

    hidden: int = Field(32, ge=1, le=2048)
    layers: int = Field(1, ge=1, le=4)


class LSTMModel(NeuralModel):
    family = "lstm"


class LSTMFamily(NeuralFamily):
    """Recurrent network (LSTM) read at the window's last step, softmax over three classes."""

    name = "lstm"
    params = LSTMParams
    model_class = LSTMModel
    grids = {
        "lookback": (8, 16, 32),
        "hidden": (16, 32, 64),
        "layers": (1, 2),
        "dropout": (0.0, 0.1, 0.3),
        "learning_rate": (0.001, 0.003, 0.01),
    }

    def network(self, chosen: Mapping[str, Any], n_features: int) -> Any:
        require("torch", EXTRA)
        from alphafactory.models.lstm.network import LSTMNet

        return LSTMNet(n_features, chosen["hidden"], chosen["layers"], chosen["dropout"])

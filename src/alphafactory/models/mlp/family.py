"""The MLP family: a feed-forward network on each event's own standardised feature row (no
window: lookback 1). Training, storage and the scaler are the neural families' shared ones
(`models/neural/family.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from alphafactory.models._base import require
from alphafactory.models.neural.family import EXTRA, NeuralFamily, NeuralModel, NeuralParams


class MLPParams(NeuralParams):
    """`layers` hidden layers of `hidden` units, then the training parameters."""

    hidden: int = Field(64, ge=1, le=4096)
    layers: int = Field(2, ge=1, le=8)


class MLPModel(NeuralModel):
    family = "mlp"


class MLPFamily(NeuralFamily):
    """Feed-forward network (ReLU, dropout) with a softmax over the three classes."""

    name = "mlp"
    params = MLPParams
    model_class = MLPModel
    grids = {
        "hidden": (32, 64, 128),
        "layers": (1, 2, 3),
        "dropout": (0.0, 0.1, 0.3),
        "learning_rate": (0.001, 0.003, 0.01),
        "weight_decay": (0.0, 0.0001, 0.001),
    }

    def network(self, chosen: Mapping[str, Any], n_features: int) -> Any:
        require("torch", EXTRA)
        from alphafactory.models.mlp.network import MLP

        return MLP(n_features, chosen["hidden"], chosen["layers"], chosen["dropout"])

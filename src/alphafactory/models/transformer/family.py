"""The Transformer family: a self-attention encoder over each event's window of the
`lookback` matrix rows ending at it (`models/neural/sequences.py`). Training, storage and
the scaler are the neural families' shared ones (`models/neural/family.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from alphafactory.models._base import require
from alphafactory.models.neural.family import EXTRA, NeuralFamily, NeuralModel, SequenceParams


class TransformerParams(SequenceParams):
    """Encoder width `d_model` (a multiple of `heads`), `layers` and `feedforward` units."""

    d_model: int = Field(32, ge=1, le=1024)
    heads: int = Field(2, ge=1, le=32)
    layers: int = Field(1, ge=1, le=8)
    feedforward: int = Field(64, ge=1, le=8192)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerParams:
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} must be a multiple of heads {self.heads}")
        return self


class TransformerModel(NeuralModel):
    family = "transformer"


class TransformerFamily(NeuralFamily):
    """Pre-norm Transformer encoder read at the window's last step, softmax over 3 classes."""

    name = "transformer"
    params = TransformerParams
    model_class = TransformerModel
    grids = {
        "lookback": (8, 16, 32),
        "d_model": (16, 32, 64),
        "layers": (1, 2),
        "dropout": (0.0, 0.1, 0.3),
        "learning_rate": (0.0003, 0.001, 0.003),
    }

    def network(self, chosen: Mapping[str, Any], n_features: int) -> Any:
        require("torch", EXTRA)
        from alphafactory.models.transformer.network import TransformerNet

        return TransformerNet(
            n_features, chosen["lookback"], chosen["d_model"], chosen["heads"],
            chosen["layers"], chosen["feedforward"], chosen["dropout"],
        )  # fmt: skip

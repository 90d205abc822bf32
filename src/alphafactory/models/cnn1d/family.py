"""The CNN1D family: causal 1-D convolutions over each event's window of the `lookback`
matrix rows ending at it (`models/neural/sequences.py`). Training, storage and the scaler
are the neural families' shared ones (`models/neural/family.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from alphafactory.models._base import require
from alphafactory.models.neural.family import EXTRA, NeuralFamily, NeuralModel, SequenceParams


class CNN1DParams(SequenceParams):
    """`layers` convolutions of `channels` filters, `kernel_size` steps wide."""

    channels: int = Field(16, ge=1, le=1024)
    kernel_size: int = Field(3, ge=1, le=64)
    layers: int = Field(2, ge=1, le=8)


class CNN1DModel(NeuralModel):
    family = "cnn1d"


class CNN1DFamily(NeuralFamily):
    """Causal temporal convolutions, last-step and mean pooling, softmax over three classes."""

    name = "cnn1d"
    params = CNN1DParams
    model_class = CNN1DModel
    grids = {
        "lookback": (8, 16, 32),
        "channels": (8, 16, 32),
        "kernel_size": (2, 3, 5),
        "dropout": (0.0, 0.1, 0.3),
        "learning_rate": (0.001, 0.003, 0.01),
    }

    def network(self, chosen: Mapping[str, Any], n_features: int) -> Any:
        require("torch", EXTRA)
        from alphafactory.models.cnn1d.network import CNN1D

        return CNN1D(
            n_features, chosen["channels"], chosen["kernel_size"], chosen["layers"],
            chosen["dropout"],
        )  # fmt: skip

"""What the neural families share: causal windows (`sequences`), parameters, the fitted model
and the fit / load steps (`family`), the torch training loop (`training`) and safetensors
storage (`storage`). Importing this package does not import torch; `training` and `storage`
are imported when a network is fitted or loaded."""

from __future__ import annotations

from alphafactory.models.neural.family import (
    NeuralFamily,
    NeuralModel,
    NeuralParams,
    SequenceParams,
)
from alphafactory.models.neural.sequences import causal_windows, row_inputs, sample_windows

__all__ = [
    "NeuralFamily",
    "NeuralModel",
    "NeuralParams",
    "SequenceParams",
    "causal_windows",
    "row_inputs",
    "sample_windows",
]

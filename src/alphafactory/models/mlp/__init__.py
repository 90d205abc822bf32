"""The MLP family: a feed-forward network on each event's standardised feature row."""

from __future__ import annotations

from alphafactory.models.mlp.family import MLPFamily, MLPModel, MLPParams

__all__ = ["MLPFamily", "MLPModel", "MLPParams"]

"""The quantile LightGBM family: move quantiles read as class probabilities via the barriers."""

from __future__ import annotations

from alphafactory.models.quantile.family import (
    QuantileLightGBMFamily,
    QuantileModel,
    QuantileParams,
)
from alphafactory.models.quantile.mapping import class_probabilities

__all__ = ["QuantileLightGBMFamily", "QuantileModel", "QuantileParams", "class_probabilities"]

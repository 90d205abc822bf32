"""Feature generators: five families of causal OHLCV features and the cross-asset matrix.

Example:
    >>> from alphafactory.features import build_feature_matrix
    >>> matrix = build_feature_matrix(bars, "small")  # doctest: +SKIP
"""

from __future__ import annotations

from alphafactory.features._base import FeatureGenerator, FeatureScale, scale_preset
from alphafactory.features._matrix import (
    build_feature_matrix,
    column_symbol,
    target_derived_columns,
)
from alphafactory.features._registry import FEATURE_GENERATORS

__all__ = [
    "FEATURE_GENERATORS",
    "FeatureGenerator",
    "FeatureScale",
    "build_feature_matrix",
    "column_symbol",
    "scale_preset",
    "target_derived_columns",
]

"""The NGBoost family: categorical NGBoost stored as plain arrays, predicted with numpy."""

from __future__ import annotations

from alphafactory.models.ngboost.family import NGBoostFamily, NGBoostModel, NGBoostParams
from alphafactory.models.ngboost.trees import Ensemble

__all__ = ["Ensemble", "NGBoostFamily", "NGBoostModel", "NGBoostParams"]

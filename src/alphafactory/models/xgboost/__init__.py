"""The XGBoost family: the protocol wrapper and a group matrix shared by a group's variants."""

from __future__ import annotations

from alphafactory.models.xgboost.family import XGBoostFamily, XGBoostModel, XGBoostParams
from alphafactory.models.xgboost.group import GroupMatrix

__all__ = ["GroupMatrix", "XGBoostFamily", "XGBoostModel", "XGBoostParams"]

"""The LightGBM family: the protocol wrapper and the pipeline's shard executor."""

from __future__ import annotations

from alphafactory.models.lightgbm.family import LightGBMFamily, LightGBMModel, LightGBMParams

__all__ = ["LightGBMFamily", "LightGBMModel", "LightGBMParams"]

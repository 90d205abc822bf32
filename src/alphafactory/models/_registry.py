"""The name registry of model families: `FAMILIES[name]`, and `family(name)` with a clear
error for a name that is not there."""

from __future__ import annotations

from alphafactory.errors import ConfigError
from alphafactory.models._base import ModelFamily
from alphafactory.models.cnn1d import CNN1DFamily
from alphafactory.models.ensemble import EnsembleFamily
from alphafactory.models.ftrl import FTRLFamily
from alphafactory.models.lightgbm import LightGBMFamily
from alphafactory.models.lstm import LSTMFamily
from alphafactory.models.meta import MetaFamily
from alphafactory.models.mlp import MLPFamily
from alphafactory.models.ngboost import NGBoostFamily
from alphafactory.models.quantile import QuantileLightGBMFamily
from alphafactory.models.reward import RewardFamily
from alphafactory.models.transformer import TransformerFamily
from alphafactory.models.xgboost import XGBoostFamily

FAMILIES: dict[str, ModelFamily] = {
    family.name: family
    for family in (
        LightGBMFamily(),
        EnsembleFamily(),
        MetaFamily(),
        FTRLFamily(),
        RewardFamily(),
        QuantileLightGBMFamily(),
        XGBoostFamily(),
        NGBoostFamily(),
        MLPFamily(),
        CNN1DFamily(),
        LSTMFamily(),
        TransformerFamily(),
    )
}


def family(name: str) -> ModelFamily:
    """The family registered as `name`."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown model family '{name}'; registered families: {', '.join(FAMILIES)}"
        ) from None

"""The RewardBased family: LightGBM multiclass trees weighted by each event's realised move."""

from __future__ import annotations

from alphafactory.models.reward.family import (
    RewardFamily,
    RewardModel,
    RewardParams,
    reward_weights,
)

__all__ = ["RewardFamily", "RewardModel", "RewardParams", "reward_weights"]

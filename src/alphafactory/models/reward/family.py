"""RewardBased: LightGBM multiclass trees whose rows are weighted by the size of their move.

An event's weight is its realised forward move `aux["move"]` (in barrier units, see `Sample`)
clipped and raised to a power,

    weight = clip(|move|, move_floor, move_cap) ** move_power,

times the sample's own weight where it has one, then divided by the mean so the weights
average 1 (the learning rate and leaf sizes keep their meaning). Events that went nowhere
count little (at least `move_floor ** move_power`), big moves more, up to the cap, so one
outlier cannot dominate; `move_power = 0` gives every row weight 1, plain LightGBM. The
validation rows are weighted the same way, so early stopping watches the loss being fitted.

Training, early stopping, the time limit and the payload (`model.txt`, LightGBM's text format
holding only the trees up to the best iteration) are the LightGBM family's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from alphafactory.errors import DataError, ModelError
from alphafactory.models._base import FitBudget, ModelFamily, Sample, require
from alphafactory.models.lightgbm.family import (
    MODEL_TEXT,
    LightGBMFamily,
    LightGBMModel,
    LightGBMParams,
)
from alphafactory.tuning.space import SOURCE_GRIDS, SearchSpace

MOVE = "move"
_WEIGHTING = ("move_floor", "move_cap", "move_power")


class RewardParams(LightGBMParams):
    """LightGBM's parameters plus how a row's move becomes its weight."""

    #: |move| below this counts as this much (> 0, so every row keeps some weight).
    move_floor: float = Field(0.25, gt=0, le=100)
    #: |move| above this counts as this much.
    move_cap: float = Field(3.0, gt=0, le=100)
    #: the clipped |move| is raised to this power (0: all rows weigh the same).
    move_power: float = Field(1.0, ge=0, le=4)

    @field_validator("move_cap")
    @classmethod
    def _cap_above_floor(cls, cap: float, info: ValidationInfo) -> float:
        floor = info.data.get("move_floor")
        if floor is not None and cap < floor:
            raise ValueError(f"must be at least move_floor ({floor}); raise it or lower the floor")
        return cap


def reward_weights(
    move: np.ndarray,
    floor: float,
    cap: float,
    power: float,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """clip(|move|, floor, cap) ** power, times `base` where given, normalised to mean 1."""
    weights = np.clip(np.abs(np.asarray(move, dtype=np.float64)), floor, cap) ** power
    if base is not None:
        weights = weights * np.asarray(base, dtype=np.float64)
    total = weights.mean()
    if not np.isfinite(total) or total <= 0:
        raise DataError("reward: the sample weights sum to zero; give rows positive weights")
    return weights / total


def event_moves(sample: Sample, what: str) -> np.ndarray:
    """The sample's `aux["move"]`, checked to be one finite number per row."""
    if MOVE not in sample.aux:
        raise DataError(
            f'{what}: aux["move"] (each event\'s realised move in barrier units) is missing; '
            "build the sample with its moves (the event table's move column)"
        )
    move = np.asarray(sample.aux[MOVE], dtype=np.float64)
    if move.shape != (len(sample),):
        raise DataError(f'{what}: aux["move"] has shape {move.shape}, expected ({len(sample)},)')
    bad = np.flatnonzero(~np.isfinite(move))
    if len(bad):
        raise DataError(
            f'{what}: aux["move"] is not finite in {len(bad)} rows (first: row {int(bad[0])}); '
            "drop those events"
        )
    return move


class RewardModel(LightGBMModel):
    """A move-weighted LightGBM booster and the iteration it predicts with."""

    family = "reward"


class RewardFamily(ModelFamily):
    """LightGBM multiclass trees fitted with sample weights from each event's realised move."""

    name = "reward"
    artifact_format = "lightgbm-text"
    extra = None
    params = RewardParams

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> RewardModel:
        chosen = self.checked(train, valid, params)
        floor, cap, power = (chosen.pop(name) for name in _WEIGHTING)
        weighted = [
            dataclasses.replace(
                sample,
                weights=reward_weights(
                    event_moves(sample, what), floor, cap, power, sample.weights
                ),
            )
            for sample, what in ((train, "reward training rows"), (valid, "reward validation rows"))
        ]
        inner = LightGBMFamily().fit(weighted[0], weighted[1], chosen, budget)
        return RewardModel(inner.booster, inner.best_iteration)

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> RewardModel:
        lgb = require("lightgbm", "core")
        try:
            booster = lgb.Booster(model_str=files[MODEL_TEXT].decode("utf-8"))
        except (KeyError, UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
            raise ModelError(
                f"reward bundle: {MODEL_TEXT} is not a LightGBM model ({exc}); retrain the model"
            ) from None
        return RewardModel(booster, int(manifest.get("best_iteration", 0)), trimmed=True)

    def search_space(self, stage: int) -> SearchSpace:
        """The LightGBM source grids plus the weighting's power, for every stage."""
        return SearchSpace({**SOURCE_GRIDS, "move_power": (0.5, 1.0, 2.0)})

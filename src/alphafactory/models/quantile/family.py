"""Quantile LightGBM: regressions of the forward move at several quantile levels, read as
class probabilities through the variant's barriers (`mapping.py` documents the mapping).

One LightGBM model per level (objective `quantile`, `alpha` = the level) is fitted to the
event's realised move `aux["move"]` (barrier units: +1 breakout, -1 reversion), each
early-stopped on its own validation quantile (pinball) loss. `budget.seconds` is shared: each
level may spend an equal part of what is left when it starts. Every level keeps only its trees
up to its best iteration, so a loaded model predicts exactly like the fitted one.

Payload: `quantile.json` (levels, their files and best iterations) and one LightGBM text file
per level. Feature importance is the mean over levels of each model's total gain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from alphafactory.errors import ModelError
from alphafactory.models._base import (
    FitBudget,
    FittedModel,
    ModelFamily,
    Sample,
    require,
)
from alphafactory.models.lightgbm.family import DATASET_PARAMS, LightGBMParams, _time_limit
from alphafactory.models.lightgbm.family import fixed_params as lightgbm_fixed_params
from alphafactory.models.quantile.mapping import class_probabilities
from alphafactory.models.reward.family import event_moves
from alphafactory.tuning.space import SearchSpace, min_child_samples

INDEX = "quantile.json"
PROBABILITY_FLOOR = 1e-4
DEFAULT_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def level_file(level: float) -> str:
    """The payload file of one level's model, e.g. `quantile_0.1000.txt`."""
    return f"quantile_{level:.4f}.txt"


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Levels as a tuple: at least two, strictly ascending, inside (0, 1), 4 decimals apart."""
    chosen = tuple(float(level) for level in levels)
    if len(chosen) < 2:
        raise ValueError("needs at least two levels, e.g. [0.1, 0.5, 0.9]")
    if any(not 0.0 < level < 1.0 for level in chosen):
        raise ValueError("every level must lie strictly between 0 and 1")
    if list(chosen) != sorted(set(chosen)) or len({level_file(lv) for lv in chosen}) != len(chosen):
        raise ValueError("levels must be strictly ascending (and differ in 4 decimals)")
    return chosen


class QuantileParams(LightGBMParams):
    """LightGBM's tree parameters plus the quantile levels to fit."""

    levels: tuple[float, ...] = Field(DEFAULT_LEVELS, min_length=2, max_length=49)

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: tuple[float, ...]) -> tuple[float, ...]:
        return check_levels(levels)


def fixed_params(threads: int, seed: int) -> dict[str, Any]:
    """The fixed LightGBM parameters of every level: LightGBM's own (bagging every 5 at 0.8,
    feature fraction 0.7, deterministic), with the quantile objective instead of multiclass."""
    fixed = {**lightgbm_fixed_params(threads, seed), "objective": "quantile", "metric": "quantile"}
    del fixed["num_class"]
    return fixed


class QuantileModel(FittedModel):
    """One booster per quantile level of the move, and the iteration each predicts with."""

    family = "quantile_lightgbm"

    def __init__(
        self,
        boosters: Sequence[Any],
        levels: Sequence[float],
        iterations: Sequence[int],
        *,
        trimmed: bool = False,
    ) -> None:
        super().__init__(tuple(boosters[0].feature_name()), max(iterations))
        self.boosters = list(boosters)
        self.levels = tuple(levels)
        self.iterations = [int(it) for it in iterations]
        self.trimmed = trimmed  # loaded boosters hold only the trees up to their best one

    def _limit(self, at: int) -> int | None:
        return self.iterations[at] if self.iterations[at] > 0 and not self.trimmed else None

    def quantiles(self, features: np.ndarray) -> np.ndarray:
        """Predicted move quantiles (rows × levels), as fitted (before sorting)."""
        columns = [
            np.asarray(booster.predict(features, num_iteration=self._limit(at)), np.float64)
            for at, booster in enumerate(self.boosters)
        ]
        return np.column_stack(columns)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        # Flat tails give a class beyond the outer quantiles probability 0, which makes its
        # log loss infinite; a floor of PROBABILITY_FLOOR keeps the skill test's log loss finite.
        probabilities = class_probabilities(self.quantiles(features), self.levels)
        return (probabilities + PROBABILITY_FLOOR) / (1.0 + 3 * PROBABILITY_FLOOR)

    def feature_importance(self) -> np.ndarray:
        gains = [
            booster.feature_importance(importance_type="gain", iteration=self._limit(at))
            for at, booster in enumerate(self.boosters)
        ]
        return np.mean(np.asarray(gains, dtype=np.float64), axis=0)

    def files(self) -> dict[str, bytes]:
        index = {
            "levels": list(self.levels),
            "files": [level_file(level) for level in self.levels],
            "best_iterations": self.iterations,
        }
        payload = {INDEX: json.dumps(index, indent=1, sort_keys=True).encode()}
        for at, (level, booster) in enumerate(zip(self.levels, self.boosters, strict=True)):
            text = booster.model_to_string(num_iteration=self._limit(at))
            payload[level_file(level)] = text.encode()
        return payload


class QuantileLightGBMFamily(ModelFamily):
    """LightGBM quantile regressions of the move, mapped to class probabilities."""

    name = "quantile_lightgbm"
    artifact_format = "lightgbm-text-quantiles"
    extra = None
    params = QuantileParams

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> QuantileModel:
        lgb = require("lightgbm", "core")
        started = time.perf_counter()
        chosen = self.checked(train, valid, params)
        levels: tuple[float, ...] = chosen.pop("levels")
        leaf = chosen.pop("min_child_samples") or min_child_samples(len(train))
        base = {
            **fixed_params(budget.threads, budget.seed),
            **chosen,
            "min_child_samples": leaf,
        }
        binning = {key: base.get(key, value) for key, value in DATASET_PARAMS.items()}
        names = list(train.feature_names)
        train_set = lgb.Dataset(
            train.features, label=event_moves(train, "quantile_lightgbm training rows"),
            weight=train.weights, feature_name=names, params=binning, free_raw_data=True,
        )  # fmt: skip
        valid_set = lgb.Dataset(
            valid.features, label=event_moves(valid, "quantile_lightgbm validation rows"),
            weight=valid.weights, reference=train_set, params=binning, free_raw_data=True,
        )  # fmt: skip
        boosters, iterations = [], []
        for at, level in enumerate(levels):
            share = None
            if budget.seconds is not None:
                left = budget.seconds - (time.perf_counter() - started)
                share = max(left, 0.0) / (len(levels) - at)
            booster = lgb.train(
                {**base, "alpha": level},
                train_set,
                num_boost_round=budget.rounds,
                valid_sets=[valid_set],
                callbacks=[
                    lgb.early_stopping(budget.early_stopping, verbose=False),
                    _time_limit(share),
                ],
            )
            boosters.append(booster)
            iterations.append(int(booster.best_iteration or booster.current_iteration()))
        return QuantileModel(boosters, levels, iterations)

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> QuantileModel:
        lgb = require("lightgbm", "core")
        try:
            index = json.loads(files[INDEX].decode("utf-8"))
            levels = check_levels(index["levels"])
            iterations = [int(it) for it in index["best_iterations"]]
            if index["files"] != [level_file(level) for level in levels]:
                raise ValueError(f"files {index['files']} do not match levels {list(levels)}")
            if len(iterations) != len(levels):
                raise ValueError(f"{len(iterations)} best iterations for {len(levels)} levels")
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise ModelError(
                f"quantile_lightgbm bundle: {INDEX} is not a quantile index ({exc}); "
                "retrain the model"
            ) from None
        boosters = []
        for level in levels:
            name = level_file(level)
            try:
                boosters.append(lgb.Booster(model_str=files[name].decode("utf-8")))
            except (KeyError, UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
                raise ModelError(
                    f"quantile_lightgbm bundle: {name} is not a LightGBM model ({exc}); "
                    "retrain the model"
                ) from None
        if len({tuple(booster.feature_name()) for booster in boosters}) != 1:
            raise ModelError("quantile_lightgbm bundle: the levels' models disagree on features")
        return QuantileModel(boosters, levels, iterations, trimmed=True)

    def search_space(self, stage: int) -> SearchSpace:
        """Tree size and learning rate (the levels are a modelling choice, not tuned)."""
        return SearchSpace(
            {
                "num_leaves": (15, 31, 63),
                "max_depth": (4, 6, 8),
                "learning_rate": (0.03, 0.05, 0.1),
                "lambda_l1": (0.0, 0.01, 0.1),
            }
        )

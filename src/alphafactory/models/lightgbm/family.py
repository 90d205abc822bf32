"""LightGBM behind the family protocol: multiclass gradient-boosted trees in LightGBM's own
text format. The pipeline's shard executor (`shard.py`, `elimination.py`) fits many variants
of a group on one binning; `LightGBMFamily.fit` is the one-variant path of the protocol."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from alphafactory.errors import ModelError
from alphafactory.models._base import (
    N_CLASSES,
    FamilyParams,
    FitBudget,
    FittedModel,
    ModelFamily,
    Sample,
    require,
)
from alphafactory.tuning.space import SOURCE_GRIDS, SearchSpace, min_child_samples

MODEL_TEXT = "model.txt"
#: Parameters that shape binning; they must be identical at construction and training time.
DATASET_PARAMS: dict[str, Any] = {
    "max_bin": 255,
    "feature_pre_filter": False,
    "verbosity": -1,
}


def fixed_params(threads: int, seed: int, max_bin: int = 255) -> dict[str, Any]:
    """The fixed LightGBM parameters of the source (multiclass, bagging every 5 at 0.8)."""
    return {
        "objective": "multiclass",
        "num_class": N_CLASSES,
        "metric": "multi_logloss",
        "boosting_type": "gbdt",
        "bagging_freq": 5,
        "bagging_fraction": 0.8,
        "feature_fraction": 0.7,
        "num_threads": threads,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        **DATASET_PARAMS,
        "max_bin": max_bin,
    }


class LightGBMParams(FamilyParams):
    """The parameters a LightGBM preset or override may set."""

    num_leaves: int = Field(31, ge=2, le=4096)
    max_depth: int = Field(-1, ge=-1, le=64)
    learning_rate: float = Field(0.05, gt=0, le=1)
    feature_fraction: float = Field(0.7, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    bagging_freq: int = Field(5, ge=0)
    lambda_l1: float = Field(0.0, ge=0)
    lambda_l2: float = Field(0.0, ge=0)
    #: None: 1 % of the training rows, at least 5 (`tuning.space.min_child_samples`).
    min_child_samples: int | None = Field(None, ge=1)


class LightGBMModel(FittedModel):
    """A booster and the iteration it predicts with (its best one)."""

    family = "lightgbm"

    def __init__(self, booster: Any, best_iteration: int, *, trimmed: bool = False) -> None:
        super().__init__(tuple(booster.feature_name()), best_iteration)
        self.booster = booster
        self.trimmed = trimmed  # a loaded model holds only the trees up to its best iteration

    def _predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(features, num_iteration=self._iterations()))

    def _iterations(self) -> int | None:
        return self.best_iteration if self.best_iteration > 0 and not self.trimmed else None

    def feature_importance(self) -> np.ndarray:
        return np.asarray(
            self.booster.feature_importance(importance_type="gain", iteration=self._iterations()),
            dtype=np.float64,
        )

    def files(self) -> dict[str, bytes]:
        # Only the trees up to the best iteration are stored: the loaded model predicts
        # with all of them and so gives exactly the fitted model's predictions.
        return {MODEL_TEXT: self.booster.model_to_string(num_iteration=self._iterations()).encode()}


def _time_limit(seconds: float | None) -> Any:
    """A LightGBM callback that ends training once `seconds` have passed."""
    lgb = require("lightgbm", "core")
    started = time.perf_counter()

    def callback(env: Any) -> None:
        if seconds is not None and time.perf_counter() - started > seconds:
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    callback.order = 40  # type: ignore[attr-defined]  # after early stopping (30)
    return callback


class LightGBMFamily(ModelFamily):
    """Gradient-boosted trees (LightGBM), the source's model."""

    name = "lightgbm"
    artifact_format = "lightgbm-text"
    extra = None
    params = LightGBMParams

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> LightGBMModel:
        lgb = require("lightgbm", "core")
        chosen = self.checked(train, valid, params)
        leaf = chosen.pop("min_child_samples") or min_child_samples(len(train))
        full = {**fixed_params(budget.threads, budget.seed), **chosen, "min_child_samples": leaf}
        names = list(train.feature_names)
        binning = dict(DATASET_PARAMS)
        train_set = lgb.Dataset(
            train.features, label=train.labels, weight=train.weights, feature_name=names,
            params=binning, free_raw_data=True,
        )  # fmt: skip
        valid_set = lgb.Dataset(
            valid.features, label=valid.labels, weight=valid.weights, reference=train_set,
            params=binning, free_raw_data=True,
        )  # fmt: skip
        booster = lgb.train(
            full,
            train_set,
            num_boost_round=budget.rounds,
            valid_sets=[valid_set],
            callbacks=[
                lgb.early_stopping(budget.early_stopping, verbose=False),
                _time_limit(budget.seconds),
            ],
        )
        return LightGBMModel(booster, int(booster.best_iteration or booster.current_iteration()))

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> LightGBMModel:
        lgb = require("lightgbm", "core")
        try:
            text = files[MODEL_TEXT].decode("utf-8")
            booster = lgb.Booster(model_str=text)
        except (KeyError, UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
            raise ModelError(
                f"lightgbm bundle: {MODEL_TEXT} is not a LightGBM model ({exc})"
            ) from None
        return LightGBMModel(booster, int(manifest.get("best_iteration", 0)), trimmed=True)

    def search_space(self, stage: int) -> SearchSpace:
        """The source's grids, for every stage (stages 3-4 narrow them, `tuning.space`)."""
        return SearchSpace(dict(SOURCE_GRIDS))

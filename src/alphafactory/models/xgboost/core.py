"""The XGBoost family's parts (the family itself is `family.py`): `hist` multiclass trees
(`multi:softprob`) stored in XGBoost's own UBJSON format, their parameters and training step.

A fit early-stops on the validation rows' `mlogloss` (patience `budget.early_stopping`),
stops at `budget.rounds` trees per class or when `budget.seconds` have passed (a
`TrainingCallback`), and keeps only the trees up to the best iteration: the stored booster
predicts with all of its trees, so a loaded model predicts exactly as the fitted one. NaN is
XGBoost's missing value; each split learns the direction missing values take.
`GroupMatrix` (`group.py`) fits many variants of a group on the bins of one quantile sketch
through `fit_matrix`, the training step shared with `XGBoostFamily.fit`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from alphafactory.errors import DataError, ModelError, first_line
from alphafactory.models._base import (
    N_CLASSES,
    FamilyParams,
    FitBudget,
    FittedModel,
    Sample,
    require,
    validate_with,
)

EXTRA = "xgboost"
MODEL_FILE = "model.ubj"
#: Bytes a UBJSON object may start with: `{` then a key's length marker or a container flag.
_UBJ_SECOND = b"iUIlL$#"
#: The searched grids (ascending), the same for every tune stage.
GRIDS: dict[str, tuple[int | float, ...]] = {
    "max_depth": (4, 6, 8),
    "learning_rate": (0.03, 0.05, 0.1),
    "min_child_weight": (1.0, 5.0, 20.0),
    "subsample": (0.7, 0.8, 1.0),
    "reg_lambda": (0.5, 1.0, 5.0),
}


class XGBoostParams(FamilyParams):
    """The parameters an XGBoost preset or override may set (XGBoost's names and meanings;
    `learning_rate` is `eta`, `reg_lambda` / `reg_alpha` are `lambda` / `alpha`)."""

    max_depth: int = Field(6, ge=1, le=16)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(1.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    reg_alpha: float = Field(0.0, ge=0)
    gamma: float = Field(0.0, ge=0)
    max_bin: int = Field(256, ge=2, le=65535)


def booster_params(chosen: Mapping[str, Any], threads: int, seed: int) -> dict[str, Any]:
    """XGBoost's training parameters for validated family parameters `chosen`."""
    return {
        "objective": "multi:softprob",
        "num_class": N_CLASSES,
        "eval_metric": "mlogloss",
        "tree_method": "hist",
        "max_depth": chosen["max_depth"],
        "eta": chosen["learning_rate"],
        "subsample": chosen["subsample"],
        "colsample_bytree": chosen["colsample_bytree"],
        "min_child_weight": chosen["min_child_weight"],
        "lambda": chosen["reg_lambda"],
        "alpha": chosen["reg_alpha"],
        "gamma": chosen["gamma"],
        "max_bin": chosen["max_bin"],
        "nthread": threads,
        "seed": seed,
        "verbosity": 0,
    }


class XGBoostModel(FittedModel):
    """A booster holding exactly the trees it predicts with, and its UBJSON bytes; its
    `best_iteration` is their number of rounds (the best iteration, counted from 1)."""

    family = "xgboost"

    def __init__(self, raw: bytes, *, threads: int | None = None) -> None:
        booster = _booster_from(raw, MODEL_FILE)
        self.rounds = int(booster.num_boosted_rounds())
        super().__init__(tuple(booster.feature_names or ()), self.rounds)
        if threads is not None:
            booster.set_param({"nthread": threads})
        self.booster = booster
        self.raw = raw

    def _predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(
            self.booster.inplace_predict(
                features, iteration_range=(0, self.rounds), missing=np.nan, validate_features=False
            )
        )

    def feature_importance(self) -> np.ndarray:
        """Total gain of each feature's splits, in feature order (0 for unused features)."""
        gains = self.booster.get_score(importance_type="total_gain")
        return np.array([float(gains.get(name, 0.0)) for name in self.feature_names])

    def files(self) -> dict[str, bytes]:
        return {MODEL_FILE: self.raw}


def _booster_from(raw: bytes, what: str) -> Any:
    """A booster read from UBJSON bytes; anything else is refused before XGBoost parses it
    (an empty buffer aborts the process inside XGBoost)."""
    xgb = require("xgboost", EXTRA)
    if len(raw) < 2 or raw[:1] != b"{" or raw[1:2] not in [bytes([c]) for c in _UBJ_SECOND]:
        raise ModelError(f"xgboost bundle: {what} is not an XGBoost UBJSON model; retrain it")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except (xgb.core.XGBoostError, ValueError) as exc:  # ValueError: undecodable messages
        raise ModelError(
            f"xgboost bundle: {what} is not an XGBoost UBJSON model "
            f"({first_line(exc, 'unreadable')}); retrain it"
        ) from None
    return booster


def _time_limit(started: float, seconds: float | None) -> Any:
    """A `TrainingCallback` that ends training once `seconds` have passed since `started`."""
    xgb = require("xgboost", EXTRA)

    def after_iteration(self: Any, model: Any, epoch: int, evals_log: Any) -> bool:
        return seconds is not None and time.perf_counter() - started > seconds

    # built with type(): the base class exists only once xgboost is imported
    callback: Any = type(
        "TimeLimit", (xgb.callback.TrainingCallback,), {"after_iteration": after_iteration}
    )
    return callback()


def check_names(names: tuple[str, ...], what: str) -> None:
    """Refuse feature names XGBoost cannot store (duplicates, `[`, `]` or `<`)."""
    for name in names:
        if any(char in name for char in "[]<"):
            raise DataError(
                f"{what}: feature '{name}' contains '[', ']' or '<', which XGBoost cannot "
                "store; rename the column"
            )
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"{what}: feature '{twice[0]}' appears twice; give each column a name")


def valid_matrix(valid: Sample) -> Any:
    """The validation rows as a plain DMatrix: scored on raw values, as `predict_proba` is."""
    xgb = require("xgboost", EXTRA)
    return xgb.DMatrix(
        valid.features,
        label=valid.labels,
        weight=valid.weights,
        feature_names=list(valid.feature_names),
        missing=np.nan,
        nthread=1,
    )


def fit_matrix(
    dtrain: Any,
    dvalid: Any,
    chosen: Mapping[str, Any],
    budget: FitBudget,
    *,
    started: float | None = None,
) -> XGBoostModel:
    """Train on the quantised matrix `dtrain` (labels and weights set), early-stopping on
    `dvalid`; `chosen` are validated family parameters, `started` when the time budget began
    (now when None). Returns the model of the trees up to the best iteration."""
    xgb = require("xgboost", EXTRA)
    began = time.perf_counter() if started is None else started
    callbacks: list[Any] = []
    if budget.early_stopping > 0:  # listed first: it sees every round the time limit ends
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=budget.early_stopping,
                metric_name="mlogloss",
                data_name="valid",
                maximize=False,
            )
        )
    callbacks.append(_time_limit(began, budget.seconds))
    booster = xgb.train(
        booster_params(chosen, budget.threads, budget.seed),
        dtrain,
        num_boost_round=max(1, budget.rounds),
        evals=[(dvalid, "valid")],
        verbose_eval=False,
        callbacks=callbacks,
    )
    trained = int(booster.num_boosted_rounds())
    best = booster.attr("best_iteration")
    keep = trained if best is None else min(trained, int(best) + 1)
    kept = booster[:keep] if keep < trained else booster
    raw = bytes(kept.save_raw("ubj"))
    # the fitted model is read back from its own bytes: what is saved is what predicts
    return XGBoostModel(raw, threads=budget.threads)


def validate_xgboost(params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` checked by the XGBoost parameter model (as `XGBoostFamily.validate`)."""
    return validate_with("xgboost", XGBoostParams, params)

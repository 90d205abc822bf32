"""NGBoost behind the family protocol: natural-gradient boosting of a 3-class categorical
distribution (`k_categorical(3)`) with scikit-learn regression trees as base learners.

A fit uses NGBoost's own loop: `budget.rounds` stages at most, early stopping on the
validation rows' log score (patience `budget.early_stopping`, NGBoost's rule), and a
validation-loss monitor that ends the loop once `budget.seconds` have passed (NGBoost has no
callbacks; the monitor runs once per stage, after the stage's trees are fitted). The model
keeps the stages up to the best validation loss. Trees handle NaN as scikit-learn does
(each split learns where missing values go; a split that saw none sends them to the larger
child).

Nothing is pickled: the model is stored as plain arrays (`trees.py`, `trees.npz`) plus
`model.json`, and predicts with a numpy re-implementation of NGBoost's prediction, equal to
NGBoost's `predict_proba` (`tests/models/test_ngboost_family.py`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from alphafactory.errors import DataError, ModelError
from alphafactory.models._base import (
    N_CLASSES,
    FamilyParams,
    FitBudget,
    FittedModel,
    ModelFamily,
    Sample,
    require,
)
from alphafactory.models.ngboost.trees import TREES_FILE, Ensemble, from_ngboost
from alphafactory.tuning.space import SearchSpace, min_child_samples

EXTRA = "ngboost"
META_FILE = "model.json"
FORMAT = "alphafactory-ngboost-trees"
FORMAT_VERSION = 1
#: The searched grids (ascending), the same for every tune stage.
GRIDS: dict[str, tuple[int | float, ...]] = {
    "max_depth": (2, 3, 4),
    "learning_rate": (0.02, 0.05, 0.1),
    "minibatch_frac": (0.5, 0.8, 1.0),
    "col_sample": (0.7, 1.0),
}


class NGBoostParams(FamilyParams):
    """The parameters an NGBoost preset or override may set."""

    learning_rate: float = Field(0.05, gt=0, le=1)
    #: Share of the training rows each stage's trees see (drawn without replacement).
    minibatch_frac: float = Field(0.8, gt=0, le=1)
    #: Share of the feature columns each stage's trees see.
    col_sample: float = Field(1.0, gt=0, le=1)
    max_depth: int = Field(3, ge=1, le=16)
    #: None: 1 % of the training rows, at least 5 (`tuning.space.min_child_samples`).
    min_samples_leaf: int | None = Field(None, ge=1)
    natural_gradient: bool = True


class NGBoostModel(FittedModel):
    """An NGBoost categorical model as arrays, predicting with numpy (no NGBoost needed)."""

    family = "ngboost"

    def __init__(self, feature_names: tuple[str, ...], ensemble: Ensemble) -> None:
        super().__init__(feature_names, ensemble.n_stages)
        self.ensemble = ensemble

    def _predict(self, features: np.ndarray) -> np.ndarray:
        return self.ensemble.predict_proba(features)

    def feature_importance(self) -> np.ndarray:
        """Each feature's squared-error reduction per row, summed over every base tree."""
        return self.ensemble.importance.copy()

    def files(self) -> dict[str, bytes]:
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "distribution": f"k_categorical({N_CLASSES})",
            "base_learner": "sklearn.tree.DecisionTreeRegressor",
            "n_classes": N_CLASSES,
            "n_stages": self.ensemble.n_stages,
            "feature_names": list(self.feature_names),
        }
        return {
            META_FILE: json.dumps(meta, indent=1, sort_keys=True).encode(),
            TREES_FILE: self.ensemble.to_bytes(),
        }


class _OutOfTime(Exception):
    """Raised inside NGBoost's loop when the time budget is spent."""


class _ValidationLoss:
    """NGBoost's validation-loss monitor (the weighted mean log score, as its default one)
    that also ends the fit once `seconds` have passed since `started`."""

    def __init__(self, started: float, seconds: float | None, weights: np.ndarray | None):
        self.started, self.seconds, self.weights = started, seconds, weights
        self.calls = 0

    def __call__(self, dist: Any, labels: np.ndarray) -> float:
        # a stage that raises here is not scored, so it never becomes the best one; the
        # first stage is always scored, so a best stage exists
        if (
            self.calls
            and self.seconds is not None
            and time.perf_counter() - self.started > self.seconds
        ):
            raise _OutOfTime
        self.calls += 1
        return float(dist.total_score(labels, sample_weight=self.weights))


def fit_ngboost(
    train: Sample,
    valid: Sample,
    chosen: Mapping[str, Any],
    budget: FitBudget,
    *,
    started: float | None = None,
) -> tuple[Any, int]:
    """A fitted `NGBClassifier` and how many of its stages to keep (up to the best
    validation loss); `chosen` are validated parameters, `started` when the time budget
    began (now when None)."""
    api = require("ngboost", EXTRA)
    distns = require("ngboost.distns", EXTRA)
    tree = require("sklearn.tree", EXTRA)
    leaf = chosen["min_samples_leaf"] or min_child_samples(len(train))
    base = tree.DecisionTreeRegressor(
        criterion="squared_error",
        splitter="best",
        max_depth=chosen["max_depth"],
        min_samples_leaf=leaf,
        random_state=None,  # NGBoost seeds each stage's trees from its own random stream
    )
    model = api.NGBClassifier(
        Dist=distns.k_categorical(N_CLASSES),
        Base=base,
        natural_gradient=chosen["natural_gradient"],
        n_estimators=max(1, budget.rounds),
        learning_rate=chosen["learning_rate"],
        minibatch_frac=chosen["minibatch_frac"],
        col_sample=chosen["col_sample"],
        verbose=False,
        random_state=budget.seed,
        n_jobs=None if budget.threads <= 1 else min(budget.threads, N_CLASSES - 1),
    )
    monitor = _ValidationLoss(
        time.perf_counter() if started is None else started, budget.seconds, valid.weights
    )
    with contextlib.suppress(_OutOfTime):  # the stages fitted so far stand; the best was scored
        model.fit(
            train.features,
            train.labels,
            X_val=valid.features,
            Y_val=valid.labels,
            sample_weight=train.weights,
            val_sample_weight=valid.weights,
            val_loss_monitor=monitor,
            early_stopping_rounds=budget.early_stopping if budget.early_stopping > 0 else None,
        )
    best = model.best_val_loss_itr
    return model, len(model.scalings) if best is None else int(best) + 1


class NGBoostFamily(ModelFamily):
    """NGBoost (natural-gradient boosting) of class probabilities, tree base learners."""

    name = "ngboost"
    artifact_format = "ngboost-npz"
    extra = EXTRA
    params = NGBoostParams

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> NGBoostModel:
        started = time.perf_counter()
        chosen = self.checked(train, valid, params)
        missing = sorted(set(range(N_CLASSES)) - set(np.unique(train.labels).tolist()))
        if missing:
            raise DataError(
                f"ngboost training rows: class {missing[0]} never occurs; NGBoost's "
                f"categorical distribution needs all {N_CLASSES} classes (pick a variant "
                "with more events or another family)"
            )
        model, n_stages = fit_ngboost(train, valid, chosen, budget, started=started)
        ensemble = from_ngboost(model, n_stages, len(train.feature_names))
        return NGBoostModel(tuple(train.feature_names), ensemble)

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> NGBoostModel:
        for needed in (META_FILE, TREES_FILE):
            if needed not in files:
                raise ModelError(f"ngboost bundle: {needed} is missing; retrain the model")
        try:
            meta = json.loads(files[META_FILE].decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError
            raise ModelError(
                f"ngboost bundle: {META_FILE} is not JSON ({exc}); retrain it"
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelError(f"ngboost bundle: {META_FILE} is not an NGBoost model description")
        if meta.get("format_version") != FORMAT_VERSION or meta.get("n_classes") != N_CLASSES:
            raise ModelError(
                f"ngboost bundle: {META_FILE} has format version {meta.get('format_version')!r} "
                f"and {meta.get('n_classes')!r} classes; this version reads {FORMAT_VERSION} "
                f"with {N_CLASSES}, retrain the model"
            )
        names = tuple(str(name) for name in meta.get("feature_names", ()))
        if names != tuple(manifest.get("feature_names", names)):
            raise ModelError(
                f"ngboost bundle: {META_FILE} and the manifest list different features; "
                "the bundle was altered, retrain it"
            )
        ensemble = Ensemble.from_bytes(files[TREES_FILE], len(names))
        if ensemble.n_stages != meta.get("n_stages"):
            raise ModelError(
                f"ngboost bundle: {TREES_FILE} holds {ensemble.n_stages} stages but "
                f"{META_FILE} says {meta.get('n_stages')!r}; retrain the model"
            )
        if ensemble.n_params != N_CLASSES - 1:
            raise ModelError(
                f"ngboost bundle: {TREES_FILE} has {ensemble.n_params} parameters per row, "
                f"expected {N_CLASSES - 1}; retrain the model"
            )
        return NGBoostModel(names, ensemble)

    def search_space(self, stage: int) -> SearchSpace:
        """Small ascending grids of the main parameters, the same for every stage (stages
        3-4 narrow them, `tuning.space`)."""
        return SearchSpace(dict(GRIDS))

"""The users' stack behind the family protocol: three scikit-learn base models and a
multinomial logistic meta-learner fitted on their purged out-of-fold probabilities.

Bases: HistGradientBoostingClassifier (trees, NaN handled natively), RandomForestClassifier
and an L2 multinomial LogisticRegression on standardised features. The linear base is a
logistic regression rather than a RidgeClassifier: it has the same L2 penalty but minimises
log loss, a proper scoring rule, so its three probabilities are calibrated by construction;
a RidgeClassifier only gives scores, which need a separate calibration fit (more rows, more
time, another chance to leak). The forest and the linear model see NaN replaced by the
training rows' medians, stored with the model.

Fit: (1) the bases on all training rows; HGB grows in chunks with `warm_start`, each chunk
scored by log loss on the `valid` sample, and keeps the best chunk's trees (patience
`budget.early_stopping` iterations; scikit-learn's own early stopping would hold out a
random part of the training rows instead). (2) Purged walk-forward out-of-fold
probabilities of the same bases (`models/_oof.py`; the fold HGBs grow to the iteration count
step 1 chose and never see `valid`). (3) The meta-learner on the log-probabilities of the
rows that have out-of-fold predictions. Predicting feeds the step-1 bases to the
meta-learner.

Budget: `seconds` is shared among the full fit and the fold fits in proportion to their
training rows (`TimeShare`); inside one, the linear model fits first, HGB may use half of
what is left and the forest the rest, both growing (trees with `warm_start`) until done or
out of time. `rounds` caps HGB iterations and forest trees; `threads` sets the forest's
`n_jobs` and the OpenMP/BLAS pools; `seed` is every `random_state`.

Payload: `stack.skops`, one canonical skops file (`_skops.py`) of a dict with the medians,
the four estimators and a format number, read with `TRUSTED` (the two tree node types skops
does not trust by default) and nothing else: no pickle anywhere.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
from alphafactory.models._oof import TimeShare, fold_work, out_of_fold
from alphafactory.models.ensemble import _skops
from alphafactory.tuning.space import SearchSpace

STACK = "stack.skops"
STACK_FORMAT = 1
#: Type names skops does not trust by default that a stack holds (tree node containers).
TRUSTED = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
#: Probabilities are floored here before the log the meta-learner sees (a forest's 0).
FLOOR = 1e-4
#: Reserve of the time budget for the meta fit and the predictions between the fits.
_RESERVE = 0.1


class EnsembleParams(FamilyParams):
    """The parameters an ensemble preset or override may set (prefix: which model)."""

    hgb_learning_rate: float = Field(0.05, gt=0, le=1)
    hgb_max_leaf_nodes: int = Field(31, ge=2, le=4096)
    hgb_max_depth: int | None = Field(None, ge=1, le=64)
    hgb_min_samples_leaf: int = Field(20, ge=1)
    hgb_l2_regularization: float = Field(0.0, ge=0)
    rf_n_estimators: int = Field(200, ge=1, le=5000)
    rf_max_depth: int | None = Field(None, ge=1, le=64)
    rf_min_samples_leaf: int = Field(1, ge=1)
    rf_max_features: float = Field(0.5, gt=0, le=1)
    linear_c: float = Field(1.0, gt=0)
    meta_c: float = Field(1.0, gt=0)
    oof_folds: int = Field(4, ge=2, le=10)


def proba3(estimator: Any, features: np.ndarray) -> np.ndarray:
    """An estimator's probabilities as rows × 3, a class it never saw getting 0."""
    out = np.zeros((len(features), N_CLASSES))
    out[:, np.asarray(estimator.classes_, dtype=np.int64)] = estimator.predict_proba(features)
    return out


def stack_inputs(probabilities: np.ndarray) -> np.ndarray:
    """What a meta-learner sees: log-probabilities, floored at `FLOOR`."""
    return np.log(np.clip(probabilities, FLOOR, 1.0))


def column_medians(features: np.ndarray) -> np.ndarray:
    """Each column's median over its non-NaN values (0 for a column with none)."""
    medians = np.zeros(features.shape[1], dtype=np.float32)
    for column in range(features.shape[1]):
        values = features[:, column]
        values = values[~np.isnan(values)]
        if len(values):
            medians[column] = np.median(values)
    return medians


def impute(features: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """`features` with NaN replaced by the column's median."""
    return np.where(np.isnan(features), medians[None, :], features).astype(np.float32)


def _log_loss(probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray | None) -> float:
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-15, 1.0)
    return float(np.average(-np.log(picked), weights=weights))


@dataclass
class Bases:
    """The three base models and the medians the forest and linear model impute with."""

    medians: np.ndarray
    hgb: Any
    rf: Any
    linear: Any

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Rows × 9: the HGB, forest and linear probabilities side by side."""
        filled = impute(features, self.medians)
        parts = (proba3(self.hgb, features), proba3(self.rf, filled), proba3(self.linear, filled))
        return np.hstack(parts)


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.perf_counter() + seconds


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.perf_counter() >= deadline


def _grow(
    model: Any,
    size: str,
    total: int,
    cap: int,
    deadline: float | None,
    fit: Callable[[], Any],
    stop: Callable[[int], bool] | None = None,
) -> None:
    """Grow a `warm_start` model by raising its `size` parameter to `total`, in chunks of at
    most `cap` that fit the time left (one unit first, to measure); `stop(done)` may end it."""
    done, per_unit = 0, None
    while done < total:
        step = min(cap, total - done)
        if deadline is not None:
            left = deadline - time.perf_counter()
            step = 1 if per_unit is None else max(1, min(step, int(left / per_unit)))
        started = time.perf_counter()
        done += step
        model.set_params(**{size: done})
        fit()
        per_unit = (time.perf_counter() - started) / step
        if (stop is not None and stop(done)) or _past(deadline):
            return


def _grow_hgb(
    train: Sample,
    valid: Sample | None,
    p: Mapping[str, Any],
    budget: FitBudget,
    iterations: int,
    deadline: float | None,
) -> Any:
    """HGB grown to `iterations`; with `valid`, scored after every chunk of at most
    ``patience / 2`` iterations (10 at most), stopped after `budget.early_stopping`
    iterations without a better validation log loss, and the best chunk's model is kept."""
    ensemble = require("sklearn.ensemble", "core")
    model = ensemble.HistGradientBoostingClassifier(
        learning_rate=p["hgb_learning_rate"], max_leaf_nodes=p["hgb_max_leaf_nodes"],
        max_depth=p["hgb_max_depth"], min_samples_leaf=p["hgb_min_samples_leaf"],
        l2_regularization=p["hgb_l2_regularization"], early_stopping=False, warm_start=True,
        random_state=budget.seed, max_iter=1,
    )  # fmt: skip
    patience = max(1, budget.early_stopping)
    best: list[Any] = [np.inf, 0, None]  # loss, iterations, a copy of that model

    def fit() -> None:
        model.fit(train.features, train.labels, sample_weight=train.weights)

    def stop(done: int) -> bool:
        assert valid is not None
        loss = _log_loss(proba3(model, valid.features), valid.labels, valid.weights)
        if loss < best[0]:  # the final model needs no copy: it is returned as it is
            best[:] = [loss, done, None if done >= iterations else copy.deepcopy(model)]
        return done - best[1] >= patience

    if valid is None:
        _grow(model, "max_iter", iterations, iterations, deadline, fit)
        return model
    cap = min(10, max(1, patience // 2))
    _grow(model, "max_iter", iterations, cap, deadline, fit, stop)
    return model if best[1] == model.n_iter_ else best[2]


def _grow_forest(train: Sample, p: Mapping[str, Any], budget: FitBudget, trees: int,
                 deadline: float | None) -> Any:  # fmt: skip
    """A random forest grown (`warm_start`) to `trees` trees or until the deadline."""
    ensemble = require("sklearn.ensemble", "core")
    model = ensemble.RandomForestClassifier(
        n_estimators=1, max_depth=p["rf_max_depth"], min_samples_leaf=p["rf_min_samples_leaf"],
        max_features=p["rf_max_features"], n_jobs=budget.threads, random_state=budget.seed,
        warm_start=True,
    )  # fmt: skip

    def fit() -> None:
        model.fit(train.features, train.labels, sample_weight=train.weights)

    _grow(model, "n_estimators", trees, trees, deadline, fit)
    return model


def _fit_linear(train: Sample, c: float, seed: int) -> Any:
    """Standardisation and an L2 multinomial logistic regression (lbfgs)."""
    linear_model = require("sklearn.linear_model", "core")
    pipeline = require("sklearn.pipeline", "core")
    preprocessing = require("sklearn.preprocessing", "core")
    model = pipeline.make_pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(C=c, max_iter=1000, random_state=seed),
    )
    return model.fit(train.features, train.labels, logisticregression__sample_weight=train.weights)


def fit_bases(
    train: Sample,
    valid: Sample | None,
    p: Mapping[str, Any],
    budget: FitBudget,
    seconds: float | None,
    hgb_iterations: int | None = None,
) -> Bases:
    """The three bases on `train` within `seconds`; HGB early-stops on `valid` when given,
    else grows to `hgb_iterations`."""
    deadline = _deadline(seconds)
    medians = column_medians(train.features)
    filled = dataclasses.replace(train, features=impute(train.features, medians))
    linear = _fit_linear(filled, p["linear_c"], budget.seed)
    half = None if deadline is None else max(0.0, deadline - time.perf_counter()) / 2
    iterations = max(1, budget.rounds) if hgb_iterations is None else hgb_iterations
    hgb = _grow_hgb(train, valid, p, budget, iterations, _deadline(half))
    trees = max(1, min(p["rf_n_estimators"], budget.rounds))
    rf = _grow_forest(filled, p, budget, trees, deadline)
    return Bases(medians, hgb, rf, linear)


class EnsembleModel(FittedModel):
    """Fitted bases and the meta-learner over their log-probabilities."""

    family = "ensemble"

    def __init__(
        self,
        feature_names: tuple[str, ...],
        bases: Bases,
        meta: Any,
        payload: bytes | None = None,
    ) -> None:
        super().__init__(feature_names, int(bases.hgb.n_iter_))
        self.bases = bases
        self.meta = meta
        self._payload = payload

    def base_probabilities(self, features: np.ndarray) -> np.ndarray:
        """Rows × 9: what the bases (fitted on all training rows) give the meta-learner."""
        return self.bases.predict_proba(np.asarray(features, dtype=np.float32))

    def _predict(self, features: np.ndarray) -> np.ndarray:
        return proba3(self.meta, stack_inputs(self.bases.predict_proba(features)))

    def files(self) -> dict[str, bytes]:
        if self._payload is None:
            stack = {
                "format": STACK_FORMAT,
                "medians": self.bases.medians,
                "hgb": self.bases.hgb,
                "rf": self.bases.rf,
                "linear": self.bases.linear,
                "meta": self.meta,
            }
            self._payload = _skops.dumps(stack)
        return {STACK: self._payload}


def fit_meta_learner(
    inputs: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, c: float, seed: int
) -> Any:
    """A multinomial L2 logistic regression of the labels on the stacked inputs."""
    if len(np.unique(labels)) < 2:
        raise DataError(
            f"the rows with out-of-fold predictions hold only class {int(labels[0])}; "
            "the meta-learner needs two (use more rows or fewer folds)"
        )
    linear_model = require("sklearn.linear_model", "core")
    model = linear_model.LogisticRegression(C=c, max_iter=1000, random_state=seed)
    return model.fit(inputs, labels, sample_weight=weights)


def as_float32(sample: Sample) -> Sample:
    """`sample` with float32 features, the dtype `FittedModel.predict_proba` passes on."""
    return dataclasses.replace(sample, features=np.asarray(sample.features, dtype=np.float32))


class EnsembleFamily(ModelFamily):
    """HGB + random forest + logistic regression, stacked by a logistic meta-learner."""

    name = "ensemble"
    role = "meta"
    artifact_format = "sklearn-stack-skops"
    extra = "registry"
    params = EnsembleParams

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> EnsembleModel:
        threadpoolctl = require("threadpoolctl", "core")
        p = self.checked(train, valid, params)
        train, valid = as_float32(train), as_float32(valid)
        folds = p["oof_folds"]
        work = fold_work(train, folds)  # refuses samples without timestamps before fitting
        seconds = None if budget.seconds is None else budget.seconds * (1 - _RESERVE)
        clock = TimeShare(seconds, len(train) + sum(work))
        with threadpoolctl.threadpool_limits(limits=budget.threads):
            bases = fit_bases(train, valid, p, budget, clock.take(len(train)))
            iterations = int(bases.hgb.n_iter_)

            def fit_fold(rows: Sample) -> Bases:
                return fit_bases(rows, None, p, budget, clock.take(len(rows)), iterations)

            oof = out_of_fold(train, fit_fold, folds)
            rows = oof.mask
            weights = None if train.weights is None else np.asarray(train.weights)[rows]
            meta = fit_meta_learner(
                stack_inputs(oof.probabilities[rows]), train.labels[rows], weights,
                p["meta_c"], budget.seed,
            )  # fmt: skip
        return EnsembleModel(train.feature_names, bases, meta)

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> EnsembleModel:
        ensemble = require("sklearn.ensemble", "core")
        linear_model = require("sklearn.linear_model", "core")
        pipeline = require("sklearn.pipeline", "core")
        if STACK not in files:
            raise ModelError(f"ensemble bundle has no {STACK}; retrain the model")
        stack = _skops.loads(files[STACK], TRUSTED, f"ensemble bundle: {STACK}")
        expected = {
            "hgb": ensemble.HistGradientBoostingClassifier,
            "rf": ensemble.RandomForestClassifier,
            "linear": pipeline.Pipeline,
            "meta": linear_model.LogisticRegression,
            "medians": np.ndarray,
        }
        if (
            not isinstance(stack, dict)
            or stack.get("format") != STACK_FORMAT
            or any(not isinstance(stack.get(key), kind) for key, kind in expected.items())
        ):
            raise ModelError(
                f"ensemble bundle: {STACK} is not a format-{STACK_FORMAT} stack; retrain the model"
            )
        names = tuple(str(name) for name in manifest.get("feature_names", ()))
        bases = Bases(stack["medians"], stack["hgb"], stack["rf"], stack["linear"])
        return EnsembleModel(names, bases, stack["meta"], payload=files[STACK])

    def search_space(self, stage: int) -> SearchSpace:
        """The same small grids for every stage (stages 3-4 narrow them, `tuning.space`)."""
        return SearchSpace(
            {
                "hgb_learning_rate": (0.03, 0.05, 0.1),
                "hgb_max_leaf_nodes": (15, 31, 63),
                "rf_min_samples_leaf": (2, 5, 10),
                "meta_c": (0.3, 1.0, 3.0),
            }
        )

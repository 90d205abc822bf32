"""One quantile sketch per group, many XGBoost variants fitted on its bins.

The variants of a group share their feature rows and differ in which rows they use and in
their labels. `GroupMatrix` builds one `xgboost.QuantileDMatrix` for the union of the
group's training rows: the quantile sketch (the bin boundaries, the costly part) runs once.
A variant is fitted on a `QuantileDMatrix` of its own rows built with `ref=` that matrix,
which only maps its values to the group's bins (no sketch) — so the fit equals, tree for
tree and byte for byte, a direct fit of the variant's rows on the group's bin boundaries,
and it trains on the variant's rows only.

Rejected, measured: setting the variant's labels on the union matrix with weight 0 on other
rows. Zero-weight rows add nothing to the gradients, but XGBoost builds one child's
histogram and subtracts it from the parent for the other, choosing by row count (zero-weight
rows included), so hessian sums differ in the last float32 bits and near-tie splits (e.g. at
`min_child_weight`) can flip; it also trains on every union row (about 1.4x slower for a
variant of a third of the union) and mutates shared labels, so variants could not run
concurrently.

What differs from `XGBoostFamily.fit` on the variant's rows: bin boundaries come from the
group's union, not from the variant's rows, so split thresholds can fall a bin apart. That
changes predictions a little and their quality not at all
(`tests/models/test_xgboost_family.py` measures it). The union's raw rows are kept (by
reference, not copied) to bin each variant's rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alphafactory.errors import ConfigError, DataError
from alphafactory.models._base import N_CLASSES, FitBudget, Sample, check_sample, require
from alphafactory.models.xgboost.core import (
    EXTRA,
    XGBoostModel,
    check_names,
    fit_matrix,
    valid_matrix,
    validate_xgboost,
)


class GroupMatrix:
    """The quantile sketch of one group's training-row union; `fit` trains one variant on
    its bins.

    Args:
        features: the union's rows (float32, rows × columns, NaN = missing); variant rows
            are positions in it.
        feature_names: one name per column.
        max_bin: bins per feature; every variant fitted here must use this `max_bin`.
        threads: threads for building the matrix.
    """

    def __init__(
        self,
        features: np.ndarray,
        feature_names: Sequence[str],
        *,
        max_bin: int = 256,
        threads: int = 1,
    ) -> None:
        xgb = require("xgboost", EXTRA)
        features = np.asarray(features, dtype=np.float32)
        names = tuple(feature_names)
        # the union must be learnable as a whole: shape, names, no all-NaN column
        labels = np.arange(len(features), dtype=np.int32) % N_CLASSES
        check_sample(Sample(features, labels, names), "xgboost group rows", need_classes=1)
        check_names(names, "xgboost group rows")
        self.feature_names = names
        self.max_bin = int(max_bin)
        self.n_rows = len(features)
        self.features = features
        self.matrix = xgb.QuantileDMatrix(
            features,
            feature_names=list(names),
            missing=np.nan,
            max_bin=self.max_bin,
            nthread=threads,
        )
        self._lock = threading.Lock()

    def fit(
        self,
        rows: np.ndarray,
        labels: np.ndarray,
        valid: Sample,
        params: Mapping[str, Any],
        budget: FitBudget,
        weights: np.ndarray | None = None,
    ) -> XGBoostModel:
        """Fit the variant whose training rows are `rows` (positions in the union, each once)
        with class `labels` (and `weights`), early-stopping on its own `valid` rows."""
        started = time.perf_counter()
        rows = np.asarray(rows, dtype=np.int64)
        self._check_rows(rows, len(labels), weights)
        if tuple(valid.feature_names) != self.feature_names:
            raise DataError(
                "xgboost variant: validation features differ from the group's "
                f"{list(self.feature_names)}; build them from the same columns"
            )
        chosen = validate_xgboost(params)
        if chosen["max_bin"] != self.max_bin:
            raise ConfigError(
                f"xgboost parameter 'max_bin'={chosen['max_bin']} differs from the group "
                f"matrix's {self.max_bin}; build the GroupMatrix with max_bin="
                f"{chosen['max_bin']} or drop the override"
            )
        train = Sample(
            self.features[rows],
            np.asarray(labels),
            self.feature_names,
            None if weights is None else np.asarray(weights, dtype=np.float32),
        )
        # the family's own checks, so a variant is refused here exactly when `fit` would be
        check_sample(train, "xgboost training rows")
        check_sample(valid, "xgboost validation rows", need_classes=1)
        xgb = require("xgboost", EXTRA)
        with self._lock:  # one reader of the shared cuts at a time (unverified as thread-safe)
            dtrain = xgb.QuantileDMatrix(
                train.features,
                label=train.labels,
                weight=train.weights,
                feature_names=list(self.feature_names),
                missing=np.nan,
                max_bin=self.max_bin,
                ref=self.matrix,
                nthread=budget.threads,
            )
        return fit_matrix(dtrain, valid_matrix(valid), chosen, budget, started=started)

    def _check_rows(self, rows: np.ndarray, n_labels: int, weights: np.ndarray | None) -> None:
        if rows.ndim != 1 or len(rows) != n_labels:
            raise DataError(
                f"xgboost variant: {len(rows)} rows but {n_labels} labels; give one label "
                "per training row"
            )
        if len(rows) == 0:
            raise DataError("xgboost variant: no training rows")
        if rows.min() < 0 or rows.max() >= self.n_rows:
            raise DataError(
                f"xgboost variant: row positions must lie in 0..{self.n_rows - 1} (the group "
                f"union), got {int(rows.min())}..{int(rows.max())}"
            )
        if len(np.unique(rows)) != len(rows):
            raise DataError("xgboost variant: a training row is listed twice; give each once")
        if weights is not None and (
            np.shape(weights) != rows.shape or not np.all(np.asarray(weights) > 0)
        ):
            raise DataError("xgboost variant: weights must be positive, one per training row")

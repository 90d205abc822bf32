"""The XGBoost family (`XGBoostFamily`): fits, loads and searches through the parts in
`core.py` (model, parameters, training step; the format and stopping rules are described
there) and shares one quantile sketch across a group's variants through `group.py`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alphafactory.errors import ModelError
from alphafactory.models._base import (
    FitBudget,
    FittedModel,
    GroupFit,
    ModelFamily,
    Sample,
    require,
)
from alphafactory.models.xgboost.core import (
    EXTRA,
    GRIDS,
    MODEL_FILE,
    XGBoostModel,
    XGBoostParams,
    check_names,
    fit_matrix,
    valid_matrix,
)
from alphafactory.models.xgboost.group import GroupMatrix
from alphafactory.tuning.space import SearchSpace


class XGBoostFamily(ModelFamily):
    """Gradient-boosted trees (XGBoost `hist`), multiclass soft probabilities."""

    name = "xgboost"
    artifact_format = "xgboost-ubj"
    extra = EXTRA
    params = XGBoostParams

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> XGBoostModel:
        started = time.perf_counter()
        xgb = require("xgboost", EXTRA)
        check_names(train.feature_names, "xgboost training rows")
        chosen = self.checked(train, valid, params)
        dtrain = xgb.QuantileDMatrix(
            train.features,
            label=train.labels,
            weight=train.weights,
            feature_names=list(train.feature_names),
            missing=np.nan,
            max_bin=chosen["max_bin"],
            nthread=budget.threads,
        )
        return fit_matrix(dtrain, valid_matrix(valid), chosen, budget, started=started)

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> XGBoostModel:
        if MODEL_FILE not in files:
            raise ModelError(f"xgboost bundle: {MODEL_FILE} is missing; retrain the model")
        model = XGBoostModel(bytes(files[MODEL_FILE]))
        names = manifest.get("feature_names")
        if names is not None and list(names) != list(model.feature_names):
            raise ModelError(
                f"xgboost bundle: {MODEL_FILE} has features {list(model.feature_names)} but "
                f"the manifest lists {list(names)}; the bundle was altered, retrain it"
            )
        return model

    def group_fitter(
        self, trains: Sequence[Sample], params: Mapping[str, Any], budget: FitBudget
    ) -> GroupFit | None:
        """One `GroupMatrix` (quantile sketch) for the union of the variants' training rows,
        matched by timestamp; each variant then fits on those bins (`group.py`)."""
        if len(trains) < 2 or any(t.timestamps is None for t in trains):
            return None
        stamps = np.concatenate([np.asarray(t.timestamps) for t in trains])
        union, first = np.unique(stamps, return_index=True)
        features = np.concatenate([t.features for t in trains])[first]
        chosen = self.validate(params)
        matrix = GroupMatrix(
            features, trains[0].feature_names, max_bin=chosen["max_bin"], threads=budget.threads
        )

        def fit(
            train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
        ) -> FittedModel:
            rows = np.searchsorted(union, np.asarray(train.timestamps))
            return matrix.fit(rows, train.labels, valid, params, budget, weights=train.weights)

        return fit

    def search_space(self, stage: int) -> SearchSpace:
        """Small ascending grids of the main parameters, the same for every stage (stages
        3-4 narrow them, `tuning.space`)."""
        return SearchSpace(dict(GRIDS))

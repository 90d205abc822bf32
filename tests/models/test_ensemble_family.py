"""The ensemble family against oracles: the stack's prediction recomputed by hand from its
parts, the meta-learner refitted on purged out-of-fold probabilities, HGB early stopping
recomputed from a one-shot fit, and the skops payload's canonical bytes and trust list."""

from __future__ import annotations

import dataclasses
import io as stdio
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from alphafactory.errors import DataError, ModelError
from alphafactory.models import FitBudget, Sample, preset_params
from alphafactory.models._oof import out_of_fold
from alphafactory.models.ensemble import EnsembleFamily, EnsembleModel, _skops
from alphafactory.models.ensemble.family import STACK, TRUSTED, fit_bases
from tests.contract.conftest import make_sample

FAMILY = EnsembleFamily()
TRAIN = make_sample(900, seed=11)
VALID = make_sample(300, seed=12, start="2024-03-01")
TEST = make_sample(400, seed=13, start="2024-04-01")
#: No time limit, so every fit is reproducible exactly.
BUDGET = FitBudget(rounds=150, early_stopping=10, seconds=None, threads=1, seed=3)
PARAMS = preset_params("ensemble", "balanced", {"rf_n_estimators": 25, "oof_folds": 3})


@pytest.fixture(scope="module")
def model() -> EnsembleModel:
    return FAMILY.fit(TRAIN, VALID, PARAMS, BUDGET)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_prediction_is_the_meta_learner_over_the_bases_by_hand(model: EnsembleModel) -> None:
    features = TEST.features
    medians = np.nanmedian(TRAIN.features, axis=0)
    filled = np.where(np.isnan(features), medians, features)
    assert np.isnan(features).any()
    np.testing.assert_array_equal(model.bases.medians, medians)
    bases = np.hstack(
        [
            model.bases.hgb.predict_proba(features),  # NaN handled by HGB itself
            model.bases.rf.predict_proba(filled),
            model.bases.linear.predict_proba(filled),
        ]
    )
    np.testing.assert_array_equal(model.base_probabilities(features), bases)
    meta = model.meta
    assert list(meta.classes_) == [0, 1, 2]
    scores = np.log(np.clip(bases, 1e-4, 1.0)) @ meta.coef_.T + meta.intercept_
    np.testing.assert_allclose(model.predict_proba(features), softmax(scores), atol=1e-12)


def test_meta_learner_is_fitted_on_purged_out_of_fold_probabilities(
    model: EnsembleModel,
) -> None:
    iterations = model.best_iteration

    def fit(rows: Sample) -> Any:
        return fit_bases(rows, None, PARAMS, BUDGET, None, iterations)

    oof = out_of_fold(TRAIN, fit, PARAMS["oof_folds"])
    assert 0.5 < oof.mask.mean() < 1.0  # the first block is left out
    inputs = np.log(np.clip(oof.probabilities[oof.mask], 1e-4, 1.0))
    oracle = LogisticRegression(C=PARAMS["meta_c"], max_iter=1000, random_state=BUDGET.seed)
    oracle.fit(inputs, TRAIN.labels[oof.mask])
    np.testing.assert_array_equal(model.meta.coef_, oracle.coef_)
    np.testing.assert_array_equal(model.meta.intercept_, oracle.intercept_)


def test_hgb_keeps_the_iteration_with_the_best_validation_loss(model: EnsembleModel) -> None:
    """The kept HGB equals a one-shot fit at the best chunk (chunks of patience/2 = 5)."""
    kept = model.bases.hgb
    assert kept.n_iter_ == model.best_iteration and kept.n_iter_ % 5 == 0
    assert kept.n_iter_ + BUDGET.early_stopping < BUDGET.rounds  # patience ended it
    reference = HistGradientBoostingClassifier(
        learning_rate=PARAMS["hgb_learning_rate"], max_leaf_nodes=PARAMS["hgb_max_leaf_nodes"],
        max_depth=PARAMS["hgb_max_depth"], min_samples_leaf=PARAMS["hgb_min_samples_leaf"],
        l2_regularization=PARAMS["hgb_l2_regularization"], early_stopping=False,
        random_state=BUDGET.seed, max_iter=BUDGET.rounds,
    ).fit(TRAIN.features, TRAIN.labels)  # fmt: skip
    staged = list(reference.staged_predict_proba(VALID.features))
    best, best_loss = 0, np.inf
    for k in range(5, BUDGET.rounds + 1, 5):  # stop after `early_stopping` without a gain
        loss = -np.mean(np.log(staged[k - 1][np.arange(len(VALID)), VALID.labels]))
        if loss < best_loss:
            best, best_loss = k, loss
        elif k - best >= BUDGET.early_stopping:
            break
    assert kept.n_iter_ == best
    np.testing.assert_array_equal(kept.predict_proba(VALID.features), staged[best - 1])


def test_rounds_cap_the_forest_and_the_boosting() -> None:
    budget = dataclasses.replace(BUDGET, rounds=6, early_stopping=100)
    fitted = FAMILY.fit(TRAIN, VALID, PARAMS, budget)
    assert fitted.bases.hgb.n_iter_ <= 6 and len(fitted.bases.rf.estimators_) == 6


def test_same_seed_same_bytes_other_seed_other_bytes(model: EnsembleModel) -> None:
    again = FAMILY.fit(TRAIN, VALID, PARAMS, BUDGET)
    assert again.files() == model.files()
    other = FAMILY.fit(TRAIN, VALID, PARAMS, dataclasses.replace(BUDGET, seed=4))
    assert other.files()[STACK] != model.files()[STACK]


def test_payload_is_skops_with_only_the_listed_types_untrusted(model: EnsembleModel) -> None:
    from skops.io import get_untrusted_types

    payload = model.files()[STACK]
    with zipfile.ZipFile(stdio.BytesIO(payload)) as archive:
        assert "schema.json" in archive.namelist()
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
    assert sorted(get_untrusted_types(data=payload)) == sorted(TRUSTED)
    loaded = FAMILY.load({STACK: payload}, {"feature_names": list(TEST.feature_names)})
    np.testing.assert_array_equal(
        loaded.predict_proba(TEST.features), model.predict_proba(TEST.features)
    )


class Planted:
    """An object skops can store but must not rebuild unless trusted: its state's setter
    would create `marker`."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).touch()
        self.__dict__.update(state)


def test_a_type_outside_the_trust_list_is_refused_unbuilt(tmp_path: Path) -> None:
    marker = tmp_path / "built"
    data = _skops.dumps({"format": 1, "planted": Planted(str(marker))})
    with pytest.raises(ModelError, match=r"does not trust: .*Planted"):
        FAMILY.load({STACK: data}, {"feature_names": []})
    assert not marker.exists()


@pytest.mark.parametrize("payload", [b"garbage", b"PK\x03\x04 truncated zip"])
def test_garbage_payload_is_a_model_error(payload: bytes) -> None:
    with pytest.raises(ModelError, match=r"stack\.skops"):
        FAMILY.load({STACK: payload}, {"feature_names": []})


def test_a_skops_file_of_something_else_is_refused() -> None:
    data = _skops.dumps({"format": 1, "hgb": "not a model"})
    with pytest.raises(ModelError, match=r"is not a format-1 stack"):
        FAMILY.load({STACK: data}, {"feature_names": []})


def test_missing_timestamps_are_refused_before_fitting() -> None:
    bare = dataclasses.replace(TRAIN, timestamps=None)
    with pytest.raises(DataError, match=r"need the sample's timestamps"):
        FAMILY.fit(bare, VALID, PARAMS, BUDGET)

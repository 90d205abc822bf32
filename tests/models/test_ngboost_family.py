"""The NGBoost family: the numpy re-implementation against NGBoost's own `predict_proba`
and scikit-learn's trees (NaN routing included), early stopping against the validation
loss curve, the time-limit monitor, and the pickle-free array format."""

from __future__ import annotations

import dataclasses
import io as stdio
import json
import time
import zipfile
from typing import Any

import numpy as np
import pytest

from alphafactory.errors import DataError, ModelError
from alphafactory.models import FitBudget, Sample, preset_params
from alphafactory.models.ngboost import Ensemble, NGBoostFamily
from alphafactory.models.ngboost.family import META_FILE, _OutOfTime, _ValidationLoss, fit_ngboost
from alphafactory.models.ngboost.trees import TREES_FILE, from_ngboost
from tests.contract.conftest import N_FEATURES, NAMES, make_sample

pytest.importorskip("ngboost")

FAMILY = NGBoostFamily()
TRAIN, VALID, TEST = make_sample(1200, 31), make_sample(400, 32), make_sample(600, 33)
BUDGET = FitBudget(rounds=150, early_stopping=10, threads=1, seed=5)
#: Subsampled rows and columns: each stage's trees see a column subset, remapped on export.
SAMPLED = FAMILY.validate({"learning_rate": 0.1, "minibatch_frac": 0.7, "col_sample": 0.6})


def _with_missing(features: np.ndarray) -> np.ndarray:
    """NaN in every feature, in columns that had none in training too (f0-f4)."""
    out = features.copy()
    rng = np.random.default_rng(0)
    out[rng.random(out.shape) < 0.15] = np.nan
    return out


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, int]:
    return fit_ngboost(TRAIN, VALID, SAMPLED, BUDGET)


def test_numpy_predictions_equal_ngboosts_own(fitted: tuple[Any, int]) -> None:
    model, stages = fitted
    ensemble = from_ngboost(model, stages, N_FEATURES)
    for features in (TEST.features, _with_missing(TEST.features)):
        expected = model.predict_proba(features, max_iter=stages)
        np.testing.assert_allclose(ensemble.predict_proba(features), expected, rtol=0, atol=1e-13)
        np.testing.assert_allclose(
            ensemble.predict_params(features),
            model.pred_param(features, stages),
            rtol=0,
            atol=1e-12,
        )


def test_weighted_rows_are_predicted_exactly_too(fitted: tuple[Any, int]) -> None:
    weights = np.random.default_rng(1).uniform(0.2, 3.0, len(TRAIN))
    valid_weights = np.random.default_rng(2).uniform(0.2, 3.0, len(VALID))
    train = dataclasses.replace(TRAIN, weights=weights)
    valid = dataclasses.replace(VALID, weights=valid_weights)
    model, stages = fit_ngboost(train, valid, SAMPLED, BUDGET)
    expected = model.predict_proba(TEST.features, max_iter=stages)
    ensemble = from_ngboost(model, stages, N_FEATURES)
    np.testing.assert_allclose(ensemble.predict_proba(TEST.features), expected, rtol=0, atol=1e-13)
    unweighted, _ = fitted
    assert not np.allclose(expected, unweighted.predict_proba(TEST.features, max_iter=stages))
    # early stopping followed the weighted validation loss
    losses = model.evals_result["val"]["LOGSCORE"]
    probabilities = model.predict_proba(VALID.features, max_iter=stages)
    picked = probabilities[np.arange(len(VALID)), VALID.labels]
    assert losses[stages - 1] == pytest.approx(
        -np.average(np.log(picked), weights=valid_weights), rel=1e-12
    )


def test_each_tree_routes_rows_as_scikit_learn_does(fitted: tuple[Any, int]) -> None:
    """Leaf values of every tree equal `DecisionTreeRegressor.predict` on the stage's
    columns, NaN included (missing_go_to_left; the larger child for unseen NaN)."""
    model, stages = fitted
    ensemble = from_ngboost(model, stages, N_FEATURES)
    features = _with_missing(TEST.features)
    leaves = ensemble.leaf_values(features)
    trees = [
        (tree, columns)
        for learners, columns in zip(
            model.base_models[:stages], model.col_idxs[:stages], strict=True
        )
        for tree in learners
    ]
    assert leaves.shape == (len(features), len(trees)) == (600, 2 * stages)
    assert any(len(columns) < N_FEATURES for _, columns in trees)
    for index, (tree, columns) in enumerate(trees):
        np.testing.assert_array_equal(leaves[:, index], tree.predict(features[:, columns]))
    assert ensemble.missing_go_to_left.any() and not ensemble.missing_go_to_left.all()


def test_the_family_model_is_the_export_and_survives_its_bytes(fitted: tuple[Any, int]) -> None:
    model, stages = fitted
    ours = FAMILY.fit(TRAIN, VALID, SAMPLED, BUDGET)
    expected = model.predict_proba(TEST.features, max_iter=stages)
    np.testing.assert_allclose(ours.predict_proba(TEST.features), expected, rtol=0, atol=1e-13)
    files = ours.files()
    loaded = FAMILY.load(files, {"feature_names": list(NAMES)})
    np.testing.assert_array_equal(
        loaded.predict_proba(TEST.features), ours.predict_proba(TEST.features)
    )
    assert loaded.files() == files and loaded.best_iteration == stages


def test_early_stopping_keeps_the_stages_up_to_the_lowest_validation_loss(
    fitted: tuple[Any, int],
) -> None:
    model, stages = fitted
    losses = np.array(model.evals_result["val"]["LOGSCORE"])
    assert stages == int(np.argmin(losses)) + 1  # the first minimum
    assert len(losses) == stages + BUDGET.early_stopping < BUDGET.rounds  # patience ran out
    assert len(model.scalings) == len(losses)
    # the validation loss NGBoost tracked is the mean log score of the kept stages' output
    probabilities = model.predict_proba(VALID.features, max_iter=stages)
    picked = probabilities[np.arange(len(VALID)), VALID.labels]
    assert losses[stages - 1] == pytest.approx(-np.mean(np.log(picked)), rel=1e-12)


def test_patience_zero_trains_every_round() -> None:
    budget = dataclasses.replace(BUDGET, rounds=12, early_stopping=0)
    model, stages = fit_ngboost(TRAIN, VALID, SAMPLED, budget)
    assert len(model.scalings) == 12
    losses = model.evals_result["val"]["LOGSCORE"]
    assert stages == int(np.argmin(losses)) + 1


def test_validation_monitor_scores_weighted_and_stops_on_time() -> None:
    class Dist:
        def total_score(self, labels: np.ndarray, sample_weight: Any = None) -> float:
            return float(np.average(labels, weights=sample_weight))

    weights = np.array([1.0, 3.0])
    monitor = _ValidationLoss(time.perf_counter() - 10.0, 1.0, weights)
    assert monitor(Dist(), np.array([0.0, 2.0])) == 1.5  # the first stage is always scored
    with pytest.raises(_OutOfTime):
        monitor(Dist(), np.array([0.0, 2.0]))
    unlimited = _ValidationLoss(time.perf_counter() - 1e6, None, None)
    assert [unlimited(Dist(), np.array([1.0, 2.0])) for _ in range(3)] == [1.5] * 3


def test_time_budget_keeps_the_best_scored_stage() -> None:
    train, valid = make_sample(20_000, 34), make_sample(4_000, 35)
    budget = dataclasses.replace(BUDGET, rounds=100_000, early_stopping=100_000, seconds=0.3)
    started = time.perf_counter()
    model, stages = fit_ngboost(train, valid, SAMPLED, budget)
    assert time.perf_counter() - started < 0.3 + 2.0
    assert 1 <= stages <= len(model.scalings) - 1  # the stage being scored was dropped
    assert model.best_val_loss_itr == stages - 1


def test_importance_is_scikit_learns_unnormalised_importance_summed(
    fitted: tuple[Any, int],
) -> None:
    model, stages = fitted
    expected = np.zeros(N_FEATURES)
    for learners, columns in zip(model.base_models[:stages], model.col_idxs[:stages], strict=True):
        for tree in learners:
            np.add.at(expected, columns, tree.tree_.compute_feature_importances(normalize=False))
    np.testing.assert_allclose(from_ngboost(model, stages, N_FEATURES).importance, expected)
    assert np.argmax(expected) == 0  # f0 decides the planted rule


def test_all_three_classes_are_needed() -> None:
    labels = np.where(TRAIN.labels == 2, 0, TRAIN.labels)
    with pytest.raises(DataError, match=r"ngboost training rows: class 2 never occurs"):
        FAMILY.fit(dataclasses.replace(TRAIN, labels=labels), VALID, {}, BUDGET)


def test_same_seed_same_bytes_other_seed_other_trees() -> None:
    first = FAMILY.fit(TRAIN, VALID, SAMPLED, BUDGET).files()
    again = FAMILY.fit(TRAIN, VALID, SAMPLED, BUDGET).files()
    other = FAMILY.fit(TRAIN, VALID, SAMPLED, dataclasses.replace(BUDGET, seed=6)).files()
    assert first == again
    assert first[TREES_FILE] != other[TREES_FILE]


# ---- the stored format ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved() -> dict[str, bytes]:
    return FAMILY.fit(TRAIN, VALID, preset_params("ngboost", "conservative"), BUDGET).files()


def test_the_archive_holds_only_plain_arrays(saved: dict[str, bytes]) -> None:
    with zipfile.ZipFile(stdio.BytesIO(saved[TREES_FILE])) as archive:
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
    with np.load(stdio.BytesIO(saved[TREES_FILE]), allow_pickle=False) as arrays:
        assert all(arrays[name].dtype.kind in "fiu" for name in arrays.files)
    meta = json.loads(saved[META_FILE])
    assert meta["n_stages"] == len(np.load(stdio.BytesIO(saved[TREES_FILE]))["scalings"])
    assert meta["feature_names"] == list(NAMES)


def _replaced(saved: dict[str, bytes], **arrays: np.ndarray) -> dict[str, bytes]:
    with np.load(stdio.BytesIO(saved[TREES_FILE]), allow_pickle=False) as archive:
        content = {name: archive[name] for name in archive.files}
    content.update(arrays)
    buffer = stdio.BytesIO()
    np.savez(buffer, **content)  # type: ignore[arg-type]
    return {**saved, TREES_FILE: buffer.getvalue()}


def test_malformed_arrays_are_refused_before_any_prediction(saved: dict[str, bytes]) -> None:
    with np.load(stdio.BytesIO(saved[TREES_FILE]), allow_pickle=False) as archive:
        left, feature = archive["children_left"].copy(), archive["feature"].copy()
    inner = int(np.flatnonzero(left >= 0)[0])
    cycle, outside = left.copy(), feature.copy()
    cycle[inner] = 0  # points back at the root: a traversal would never end
    outside[inner] = N_FEATURES
    cases = [
        (_replaced(saved, children_left=cycle), r"points backwards or outside its tree"),
        (_replaced(saved, feature=outside), r"a split uses a feature outside 0\.\.5"),
        (_replaced(saved, scalings=np.array([1.0])), r"trees for 1 stages"),
        (
            _replaced(saved, children_left=np.array(["a"] * len(left), dtype=object)),
            r"trees\.npz is not an NGBoost tree archive",
        ),
    ]
    for files, message in cases:
        with pytest.raises(ModelError, match=message):
            FAMILY.load(files, {})


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        (TREES_FILE, b"", r"trees\.npz is not an NGBoost tree archive"),
        (TREES_FILE, b"\x80\x04K\x01.", r"trees\.npz is not an NGBoost tree archive"),
        (META_FILE, b"\x80\x04K\x01.", r"model\.json is not JSON"),
        (META_FILE, b'{"format": "other"}', r"model\.json is not an NGBoost model description"),
    ],
)
def test_bytes_of_another_kind_are_refused(
    saved: dict[str, bytes], name: str, payload: bytes, message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        FAMILY.load({**saved, name: payload}, {})


def test_a_manifest_naming_other_features_is_refused(saved: dict[str, bytes]) -> None:
    with pytest.raises(ModelError, match=r"list different features"):
        FAMILY.load(saved, {"feature_names": ["a", "b", "c", "d", "e", "f"]})


def test_ensemble_round_trips_its_bytes_exactly(saved: dict[str, bytes]) -> None:
    ensemble = Ensemble.from_bytes(saved[TREES_FILE], N_FEATURES)
    assert ensemble.to_bytes() == saved[TREES_FILE]
    rows = Sample(_with_missing(TEST.features), TEST.labels, NAMES)
    np.testing.assert_array_equal(
        Ensemble.from_bytes(ensemble.to_bytes(), N_FEATURES).predict_proba(rows.features),
        ensemble.predict_proba(rows.features),
    )


def test_a_nan_threshold_sends_present_values_right_as_scikit_learn_does(
    saved: dict[str, bytes],
) -> None:
    """scikit-learn writes a NaN threshold for a "missing vs the rest" split on a column whose
    present values are all equal (seen on 6 of 36 local-dev finalists); `x <= NaN` is false,
    so every present value goes right. Such a model loads and routes exactly like one whose
    threshold is -inf (present values right, missing ones as `missing_go_to_left`)."""
    with np.load(stdio.BytesIO(saved[TREES_FILE]), allow_pickle=False) as archive:
        threshold, left = archive["threshold"].copy(), archive["children_left"]
    assert left[0] >= 0  # the first tree's root is an inner node
    with_nan, with_minus_inf = threshold.copy(), threshold.copy()
    with_nan[0], with_minus_inf[0] = np.nan, -np.inf
    nan_model = FAMILY.load(_replaced(saved, threshold=with_nan), {})
    reference = FAMILY.load(_replaced(saved, threshold=with_minus_inf), {})
    rows = TEST.features.astype(np.float64)
    rows[::3, :] = np.nan  # missing rows take the stored missing direction in both
    np.testing.assert_array_equal(
        nan_model.ensemble.leaf_values(rows), reference.ensemble.leaf_values(rows)
    )
    original = FAMILY.load(saved, {})
    assert not np.array_equal(
        original.ensemble.leaf_values(rows)[:, 0], nan_model.ensemble.leaf_values(rows)[:, 0]
    )

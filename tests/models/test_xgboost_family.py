"""The XGBoost family: early stopping and the stored trees against plain `xgboost.train`,
importance against the trees' own gains, the time-limit callback, refusal of bytes that are
not a UBJSON model, and the group matrix against direct fits of a variant's rows."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import numpy as np
import pytest

from alphafactory.errors import ConfigError, DataError, ModelError
from alphafactory.metrics import average_precision
from alphafactory.models import FitBudget, Sample
from alphafactory.models.xgboost import GroupMatrix, XGBoostFamily, XGBoostModel
from alphafactory.models.xgboost.core import (
    MODEL_FILE,
    _time_limit,
    booster_params,
    fit_matrix,
    valid_matrix,
)
from tests.contract.conftest import NAMES, make_sample

xgb = pytest.importorskip("xgboost")

FAMILY = XGBoostFamily()
TRAIN, VALID, TEST = make_sample(1500, 11), make_sample(500, 12), make_sample(800, 13)
#: Fast learning, so that early stopping ends the fit long before `rounds`.
FAST = FAMILY.validate({"learning_rate": 0.3, "max_depth": 6, "min_child_weight": 0.0})
BUDGET = FitBudget(rounds=400, early_stopping=8, threads=1, seed=3)


def _reference_best(losses: list[float], patience: int) -> tuple[int, int]:
    """(best iteration, rounds trained) of XGBoost's early-stopping rule on a loss curve:
    an iteration is the new best when its loss is strictly lower; stop `patience` iterations
    after the best."""
    best, best_loss = 0, losses[0]
    for iteration, loss in enumerate(losses[1:], start=1):
        if loss < best_loss:
            best, best_loss = iteration, loss
        elif iteration - best >= patience:
            return best, iteration + 1
    return best, len(losses)


def _full_booster(params: dict[str, Any], rounds: int) -> tuple[Any, list[float]]:
    """Plain `xgboost.train` for `rounds` rounds, no callbacks: the oracle."""
    dtrain = xgb.QuantileDMatrix(
        TRAIN.features, label=TRAIN.labels, feature_names=list(NAMES), max_bin=params["max_bin"]
    )
    log: dict[str, Any] = {}
    booster = xgb.train(
        booster_params(params, 1, BUDGET.seed), dtrain, num_boost_round=rounds,
        evals=[(valid_matrix(VALID), "valid")], evals_result=log, verbose_eval=False,
    )  # fmt: skip
    return booster, [float(v) for v in log["valid"]["mlogloss"]]


def _matrix(features: np.ndarray) -> Any:
    return xgb.DMatrix(features, feature_names=list(NAMES))


def test_early_stopping_keeps_exactly_the_trees_up_to_the_best_iteration() -> None:
    model = FAMILY.fit(TRAIN, VALID, FAST, BUDGET)
    full, losses = _full_booster(FAST, 200)
    best, trained = _reference_best(losses, BUDGET.early_stopping)
    assert trained < 200, "the curve must turn up for this test to mean anything"
    assert model.best_iteration == best + 1 == model.rounds
    expected = full.predict(_matrix(TEST.features), iteration_range=(0, best + 1))
    # the raw scores (predict_proba then renormalises XGBoost's float32 rows)
    np.testing.assert_array_equal(model._predict(TEST.features), expected)
    # all trees would predict differently: the cut is real
    assert not np.allclose(full.predict(_matrix(TEST.features)), expected)
    loaded = FAMILY.load(model.files(), {"best_iteration": model.best_iteration})
    np.testing.assert_array_equal(loaded._predict(TEST.features), expected)
    np.testing.assert_array_equal(
        loaded.predict_proba(TEST.features), model.predict_proba(TEST.features)
    )
    assert loaded.best_iteration == model.best_iteration


def test_rounds_cap_the_trees_and_patience_zero_disables_early_stopping() -> None:
    budget = dataclasses.replace(BUDGET, rounds=7, early_stopping=0)
    model = FAMILY.fit(TRAIN, VALID, FAST, budget)
    full, _ = _full_booster(FAST, 7)
    assert model.rounds == 7
    np.testing.assert_array_equal(
        model._predict(TEST.features), full.predict(_matrix(TEST.features))
    )


def test_missing_values_take_the_learned_default_direction() -> None:
    """Class 1 exactly when f0 is missing: only the missing-value direction can learn it."""
    rng = np.random.default_rng(5)

    def planted(rows: int) -> Sample:
        features = rng.normal(size=(rows, 6)).astype(np.float32)
        nan = rng.random(rows) < 0.3
        features[nan, 0] = np.nan
        labels = np.where(nan, 1, np.where(features[:, 1] > 0, 0, 2)).astype(np.int32)
        return Sample(features, labels, NAMES)

    train, valid, test = planted(1500), planted(400), planted(600)
    model = FAMILY.fit(train, valid, FAST, BUDGET)
    probabilities = model.predict_proba(test.features)
    nan = np.isnan(test.features[:, 0])
    assert probabilities[nan, 1].min() > 0.9
    assert probabilities[~nan, 1].max() < 0.1


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("f0", "f1", "f2", "f3", "f4", "x<5"), r"feature 'x<5' contains '\[', '\]' or '<'"),
        (("f0", "f1", "f2", "f3", "f1", "f5"), r"feature 'f1' appears twice"),
    ],
)
def test_names_xgboost_cannot_store_are_refused(names: tuple[str, ...], message: str) -> None:
    with pytest.raises(DataError, match=message):
        FAMILY.fit(dataclasses.replace(TRAIN, feature_names=names), VALID, FAST, BUDGET)
    with pytest.raises(DataError, match=message):
        GroupMatrix(GROUP.features, names)


def _tree_gains(booster: Any) -> dict[str, float]:
    gains: dict[str, float] = {}

    def walk(node: dict[str, Any]) -> None:
        if "children" in node:
            gains[node["split"]] = gains.get(node["split"], 0.0) + float(node["gain"])
            for child in node["children"]:
                walk(child)

    for tree in booster.get_dump(dump_format="json", with_stats=True):
        walk(json.loads(tree))
    return gains


def test_feature_importance_is_the_total_gain_of_each_feature_in_feature_order() -> None:
    model = FAMILY.fit(TRAIN, VALID, FAMILY.validate({}), BUDGET)
    gains = _tree_gains(model.booster)
    expected = np.array([gains.get(name, 0.0) for name in NAMES])
    np.testing.assert_allclose(model.feature_importance(), expected, rtol=1e-5)
    assert np.argmax(model.feature_importance()) == 0  # f0 decides the planted rule


def test_time_limit_callback_stops_only_once_the_budget_is_spent() -> None:
    now = time.perf_counter()
    assert _time_limit(now - 5.0, 1.0).after_iteration(None, 0, {}) is True
    assert _time_limit(now, 60.0).after_iteration(None, 0, {}) is False
    assert _time_limit(now - 1e6, None).after_iteration(None, 0, {}) is False


def test_same_seed_same_bytes_other_seed_other_trees() -> None:
    params = FAMILY.validate({"subsample": 0.7})
    first = FAMILY.fit(TRAIN, VALID, params, BUDGET)
    second = FAMILY.fit(TRAIN, VALID, params, BUDGET)
    other = FAMILY.fit(TRAIN, VALID, params, dataclasses.replace(BUDGET, seed=4))
    assert first.files() == second.files()
    assert first.files()[MODEL_FILE] != other.files()[MODEL_FILE]


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "empty (XGBoost itself aborts the process on it)"),
        (b"\x80\x04K\x01.", "a pickle"),
        (b'{"learner": {}}', "JSON, not UBJSON"),
        (b"{L\x00\x00", "truncated UBJSON"),
    ],
)
def test_bytes_that_are_no_ubj_model_are_refused(payload: bytes, why: str) -> None:
    with pytest.raises(ModelError, match=rf"{MODEL_FILE} is not an XGBoost UBJSON model"):
        FAMILY.load({MODEL_FILE: payload}, {})


def test_a_truncated_real_model_is_refused() -> None:
    raw = FAMILY.fit(TRAIN, VALID, FAST, BUDGET).files()[MODEL_FILE]
    with pytest.raises(ModelError, match=r"model\.ubj is not an XGBoost UBJSON model \("):
        FAMILY.load({MODEL_FILE: raw[: len(raw) // 2]}, {})


# ---- the group matrix -------------------------------------------------------------------

GROUP = make_sample(3000, 21)
ROWS = np.sort(np.random.default_rng(22).choice(3000, 1400, replace=False))


def _variant_labels(features: np.ndarray, seed: int) -> np.ndarray:
    """The variant's own rule, another than the group sample's: f1 (and a little f2) with
    label noise."""
    rng = np.random.default_rng(seed)
    score = features[:, 1] + 0.5 * features[:, 2] + rng.normal(scale=0.6, size=len(features))
    return np.where(score > 0.6, 1, np.where(score < -0.6, 2, 0)).astype(np.int32)


LABELS = _variant_labels(GROUP.features[ROWS], 25)
VARIANT_VALID = make_sample(600, 23)
VARIANT_VALID = dataclasses.replace(
    VARIANT_VALID, labels=_variant_labels(VARIANT_VALID.features, 26)
)
VARIANT_TEST = _variant_labels(TEST.features, 27)
EXACT = FAMILY.validate({"subsample": 1.0, "max_bin": 64})


def _direct_with_group_bins(group: GroupMatrix, weights: np.ndarray | None = None) -> Any:
    """The variant's rows alone, quantised with the group's bin boundaries (`ref=`)."""
    return xgb.QuantileDMatrix(
        GROUP.features[ROWS], label=LABELS, weight=weights, feature_names=list(NAMES),
        max_bin=group.max_bin, ref=group.matrix,
    )  # fmt: skip


def _cuts(matrix: Any) -> tuple[np.ndarray, np.ndarray]:
    indptr, values = matrix.get_quantile_cut()
    return np.asarray(indptr), np.asarray(values)


def test_variants_are_binned_with_the_union_sketch_not_their_own() -> None:
    group = GroupMatrix(GROUP.features, NAMES, max_bin=64)
    union = _cuts(group.matrix)
    own = _cuts(xgb.QuantileDMatrix(GROUP.features[ROWS], max_bin=64))
    union_only = _cuts(xgb.QuantileDMatrix(GROUP.features, max_bin=64))
    for got, want in zip(_cuts(_direct_with_group_bins(group)), union, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(union, union_only, strict=True):
        np.testing.assert_array_equal(got, want)  # the union's bins are its own sketch
    assert not np.array_equal(own[1], union[1])  # a subset's own sketch differs


@pytest.mark.parametrize("subsample", [1.0, 0.8])
def test_a_variant_equals_a_fit_on_its_rows_with_the_group_bins(subsample: float) -> None:
    """Tree for tree, also with row subsampling: the variant trains on its rows only."""
    params = FAMILY.validate({"subsample": subsample, "max_bin": 64})
    group = GroupMatrix(GROUP.features, NAMES, max_bin=64)
    shared = group.fit(ROWS, LABELS, VARIANT_VALID, params, BUDGET)
    direct = fit_matrix(_direct_with_group_bins(group), valid_matrix(VARIANT_VALID), params, BUDGET)
    assert shared.best_iteration == direct.best_iteration > 1
    np.testing.assert_array_equal(
        shared.predict_proba(TEST.features), direct.predict_proba(TEST.features)
    )
    assert shared.files() == direct.files()  # the very same trees and base score


def test_variant_weights_act_as_on_a_direct_fit() -> None:
    group = GroupMatrix(GROUP.features, NAMES, max_bin=64)
    weights = np.random.default_rng(24).uniform(0.2, 3.0, len(ROWS)).astype(np.float32)
    shared = group.fit(ROWS, LABELS, VARIANT_VALID, EXACT, BUDGET, weights=weights)
    direct = fit_matrix(
        _direct_with_group_bins(group, weights), valid_matrix(VARIANT_VALID), EXACT, BUDGET
    )
    unweighted = group.fit(ROWS, LABELS, VARIANT_VALID, EXACT, BUDGET)
    assert shared.files() == direct.files()
    assert shared.files() != unweighted.files()


def test_variants_fitted_in_turn_do_not_leak_into_each_other() -> None:
    group = GroupMatrix(GROUP.features, NAMES, max_bin=64)
    first = group.fit(ROWS, LABELS, VARIANT_VALID, EXACT, BUDGET)
    other_rows = np.arange(0, 3000, 2)
    other = group.fit(other_rows, GROUP.labels[other_rows], VALID, EXACT, BUDGET)
    again = group.fit(ROWS, LABELS, VARIANT_VALID, EXACT, BUDGET)
    assert first.files() == again.files() != other.files()


def test_a_group_variant_is_close_to_the_family_fit_on_its_own_rows() -> None:
    """The documented difference (bins from the union's sketch, not the variant's) moves
    predictions no more than another seed does, and leaves their quality as it is."""
    params = FAMILY.validate({})  # subsample 0.8, 256 bins
    group = GroupMatrix(GROUP.features, NAMES, max_bin=params["max_bin"])
    shared = group.fit(ROWS, LABELS, VARIANT_VALID, params, BUDGET)
    variant = Sample(GROUP.features[ROWS], LABELS, NAMES)
    direct = FAMILY.fit(variant, VARIANT_VALID, params, BUDGET)
    reseeded = FAMILY.fit(variant, VARIANT_VALID, params, dataclasses.replace(BUDGET, seed=13))
    assert shared.files() != direct.files()  # not the same trees ...
    ours, theirs, other = (
        model.predict_proba(TEST.features) for model in (shared, direct, reseeded)
    )
    seed_noise = np.mean(np.abs(other - theirs))
    assert 0.01 < seed_noise < 0.04
    assert np.mean(np.abs(ours - theirs)) < 1.5 * seed_noise  # ... but as close as a reseed
    ap = average_precision(VARIANT_TEST, theirs)
    assert ap > 0.7  # the variant's rule is learnt, not the group sample's
    assert abs(average_precision(VARIANT_TEST, ours) - ap) < 0.01


def test_group_matrix_refuses_what_it_cannot_fit() -> None:
    group = GroupMatrix(GROUP.features, NAMES, max_bin=64)
    with pytest.raises(ConfigError, match=r"'max_bin'=256 differs from the group matrix's 64"):
        group.fit(ROWS, LABELS, VARIANT_VALID, FAMILY.validate({}), BUDGET)
    with pytest.raises(DataError, match=r"row positions must lie in 0\.\.2999"):
        group.fit(np.array([0, 3000]), np.array([0, 1]), VARIANT_VALID, EXACT, BUDGET)
    with pytest.raises(DataError, match=r"xgboost training rows: only class 2 present"):
        group.fit(ROWS, np.full(len(ROWS), 2), VARIANT_VALID, EXACT, BUDGET)
    with pytest.raises(DataError, match=r"listed twice"):
        group.fit(np.array([1, 1, 2]), np.array([0, 1, 0]), VARIANT_VALID, EXACT, BUDGET)
    features = GROUP.features.copy()
    features[:, 3] = np.nan
    with pytest.raises(DataError, match=r"feature 'f3' is NaN in every row"):
        GroupMatrix(features, NAMES)


def test_a_model_is_its_bytes() -> None:
    """The fitted model predicts from the bytes it saves, not from the training booster."""
    model = FAMILY.fit(TRAIN, VALID, FAST, BUDGET)
    again = XGBoostModel(model.files()[MODEL_FILE])
    np.testing.assert_array_equal(
        again.predict_proba(TEST.features), model.predict_proba(TEST.features)
    )


def test_group_fitter_shares_one_sketch_and_matches_direct_fits_on_the_same_rows() -> None:
    """Two variants on the same training rows (so the union's bins are each variant's own):
    the group fitter's models predict exactly as `fit` on each variant alone, and it needs the
    rows' timestamps to match them into the union."""
    family = XGBoostFamily()
    base, valid = make_sample(700, seed=11), make_sample(250, seed=12, start="2024-03-01")
    flipped = dataclasses.replace(base, labels=((base.labels + 1) % 3).astype(np.int32))
    params = {"max_depth": 3, "learning_rate": 0.2}
    budget = FitBudget(rounds=25, early_stopping=5, threads=1, seed=4)
    shared = family.group_fitter([base, flipped], params, budget)
    assert shared is not None
    for train in (base, flipped):
        via_group = shared(train, valid, params, budget)
        direct = family.fit(train, valid, params, budget)
        np.testing.assert_array_equal(
            via_group.predict_proba(valid.features), direct.predict_proba(valid.features)
        )
    no_stamps = dataclasses.replace(base, timestamps=None)
    assert family.group_fitter([no_stamps, flipped], params, budget) is None
    assert family.group_fitter([base], params, budget) is None  # nothing to share

"""The quantile LightGBM family: the CDF → class mapping on hand-made quantiles, and the
fitted levels (objective, calibration, importance, the time budget shared across levels)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alphafactory.errors import ConfigError, DataError
from alphafactory.models import FitBudget, Sample, preset_params
from alphafactory.models.quantile import (
    QuantileLightGBMFamily,
    QuantileModel,
    class_probabilities,
)
from alphafactory.models.quantile.family import PROBABILITY_FLOOR
from tests.contract.conftest import make_sample

LEVELS = (0.1, 0.5, 0.9)


@pytest.mark.parametrize(
    ("quantiles", "expected"),
    [
        # F(-1) = 0.1 + 0.4 * 1/2, F(1-) = 0.5 + 0.4 * 1/2
        ((-2.0, 0.0, 2.0), (0.4, 0.3, 0.3)),
        # -1 below q1 (flat tail: F = 0); F(1-) = 0.1 + 0.4 * 0.5 / 1
        ((0.5, 1.5, 3.0), (0.3, 0.7, 0.0)),
        # crossing quantiles are sorted to (-3, -1.5, 2): both barriers in the top segment
        ((2.0, -3.0, -1.5), (0.4 * 2 / 3.5, 1 - (0.5 + 0.4 * 2.5 / 3.5), 0.5 + 0.4 * 0.5 / 3.5)),
        # all quantiles at or beyond a barrier: that class takes everything
        ((1.0, 2.0, 3.0), (0.0, 1.0, 0.0)),
        ((-5.0, -4.0, -1.0), (0.0, 0.0, 1.0)),
        ((1.0, 1.0, 1.0), (0.0, 1.0, 0.0)),
        # quantiles exactly on the barriers: F(-1) = 0.1 (mass at q1), F(1-) = 0.9
        ((-1.0, 0.0, 1.0), (0.8, 0.1, 0.1)),
        # all inside (-1, 1): the flat tails leave both barriers unreachable
        ((-0.9, 0.0, 0.9), (1.0, 0.0, 0.0)),
        # a tie in the middle is a point mass of 0.4: F(-1) = 0.1 + 0.4 * 1/2 = 0.3
        ((-2.0, 0.0, 0.0), (0.7, 0.0, 0.3)),
    ],
)
def test_quantiles_map_to_class_probabilities(
    quantiles: tuple[float, ...], expected: tuple[float, ...]
) -> None:
    got = class_probabilities(np.array([quantiles]), LEVELS)
    np.testing.assert_allclose(got, [expected], atol=1e-12)


def test_mapping_with_uneven_levels_and_many_rows() -> None:
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    quantiles = np.array([[-3.0, -1.5, -0.5, 0.5, 4.0], [-1.0, -0.5, 0.0, 3.0, 5.0]])
    got = class_probabilities(quantiles, levels)
    # row 1: F(-1) = 0.25 + 0.25 * 0.5 / 1; F(1-) = 0.75 + 0.2 * 0.5 / 3.5
    # row 2: F(-1) = 0.05 (the point mass at q1 = -1); F(1-) = 0.5 + 0.25 * 1 / 3
    rev = np.array([0.375, 0.05])
    below = np.array([0.75 + 0.1 / 3.5, 0.5 + 0.25 / 3])
    np.testing.assert_allclose(got, np.column_stack([below - rev, 1 - below, rev]), atol=1e-12)


Samples = tuple[Sample, Sample, Sample]


@pytest.fixture(scope="module")
def samples() -> Samples:
    return (
        make_sample(1200, seed=1),
        make_sample(400, seed=2, start="2024-03-01"),
        make_sample(600, seed=3, start="2024-04-01"),
    )


@pytest.fixture(scope="module")
def fitted(samples: Samples) -> QuantileModel:
    train, valid, _ = samples
    params = {"levels": [0.1, 0.5, 0.9], "num_leaves": 15, "learning_rate": 0.1}
    budget = FitBudget(rounds=60, early_stopping=10, threads=1, seed=7)
    return QuantileLightGBMFamily().fit(train, valid, params, budget)


def test_each_level_is_a_quantile_model_of_the_move(
    fitted: QuantileModel, samples: Samples
) -> None:
    _, _, test = samples
    files = fitted.files()
    assert sorted(files) == [
        "quantile.json",
        "quantile_0.1000.txt",
        "quantile_0.5000.txt",
        "quantile_0.9000.txt",
    ]
    for level in LEVELS:
        text = files[f"quantile_{level:.4f}.txt"].decode()
        assert "objective=quantile" in text and f"[alpha: {level}]" in text
    # calibration out of sample: about `level` of the moves lie at or below each quantile
    coverage = (test.aux["move"][:, None] <= fitted.quantiles(test.features)).mean(axis=0)
    np.testing.assert_allclose(coverage, LEVELS, atol=0.07)
    # the probabilities are the mapping of those quantiles, floored so none is exactly 0
    mapped = class_probabilities(fitted.quantiles(test.features), LEVELS)
    np.testing.assert_allclose(
        fitted.predict_proba(test.features),
        (mapped + PROBABILITY_FLOOR) / (1 + 3 * PROBABILITY_FLOOR),
        rtol=0, atol=1e-12,
    )  # fmt: skip
    assert fitted.predict_proba(test.features).min() >= PROBABILITY_FLOOR / 2
    gains = [
        b.feature_importance(importance_type="gain", iteration=it)
        for b, it in zip(fitted.boosters, fitted.iterations, strict=True)
    ]
    np.testing.assert_allclose(fitted.feature_importance(), np.mean(gains, axis=0))
    assert int(np.argmax(fitted.feature_importance())) == 0  # f0 drives the move
    assert fitted.best_iteration == max(fitted.iterations)


def test_time_budget_is_shared_by_the_levels() -> None:
    train, valid = make_sample(20_000, seed=8), make_sample(4_000, seed=9)
    budget = FitBudget(rounds=100_000, early_stopping=100_000, seconds=0.5, seed=7)
    model = QuantileLightGBMFamily().fit(train, valid, preset_params("quantile_lightgbm"), budget)
    assert len(model.iterations) == 9
    assert all(1 <= it < budget.rounds for it in model.iterations)


def test_missing_move_and_bad_levels_are_refused(samples: Samples) -> None:
    train, valid, _ = samples
    with pytest.raises(DataError, match=r'quantile_lightgbm training rows: aux\["move"\]'):
        QuantileLightGBMFamily().fit(
            dataclasses.replace(train, aux={}), valid, {}, FitBudget(rounds=5)
        )
    with pytest.raises(ConfigError, match=r"parameter 'levels'.*strictly ascending"):
        preset_params("quantile_lightgbm", overrides={"levels": [0.5, 0.1]})
    with pytest.raises(ConfigError, match=r"parameter 'levels'.*between 0 and 1"):
        preset_params("quantile_lightgbm", overrides={"levels": [0.0, 0.5]})

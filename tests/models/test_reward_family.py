"""The RewardBased family: the move weighting on hand-made moves, and that its model is
LightGBM fitted with exactly those weights (equal weights: the lightgbm family's model)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alphafactory.errors import ConfigError, DataError
from alphafactory.models import FitBudget, Sample, family, preset_params
from alphafactory.models.reward import RewardFamily, reward_weights
from tests.contract.conftest import make_sample

BUDGET = FitBudget(rounds=40, early_stopping=10, threads=1, seed=7)
MOVES = np.array([0.0, 0.1, -0.5, 1.0, -2.0, 7.0])
TREES = {"num_leaves": 15, "max_depth": 4, "learning_rate": 0.1}


def test_weights_clip_raise_and_normalise() -> None:
    # |move| clipped to [0.25, 3]: 0.25 0.25 0.5 1 2 3, sum 7, mean 7/6
    np.testing.assert_allclose(
        reward_weights(MOVES, 0.25, 3.0, 1.0), np.array([0.25, 0.25, 0.5, 1, 2, 3]) * 6 / 7
    )
    # squared: 1/16 1/16 1/4 1 4 9, sum 14.375
    squares = np.array([1 / 16, 1 / 16, 1 / 4, 1, 4, 9])
    np.testing.assert_allclose(reward_weights(MOVES, 0.25, 3.0, 2.0), squares / (14.375 / 6))
    # the sample's own weights multiply in before the normalisation
    base = np.array([2.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # 0.5 0 0.5 1 2 3, sum 7
    np.testing.assert_allclose(
        reward_weights(MOVES, 0.25, 3.0, 1.0, base), np.array([0.5, 0, 0.5, 1, 2, 3]) * 6 / 7
    )
    np.testing.assert_array_equal(reward_weights(MOVES, 0.25, 3.0, 0.0), np.ones(6))


@pytest.fixture(scope="module")
def samples() -> tuple[Sample, Sample, Sample]:
    return (
        make_sample(1200, seed=1),
        make_sample(400, seed=2, start="2024-03-01"),
        make_sample(600, seed=3, start="2024-04-01"),
    )


def test_equal_weights_reproduce_the_lightgbm_family(samples: tuple[Sample, ...]) -> None:
    train, valid, test = samples
    reward = RewardFamily().fit(train, valid, {**TREES, "move_power": 0.0}, BUDGET)
    plain = family("lightgbm").fit(train, valid, TREES, BUDGET)
    assert reward.best_iteration == plain.best_iteration
    np.testing.assert_array_equal(
        reward.predict_proba(test.features), plain.predict_proba(test.features)
    )


def test_move_weights_are_what_lightgbm_is_fitted_with(samples: tuple[Sample, ...]) -> None:
    train, valid, test = samples
    knobs = {"move_floor": 0.5, "move_cap": 2.0, "move_power": 2.0}
    reward = RewardFamily().fit(train, valid, {**TREES, **knobs}, BUDGET)
    weighted = [
        dataclasses.replace(s, weights=reward_weights(s.aux["move"], 0.5, 2.0, 2.0))
        for s in (train, valid)
    ]
    oracle = family("lightgbm").fit(weighted[0], weighted[1], TREES, BUDGET)
    plain = family("lightgbm").fit(train, valid, TREES, BUDGET)
    ours = reward.predict_proba(test.features)
    np.testing.assert_array_equal(ours, oracle.predict_proba(test.features))
    assert np.abs(ours - plain.predict_proba(test.features)).max() > 1e-3
    assert reward.family == "reward"


def test_missing_or_broken_moves_are_refused(samples: tuple[Sample, ...]) -> None:
    train, valid, _ = samples
    params = preset_params("reward")
    with pytest.raises(DataError, match=r'reward training rows: aux\["move"\] .* is missing'):
        RewardFamily().fit(dataclasses.replace(train, aux={}), valid, params, BUDGET)
    with pytest.raises(DataError, match=r'reward validation rows: aux\["move"\] .* is missing'):
        RewardFamily().fit(train, dataclasses.replace(valid, aux={}), params, BUDGET)
    move = train.aux["move"].copy()
    move[7] = np.nan
    broken = dataclasses.replace(train, aux={"move": move})
    with pytest.raises(DataError, match=r"not finite in 1 rows \(first: row 7\)"):
        RewardFamily().fit(broken, valid, params, BUDGET)


def test_floor_above_cap_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"reward parameter 'move_cap'=0.1: .*move_floor"):
        preset_params("reward", overrides={"move_cap": 0.1})

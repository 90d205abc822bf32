"""Deflated Sharpe and PBO: the paper's numerical example, a Monte Carlo check of SR0, hand-worked
CSCV matrices, and synthetic populations with a known answer (pure noise, one planted winner)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from alphafactory.backtest.population import (
    deflated_sharpe,
    expected_max_sharpe,
    pbo,
    probabilistic_sharpe,
    sharpe_per_column,
    sharpe_probability,
)
from alphafactory.errors import DataError

LN2 = math.log(2.0)


def test_paper_numerical_example() -> None:
    # Bailey & López de Prado (2014), numerical example as remembered (not re-read here):
    # N = 100 trials, V[SR] = 1/2 annualised, T = 1250 daily observations (250 a year),
    # skew -3, kurtosis 10, best annualised SR 2.5 -> SR0 ~ 0.1132 per day, DSR ~ 0.9004.
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = sharpe_probability(2.5 / math.sqrt(250), sr0, 1250, skew=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_expected_max_sharpe_against_monte_carlo() -> None:
    # E[max] of N iid Sharpe estimates (T = 100 normal returns each, 2000 repetitions).
    # Tolerance 2 %: the formula approximates E[max of N normals] to ~0.2 % at N = 50-100
    # (and ~1.5 % at N = 10); the Monte Carlo standard error is ~0.5 %.
    rng = np.random.default_rng(42)
    checked = 0
    for n_trials in (50, 100):
        chunks = []
        for _ in range(4):  # 4 x 500 repetitions, to keep memory small
            draws = rng.standard_normal((500, 100, n_trials))
            chunks.append(draws.mean(axis=1) / draws.std(axis=1, ddof=1))
        sharpes = np.concatenate(chunks)
        simulated = float(sharpes.max(axis=1).mean())
        variance = float(sharpes.var(axis=1, ddof=1).mean())
        assert expected_max_sharpe(n_trials, variance) == pytest.approx(simulated, rel=0.02)
        checked += 1
    assert checked == 2


def test_single_trial_is_the_probabilistic_sharpe() -> None:
    returns = np.random.default_rng(3).standard_t(5, 500) * 0.01 + 0.001
    result = deflated_sharpe(returns, n_trials=1, trial_sharpes_variance=0.3)
    assert result.expected_max_sharpe == 0.0
    assert result.probability == pytest.approx(probabilistic_sharpe(returns), rel=1e-12)
    assert result.n_obs == 500 and result.n_trials == 1


def test_probabilistic_sharpe_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(5)
    checked = 0
    for benchmark in (0.0, 0.02, 0.1):
        returns = rng.lognormal(0.0, 0.5, 800) - 1.0  # skewed, fat-tailed
        sr = returns.mean() / returns.std(ddof=1)
        centred = returns - returns.mean()
        skew = np.mean(centred**3) / np.mean(centred**2) ** 1.5
        kurt = np.mean(centred**4) / np.mean(centred**2) ** 2
        z = (sr - benchmark) * math.sqrt(799) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
        assert probabilistic_sharpe(returns, benchmark) == pytest.approx(
            stats.norm.cdf(z), rel=1e-9
        )
        result = deflated_sharpe(returns, 1, 0.0)
        assert (result.sharpe, result.skew, result.kurtosis) == pytest.approx(
            (sr, skew, kurt), rel=1e-9
        )
        checked += 1
    assert checked == 3


def test_constant_returns_give_nan_not_a_crash() -> None:
    assert math.isnan(probabilistic_sharpe(np.zeros(100)))
    assert math.isnan(deflated_sharpe(np.full(100, 0.01), 10, 0.01).probability)
    with pytest.raises(DataError, match="n_trials"):
        deflated_sharpe(np.arange(10.0), 0, 0.01)


def test_sharpe_per_column_matches_numpy() -> None:
    matrix = np.random.default_rng(1).normal(0.001, 0.02, (300, 6))
    expected = matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)
    np.testing.assert_allclose(sharpe_per_column(matrix), expected, rtol=1e-9)
    degenerate = sharpe_per_column(np.column_stack([np.zeros(5), np.full(5, 0.1), np.arange(5)]))
    assert np.isnan(degenerate[:2]).all() and np.isfinite(degenerate[2])


def test_pbo_hand_worked_with_mean_metric() -> None:
    # S = 4 blocks of one row, N = 2, metric = column mean. IS blocks -> IS means (col0, col1),
    # IS best; OOS means, best's OOS rank (average on ties), w = rank / 3, logit:
    # {0,1}: (.5, 1)   col1; OOS {2,3} (2.5, 3)   rank 2   w 2/3  +ln2
    # {0,2}: (2, .5)   col0; OOS {1,3} (1, 3.5)   rank 1   w 1/3  -ln2
    # {0,3}: (1.5, 2.5) col1; OOS {1,2} (1.5, 1.5) rank 1.5 w 1/2  0
    # {1,2}: (1.5, 1.5) tie -> col0; OOS {0,3} (1.5, 2.5) rank 1  -ln2
    # {1,3}: (1, 3.5)  col1; OOS {0,2} (2, .5)    rank 1         -ln2
    # {2,3}: (2.5, 3)  col1; OOS {0,1} (.5, 1)    rank 2         +ln2
    # logit <= 0 in 4 of 6 -> PBO 2/3.
    matrix = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [2.0, 5.0]])
    result = pbo(matrix, n_splits=4, metric=lambda m: m.mean(axis=0))
    np.testing.assert_allclose(result.logits, [LN2, -LN2, 0.0, -LN2, -LN2, LN2], atol=1e-12)
    assert result.pbo == pytest.approx(2 / 3)
    assert (result.n_combinations, result.n_splits, result.n_strategies) == (6, 4, 2)


def test_pbo_hand_worked_with_default_sharpe() -> None:
    # S = 2 blocks of two rows; the Sharpe of [a, b] is mean / (|a - b| / sqrt 2).
    # Dominant: col0 [2,3 | 3,4] -> 3.54 | 4.95, col1 [1,3 | 0,2] -> 1.41 | 0.71: col0 wins
    # in-sample and out-of-sample in both combinations: rank 2, w 2/3, logit +ln2, PBO 0.
    dominant = np.array([[2.0, 1.0], [3.0, 3.0], [3.0, 0.0], [4.0, 2.0]])
    result = pbo(dominant, n_splits=2)
    np.testing.assert_allclose(result.logits, [LN2, LN2])
    assert result.pbo == 0.0
    # Reversed: col0 [1,3 | 1,2] -> 1.41 | 2.12, col1 [2,3 | 0,2] -> 3.54 | 0.71: the
    # in-sample best is the out-of-sample worst both times: logit -ln2, PBO 1.
    reversed_ = np.array([[1.0, 2.0], [3.0, 3.0], [1.0, 0.0], [2.0, 2.0]])
    result = pbo(reversed_, n_splits=2)
    np.testing.assert_allclose(result.logits, [-LN2, -LN2])
    assert result.pbo == 1.0


def test_pbo_fast_default_equals_the_generic_metric_path() -> None:
    matrix = np.random.default_rng(11).normal(0.0, 1.0, (203, 7))
    fast = pbo(matrix, n_splits=8)
    generic = pbo(matrix, n_splits=8, metric=sharpe_per_column)
    assert fast.n_combinations == 70
    np.testing.assert_allclose(fast.logits, generic.logits, rtol=1e-12)


def _best_column_dsr(matrix: np.ndarray) -> tuple[int, float]:
    sharpes = sharpe_per_column(matrix)
    best = int(np.argmax(sharpes))
    result = deflated_sharpe(matrix[:, best], matrix.shape[1], float(np.var(sharpes, ddof=1)))
    return best, result.probability


def test_pure_noise_has_pbo_near_half_and_no_significant_dsr() -> None:
    scores = []
    for seed in range(10):
        matrix = np.random.default_rng(seed).standard_normal((1000, 50))
        result = pbo(matrix, n_splits=16)
        assert result.n_combinations == 12870 and result.logits.shape == (12870,)
        _, probability = _best_column_dsr(matrix)
        assert probability < 0.95, seed
        scores.append(result.pbo)
    assert len(scores) == 10
    assert 0.35 < float(np.mean(scores)) < 0.65


def test_planted_winner_has_low_pbo_and_significant_dsr() -> None:
    checked = 0
    for seed in range(5):
        matrix = np.random.default_rng(seed).standard_normal((4000, 50))
        matrix[:, 17] += 0.1  # a real edge: mean 0.1 std per period
        assert pbo(matrix, n_splits=16).pbo < 0.1, seed
        best, probability = _best_column_dsr(matrix)
        assert best == 17 and probability > 0.95, seed
        checked += 1
    assert checked == 5


@pytest.mark.parametrize(
    ("shape", "n_splits", "needle"),
    [
        ((100, 1), 4, "at least 2 strategies"),
        ((100, 3), 5, "even"),
        ((100, 3), 0, "even"),
        ((6, 3), 8, "at least n_splits=8 rows"),
        ((100,), 4, "T x N"),
    ],
)
def test_pbo_rejects_bad_input(shape: tuple[int, ...], n_splits: int, needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        pbo(np.zeros(shape), n_splits=n_splits)

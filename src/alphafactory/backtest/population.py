"""Population-aware scores for a strategy picked from many trials: the deflated Sharpe ratio
(Bailey & López de Prado 2014) and the probability of backtest overfitting by combinatorially
symmetric cross-validation (Bailey, Borwein, López de Prado & Zhu 2015)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from alphafactory.errors import DataError

#: Euler–Mascheroni constant.
EULER_GAMMA = 0.5772156649015329

#: A per-column score of a (rows × strategies) block of returns; higher is better.
Metric = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of one return series.

    Attributes:
        sharpe: per-period Sharpe ratio, mean / std(ddof=1), not annualised.
        expected_max_sharpe: SR0, the expected maximum per-period Sharpe of `n_trials`
            unskilled trials; 0 for a single trial.
        probability: the DSR, P(true Sharpe > SR0), in [0, 1].
        n_trials: number of trials N the strategy was chosen from.
        n_obs: number of returns T.
        skew: sample skewness (biased estimator, scipy's default).
        kurtosis: sample kurtosis, non-excess (3 for a normal distribution).
    """

    sharpe: float
    expected_max_sharpe: float
    probability: float
    n_trials: int
    n_obs: int
    skew: float
    kurtosis: float

    def to_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class PBOResult:
    """Probability of backtest overfitting and the logit of every CSCV combination.

    Attributes:
        pbo: share of combinations whose in-sample best is at or below the out-of-sample
            median (logit <= 0).
        logits: ln(w / (1 - w)) per combination, w = out-of-sample rank / (N + 1), in the
            order of `itertools.combinations(range(n_splits), n_splits // 2)` (in-sample blocks).
    """

    pbo: float
    logits: np.ndarray
    n_combinations: int
    n_splits: int
    n_strategies: int


def expected_max_sharpe(n_trials: int, trial_sharpes_variance: float) -> float:
    """SR0: the expected maximum Sharpe ratio of `n_trials` trials with no skill.

    Args:
        n_trials: number of independent trials N (>= 1); N = 1 gives 0.
        trial_sharpes_variance: variance V of the trials' Sharpe ratios (same period as the
            Sharpe the result is compared with).

    Returns:
        sqrt(V) * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e))).
    """
    if n_trials < 1:
        raise DataError(f"n_trials must be >= 1, got {n_trials}")
    if not (math.isfinite(trial_sharpes_variance) and trial_sharpes_variance >= 0):
        raise DataError(f"trial_sharpes_variance must be >= 0, got {trial_sharpes_variance}")
    if n_trials == 1:
        return 0.0
    quantiles = (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n_trials) + (
        EULER_GAMMA * stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    )
    return math.sqrt(trial_sharpes_variance) * float(quantiles)


def sharpe_probability(
    sharpe: float, benchmark_sharpe: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """P(true Sharpe > benchmark) from an estimated per-period Sharpe and the sample moments.

    Φ((SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR²)), kurtosis non-excess.
    NaN when the Sharpe is NaN or the variance term is not positive.
    """
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not (math.isfinite(sharpe) and variance > 0):
        return math.nan
    z = (sharpe - benchmark_sharpe) * math.sqrt(n_obs - 1) / math.sqrt(variance)
    return float(stats.norm.cdf(z))


def deflated_sharpe(
    returns: np.ndarray, n_trials: int, trial_sharpes_variance: float
) -> DeflatedSharpe:
    """Deflated Sharpe ratio of `returns`, the best of `n_trials` tried strategies.

    Args:
        returns: per-period returns of the chosen strategy (finite, at least 2).
        n_trials: number of independent trials the strategy was chosen from.
        trial_sharpes_variance: variance of the trials' per-period Sharpe ratios.

    Returns:
        The `DeflatedSharpe`; with n_trials = 1 its probability is the plain PSR against 0.
        A constant series has NaN sharpe, moments and probability.
    """
    series = _returns(returns)
    sr0 = expected_max_sharpe(n_trials, trial_sharpes_variance)
    sharpe = float(sharpe_per_column(series[:, None])[0])
    if math.isnan(sharpe):
        skew = kurt = math.nan
    else:
        skew = float(stats.skew(series))
        kurt = float(stats.kurtosis(series, fisher=False))
    return DeflatedSharpe(
        sharpe=sharpe,
        expected_max_sharpe=sr0,
        probability=sharpe_probability(sharpe, sr0, series.size, skew, kurt),
        n_trials=n_trials,
        n_obs=int(series.size),
        skew=skew,
        kurtosis=kurt,
    )


def probabilistic_sharpe(returns: np.ndarray, benchmark_sharpe: float = 0.0) -> float:
    """Probabilistic Sharpe ratio: P(true per-period Sharpe > `benchmark_sharpe`).

    Args:
        returns: per-period returns (finite, at least 2).
        benchmark_sharpe: the per-period Sharpe to beat.

    Returns:
        The PSR in [0, 1]; NaN for a constant series.
    """
    series = _returns(returns)
    sharpe = float(sharpe_per_column(series[:, None])[0])
    if math.isnan(sharpe):
        return math.nan
    skew = float(stats.skew(series))
    kurt = float(stats.kurtosis(series, fisher=False))
    return sharpe_probability(sharpe, benchmark_sharpe, series.size, skew, kurt)


def sharpe_per_column(matrix: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio, mean / std(ddof=1), of each column of a (rows × N) matrix.

    NaN for a column with fewer than 2 rows or a (numerically) constant one: variance below
    1e-12 of its mean square.
    """
    n = matrix.shape[0]
    return _sharpe_from_sums(
        np.full(matrix.shape[1], float(n)), matrix.sum(axis=0), (matrix**2).sum(axis=0)
    )


def pbo(performance: np.ndarray, n_splits: int = 16, metric: Metric | None = None) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    The rows are cut into `n_splits` contiguous blocks (`np.array_split`: sizes differ by at
    most one row). Each choice of half the blocks is in-sample once, the other half
    out-of-sample; the column with the best in-sample metric gets its out-of-sample relative
    rank w = rank / (N + 1) and logit ln(w / (1 - w)).

    Ties, deterministic: the in-sample best among equal scores is the lowest column index; in
    the out-of-sample ranking tied columns share the average of their ranks (rank 1 = worst).
    A NaN score ranks below every number.

    Args:
        performance: T × N matrix, rows time-ordered per-period returns, columns strategies.
        n_splits: number of blocks S, even, >= 2 and <= T.
        metric: per-column score of a block of rows; default `sharpe_per_column` (computed
            from per-block sums, equal to calling it on the rows).

    Returns:
        The `PBOResult`.

    Raises:
        DataError: not a 2-D finite matrix, N < 2, S odd or < 2, or T < S.
    """
    matrix = np.asarray(performance, dtype=np.float64)
    if matrix.ndim != 2:
        raise DataError(f"performance must be a T x N matrix, got shape {matrix.shape}")
    n_rows, n_strategies = matrix.shape
    if n_strategies < 2:
        raise DataError(f"pbo needs at least 2 strategies (columns), got {n_strategies}")
    if n_splits < 2 or n_splits % 2:
        raise DataError(f"n_splits must be even and >= 2, got {n_splits}")
    if n_rows < n_splits:
        raise DataError(f"pbo needs at least n_splits={n_splits} rows, got {n_rows}")
    if not np.isfinite(matrix).all():
        raise DataError("performance has non-finite values: fill or drop them first")

    blocks = np.array_split(np.arange(n_rows), n_splits)
    combos = list(itertools.combinations(range(n_splits), n_splits // 2))
    in_sample = np.zeros((len(combos), n_splits), dtype=bool)
    for row, chosen in enumerate(combos):
        in_sample[row, list(chosen)] = True
    if metric is None:
        is_scores, oos_scores = _sharpe_scores(matrix, blocks, in_sample)
    else:
        is_scores, oos_scores = _metric_scores(matrix, blocks, in_sample, metric)

    is_scores = np.where(np.isnan(is_scores), -np.inf, is_scores)
    oos_scores = np.where(np.isnan(oos_scores), -np.inf, oos_scores)
    best = np.argmax(is_scores, axis=1)
    chosen_oos = oos_scores[np.arange(len(combos)), best][:, None]
    below = (oos_scores < chosen_oos).sum(axis=1)
    equal = (oos_scores == chosen_oos).sum(axis=1)
    rank = below + (equal + 1) / 2.0
    omega = rank / (n_strategies + 1)
    logits = np.log(omega / (1.0 - omega))
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        logits=logits,
        n_combinations=len(combos),
        n_splits=n_splits,
        n_strategies=n_strategies,
    )


def _sharpe_scores(
    matrix: np.ndarray, blocks: list[np.ndarray], in_sample: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """In- and out-of-sample Sharpe of every combination (rows) and column, from block sums."""
    counts = np.array([float(len(b)) for b in blocks])
    sums = np.stack([matrix[b].sum(axis=0) for b in blocks])
    squares = np.stack([(matrix[b] ** 2).sum(axis=0) for b in blocks])
    scores = []
    for mask in (in_sample, ~in_sample):
        weights = mask.astype(np.float64)
        n = weights @ counts
        scores.append(_sharpe_from_sums(n[:, None], weights @ sums, weights @ squares))
    return scores[0], scores[1]


def _metric_scores(
    matrix: np.ndarray, blocks: list[np.ndarray], in_sample: np.ndarray, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    scores: list[list[np.ndarray]] = [[], []]
    for mask in in_sample:
        for side, part in enumerate((mask, ~mask)):
            rows = np.concatenate([blocks[i] for i in np.flatnonzero(part)])
            scores[side].append(np.asarray(metric(matrix[rows]), dtype=np.float64))
    return np.stack(scores[0]), np.stack(scores[1])


def _sharpe_from_sums(n: np.ndarray, total: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """mean / std(ddof=1) from count, sum and sum of squares; NaN where degenerate."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        variance = (squares - total * mean) / (n - 1)
        degenerate = (n < 2) | ~(variance > 1e-12 * squares / n)
        sharpe = mean / np.sqrt(np.where(degenerate, 1.0, variance))
    return np.where(degenerate, np.nan, sharpe)


def _returns(values: np.ndarray) -> np.ndarray:
    series = np.asarray(values, dtype=np.float64)
    if series.ndim != 1 or series.size < 2:
        raise DataError(f"returns must be one-dimensional with >= 2 values, got {series.shape}")
    if not np.isfinite(series).all():
        raise DataError("returns have non-finite values: fill or drop them first")
    return series

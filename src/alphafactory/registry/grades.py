"""Performance grades (S … F) from a model's percentile in its cohort, capped or lifted by the
model type's absolute benchmarks and capped by a poor walk-forward backtest, the registry keys
of that backtest, and the display-name convention that carries the grade."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from alphafactory.errors import ConfigError
from alphafactory.registry.versioning import SemVer

logger = logging.getLogger(__name__)

GRADES: tuple[str, ...] = ("S", "A+", "A", "A-", "B+", "B", "B-", "C", "D", "F")
"""Grades from best to worst."""

GRADE_CUTS: tuple[tuple[float, str], ...] = (
    (95.0, "S"),
    (90.0, "A+"),
    (80.0, "A"),
    (70.0, "A-"),
    (60.0, "B+"),
    (50.0, "B"),
    (40.0, "B-"),
    (30.0, "C"),
    (20.0, "D"),
)
"""(lowest percentile, grade): a percentile at or above the cut earns the grade; below 20 is F."""

CAP_BELOW_POOR = "C"
"""A model at or worse than its type's ``poor`` value cannot grade above this."""
FLOOR_AT_EXCELLENT = "A-"
"""A model at or better than its type's ``excellent`` value cannot grade below this."""

LOWER_IS_BETTER = frozenset({"logloss", "loss", "max_drawdown", "mae", "rmse", "brier"})


@dataclass(frozen=True)
class Benchmark:
    """Absolute bounds for one metric of one model type; direction follows from their order."""

    poor: float
    excellent: float

    @property
    def higher_is_better(self) -> bool:
        return self.excellent > self.poor

    def is_poor(self, value: float) -> bool:
        return value <= self.poor if self.higher_is_better else value >= self.poor

    def is_excellent(self, value: float) -> bool:
        return value >= self.excellent if self.higher_is_better else value <= self.excellent


# Three-class breakout/reversion/neither labels: a random classifier scores a macro AP near
# the class share (~0.33) and an AUC of 0.5, a log loss of ln 3 ~ 1.10.
_CLASSIFIER_BENCHMARKS: dict[str, Benchmark] = {
    "ap": Benchmark(poor=0.40, excellent=0.65),
    "auc": Benchmark(poor=0.55, excellent=0.75),
    "logloss": Benchmark(poor=1.05, excellent=0.80),
    "accuracy": Benchmark(poor=0.40, excellent=0.65),
}

# A linear model on the same features ranks events less sharply than trees; an AP that is
# poor for a booster is ordinary for it.
_LINEAR_BENCHMARKS: dict[str, Benchmark] = {
    **_CLASSIFIER_BENCHMARKS,
    "ap": Benchmark(poor=0.37, excellent=0.60),
}

# The neural families (torch) on the same features: between the linear model and the trees.
_NEURAL_BENCHMARKS: dict[str, Benchmark] = {
    **_CLASSIFIER_BENCHMARKS,
    "ap": Benchmark(poor=0.38, excellent=0.62),
}

BENCHMARKS: dict[str, Mapping[str, Benchmark]] = {
    "default": _CLASSIFIER_BENCHMARKS,
    "lightgbm": _CLASSIFIER_BENCHMARKS,
    "xgboost": _CLASSIFIER_BENCHMARKS,
    "reward": _CLASSIFIER_BENCHMARKS,
    "quantile_lightgbm": _CLASSIFIER_BENCHMARKS,
    "ngboost": _CLASSIFIER_BENCHMARKS,
    "ensemble": _CLASSIFIER_BENCHMARKS,
    "meta": _CLASSIFIER_BENCHMARKS,
    "ftrl": _LINEAR_BENCHMARKS,
    **dict.fromkeys(("mlp", "cnn1d", "lstm", "transformer"), _NEURAL_BENCHMARKS),
}
"""Benchmarks per model type; a type without an entry uses ``"default"``."""

KEY_METRIC = "ap"
"""The metric a cohort is graded on unless the caller names another."""

# Registry keys of a model's walk-forward backtest over the test period: metrics and tags the
# publish step writes (alphafactory.stages.publish), read by the backtest cap below and by the
# promotion gates (pipelines/promote.py).
METRIC_BACKTEST_SHARPE = "backtest_sharpe"
METRIC_BACKTEST_MAX_DRAWDOWN = "backtest_max_drawdown"
METRIC_BACKTEST_TRADES = "backtest_trades"
METRIC_BACKTEST_TOTAL_RETURN = "backtest_total_return"
METRIC_DEFLATED_SHARPE = "deflated_sharpe"
"""The deflated Sharpe ratio's probability (that the Sharpe beats the trials' expected best)."""
METRIC_PBO = "pbo"
"""Probability of backtest overfitting of the group's population; absent when not computed."""
TAG_BACKTEST_TRIALS = "backtest_trials"
TAG_DEFLATED_SHARPE_PASS = "deflated_sharpe_pass"

# The users' grading of trading agents: an annualised Sharpe of 2.0 is excellent and 0.5 poor,
# a maximum drawdown of 5 % excellent and 30 % poor.
BACKTEST_SHARPE = Benchmark(poor=0.5, excellent=2.0)
BACKTEST_MAX_DRAWDOWN = Benchmark(poor=0.30, excellent=0.05)


def check_grade(grade: str) -> str:
    """Return ``grade`` if it is one of GRADES, else raise ConfigError."""
    if grade not in GRADES:
        raise ConfigError(f"grade {grade!r} is unknown: use one of {', '.join(GRADES)}")
    return grade


def grade_at_least(grade: str, minimum: str) -> bool:
    """True when ``grade`` is ``minimum`` or better (``grade_at_least("A", "B+")`` is True)."""
    return GRADES.index(check_grade(grade)) <= GRADES.index(check_grade(minimum))


def grade_from_percentile(percentile: float) -> str:
    """Map a percentile in [0, 100] to a grade by GRADE_CUTS."""
    for cut, grade in GRADE_CUTS:
        if percentile >= cut:
            return grade
    return "F"


def benchmark_for(model_type: str, metric: str) -> Benchmark | None:
    """The benchmark of ``metric`` for ``model_type`` (falling back to the default table)."""
    table = BENCHMARKS.get(model_type)
    if table is None:
        logger.debug("no benchmarks for model type %s; using the default table", model_type)
        table = BENCHMARKS["default"]
    return table.get(metric)


def apply_benchmark(grade: str, value: float, benchmark: Benchmark | None) -> str:
    """Cap a grade at C for a poor value and lift it to A- for an excellent one."""
    if benchmark is None:
        return grade
    if benchmark.is_poor(value) and not grade_at_least(CAP_BELOW_POOR, grade):
        return CAP_BELOW_POOR
    if benchmark.is_excellent(value) and not grade_at_least(grade, FLOOR_AT_EXCELLENT):
        return FLOOR_AT_EXCELLENT
    return grade


def cap_by_backtest(grade: str, metrics: Mapping[str, float]) -> str:
    """Cap a grade at C (CAP_BELOW_POOR) when the model's backtest Sharpe or max drawdown is
    poor (BACKTEST_SHARPE, BACKTEST_MAX_DRAWDOWN).

    Only the cap acts: the grade stays a ranking of test-period skill, so an excellent
    backtest lifts nothing. A model without backtest metrics, or with a NaN figure (a
    backtest without enough bars or trades to measure it), is not capped by that figure; the
    promotion gates refuse such champions.
    """
    sharpe = metrics.get(METRIC_BACKTEST_SHARPE, math.nan)
    drawdown = metrics.get(METRIC_BACKTEST_MAX_DRAWDOWN, math.nan)
    poor = BACKTEST_SHARPE.is_poor(sharpe) or BACKTEST_MAX_DRAWDOWN.is_poor(drawdown)
    if poor and not grade_at_least(CAP_BELOW_POOR, grade):
        return CAP_BELOW_POOR
    return grade


def cohort_percentiles(scores: Mapping[str, float]) -> dict[str, float]:
    """Percentile of each score in its cohort (mean of strict and weak rank, higher is better).

    A lone model sits at the 50th percentile; the best of ten distinct scores at the 95th.
    """
    values = list(scores.values())
    count = len(values)
    percentiles: dict[str, float] = {}
    for key, score in scores.items():
        below = sum(other < score for other in values)
        at_or_below = sum(other <= score for other in values)
        percentiles[key] = 100.0 * (below + at_or_below) / (2 * count)
    return percentiles


def grade_cohort(
    metrics: Mapping[str, float], model_type: str, *, metric: str = KEY_METRIC
) -> dict[str, str]:
    """Grade every model of a cohort on one metric.

    Args:
        metrics: Model id -> value of ``metric`` for each model in the cohort (models of one
            type competing for the same group or window).
        model_type: The family, e.g. ``"lightgbm"``; selects the benchmarks.
        metric: The metric the values measure; lower is better for losses and drawdowns.

    Returns:
        Model id -> grade. A NaN metric grades F.
    """
    benchmark = benchmark_for(model_type, metric)
    higher_is_better = (
        benchmark.higher_is_better if benchmark is not None else metric not in LOWER_IS_BETTER
    )
    finite = {key: value for key, value in metrics.items() if not math.isnan(value)}
    oriented = {key: value if higher_is_better else -value for key, value in finite.items()}
    percentiles = cohort_percentiles(oriented)
    grades = {key: "F" for key in metrics}
    for key, percentile in percentiles.items():
        grades[key] = apply_benchmark(grade_from_percentile(percentile), finite[key], benchmark)
    return grades


def model_name(
    model_type: str, version: SemVer | str, grade: str, metric: str, value: float
) -> str:
    """Display name ``{model_type}_{version}_grade_{grade}_{metric}_{value:.4f}``.

    Example:
        >>> model_name("lightgbm", "1.0.0", "A", "ap", 0.61234)
        'lightgbm_1.0.0_grade_A_ap_0.6123'
    """
    return f"{model_type}_{version}_grade_{check_grade(grade)}_{metric}_{value:.4f}"

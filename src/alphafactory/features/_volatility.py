"""Volatility features: realised and range-based estimators, vol-of-vol, return moments."""

from __future__ import annotations

import polars as pl

from alphafactory.features._base import (
    CLOSE,
    HIGH,
    LN2,
    LOW,
    OPEN,
    FeatureScale,
    finite_or_nan,
    log_return,
    safe_div,
    safe_log,
)

_VOL_OF_VOL_BASE = 5


def _log_ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return safe_log(safe_div(numerator, denominator))


def _parkinson_term() -> pl.Expr:
    return _log_ratio(HIGH, LOW).pow(2) / (4.0 * LN2)


def _garman_klass_term() -> pl.Expr:
    return 0.5 * _log_ratio(HIGH, LOW).pow(2) - (2.0 * LN2 - 1.0) * _log_ratio(CLOSE, OPEN).pow(2)


def _rogers_satchell_term() -> pl.Expr:
    return _log_ratio(HIGH, CLOSE) * _log_ratio(HIGH, OPEN) + _log_ratio(LOW, CLOSE) * _log_ratio(
        LOW, OPEN
    )


def _root_mean(non_negative: pl.Expr, window: int) -> pl.Expr:
    """sqrt of a rolling mean of non-negative terms; the clip undoes online-sum round-off."""
    return non_negative.rolling_mean(window).clip(lower_bound=0.0).sqrt()


def realised_vol(window: int) -> pl.Expr:
    """Sample standard deviation of close-to-close log returns over ``window`` bars."""
    return log_return().rolling_std(window)


def _estimators(window: int) -> list[pl.Expr]:
    w = window
    returns = log_return()
    return [
        realised_vol(w).alias(f"realised_vol_{w}"),
        _root_mean(_parkinson_term(), w).alias(f"parkinson_{w}"),
        _garman_klass_term().rolling_mean(w).sqrt().alias(f"garman_klass_{w}"),
        _root_mean(_rogers_satchell_term(), w).alias(f"rogers_satchell_{w}"),
        returns.pow(2).ewm_mean(span=w, adjust=False, min_samples=w).sqrt().alias(f"ewm_vol_{w}"),
        _root_mean(returns.clip(upper_bound=0.0).pow(2), w).alias(f"downside_vol_{w}"),
        _root_mean(returns.clip(lower_bound=0.0).pow(2), w).alias(f"upside_vol_{w}"),
        returns.abs().rolling_mean(w).alias(f"mean_abs_return_{w}"),
    ]


def _moments(window: int) -> list[pl.Expr]:
    w = window
    returns = log_return()
    exprs = [
        safe_div(returns - returns.rolling_mean(w), returns.rolling_std(w)).alias(f"return_z_{w}"),
        safe_div(returns.rolling_sum(w), returns.rolling_std(w) * w**0.5).alias(
            f"return_sharpe_{w}"
        ),
    ]
    # Skew and kurtosis divide by a power of the variance inside.
    if w >= 3:
        exprs.append(finite_or_nan(returns.rolling_skew(w)).alias(f"return_skew_{w}"))
    if w >= 4:
        exprs.append(finite_or_nan(returns.rolling_kurtosis(w)).alias(f"return_kurtosis_{w}"))
    return exprs


def _vol_of_vol(window: int) -> list[pl.Expr]:
    w = window
    base_vol = realised_vol(_VOL_OF_VOL_BASE)
    return [
        safe_div(base_vol.rolling_std(w), base_vol.rolling_mean(w)).alias(f"vol_of_vol_{w}"),
        safe_div(realised_vol(w), realised_vol(w).shift(w)).alias(f"vol_change_{w}"),
    ]


def _ratios(windows: tuple[int, ...]) -> list[pl.Expr]:
    exprs = []
    for short, long in zip(windows, windows[1:], strict=False):
        exprs.append(
            safe_div(realised_vol(short), realised_vol(long)).alias(f"vol_ratio_{short}_{long}")
        )
        exprs.append(
            safe_div(_parkinson_term().rolling_mean(short), _parkinson_term().rolling_mean(long))
            .sqrt()
            .alias(f"parkinson_ratio_{short}_{long}")
        )
    return exprs


class VolatilityFeatures:
    """Realised, Parkinson, Garman-Klass, Rogers-Satchell vol, vol-of-vol, skew, kurtosis."""

    name = "volatility"

    def expressions(self, scale: FeatureScale) -> list[pl.Expr]:
        exprs: list[pl.Expr] = []
        for window in scale.windows:
            exprs.extend(_estimators(window))
            exprs.extend(_moments(window))
            exprs.extend(_vol_of_vol(window))
        exprs.extend(_ratios(scale.windows))
        return exprs

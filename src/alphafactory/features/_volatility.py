"""Volatility features: realised and range-based estimators, vol-of-vol, return moments."""

from __future__ import annotations

import polars as pl

from alphafactory.features._base import CLOSE, HIGH, LN2, LOW, OPEN, FeatureScale, log_return

_VOL_OF_VOL_BASE = 5


def _parkinson_term() -> pl.Expr:
    return (HIGH / LOW).log().pow(2) / (4.0 * LN2)


def _garman_klass_term() -> pl.Expr:
    return 0.5 * (HIGH / LOW).log().pow(2) - (2.0 * LN2 - 1.0) * (CLOSE / OPEN).log().pow(2)


def _rogers_satchell_term() -> pl.Expr:
    return (HIGH / CLOSE).log() * (HIGH / OPEN).log() + (LOW / CLOSE).log() * (LOW / OPEN).log()


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
        ((returns - returns.rolling_mean(w)) / returns.rolling_std(w)).alias(f"return_z_{w}"),
        (returns.rolling_sum(w) / (returns.rolling_std(w) * w**0.5)).alias(f"return_sharpe_{w}"),
    ]
    if w >= 3:
        exprs.append(returns.rolling_skew(w).alias(f"return_skew_{w}"))
    if w >= 4:
        exprs.append(returns.rolling_kurtosis(w).alias(f"return_kurtosis_{w}"))
    return exprs


def _vol_of_vol(window: int) -> list[pl.Expr]:
    w = window
    base_vol = realised_vol(_VOL_OF_VOL_BASE)
    return [
        (base_vol.rolling_std(w) / base_vol.rolling_mean(w)).alias(f"vol_of_vol_{w}"),
        (realised_vol(w) / realised_vol(w).shift(w)).alias(f"vol_change_{w}"),
    ]


def _ratios(windows: tuple[int, ...]) -> list[pl.Expr]:
    exprs = []
    for short, long in zip(windows, windows[1:], strict=False):
        exprs.append((realised_vol(short) / realised_vol(long)).alias(f"vol_ratio_{short}_{long}"))
        exprs.append(
            (_parkinson_term().rolling_mean(short) / _parkinson_term().rolling_mean(long))
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

"""Candlestick features: body/wick geometry, gaps, classic patterns and bar runs."""

from __future__ import annotations

import polars as pl

from alphafactory.features._base import (
    CLOSE,
    HIGH,
    LOW,
    OPEN,
    FeatureScale,
    as_float,
    run_length,
    safe_div,
)

_DOJI_BODY_SHARE = 0.1
_MARUBOZU_BODY_SHARE = 0.9


def _bar_range() -> pl.Expr:
    return HIGH - LOW


def _body() -> pl.Expr:
    return CLOSE - OPEN


def _upper_wick() -> pl.Expr:
    return HIGH - pl.max_horizontal(OPEN, CLOSE)


def _lower_wick() -> pl.Expr:
    return pl.min_horizontal(OPEN, CLOSE) - LOW


def _is_doji() -> pl.Expr:
    return _body().abs() <= _DOJI_BODY_SHARE * _bar_range()


def _is_up_bar() -> pl.Expr:
    return CLOSE > OPEN


def _is_down_bar() -> pl.Expr:
    return CLOSE < OPEN


def _geometry() -> list[pl.Expr]:
    bar_range = _bar_range()
    abs_body = _body().abs()
    return [
        safe_div(_body(), bar_range).alias("body_ratio"),
        safe_div(abs_body, bar_range).alias("abs_body_ratio"),
        safe_div(_upper_wick(), bar_range).alias("upper_wick_ratio"),
        safe_div(_lower_wick(), bar_range).alias("lower_wick_ratio"),
        safe_div(_upper_wick() - _lower_wick(), bar_range).alias("wick_imbalance"),
        safe_div(CLOSE - LOW, bar_range).alias("close_position"),
        safe_div(bar_range, CLOSE).alias("range_to_close"),
        safe_div(_body(), OPEN).alias("body_return"),
        safe_div(bar_range, bar_range.shift(1)).alias("range_change"),
        safe_div(abs_body, abs_body.shift(1)).alias("body_change"),
    ]


def _gaps() -> list[pl.Expr]:
    prev_close = CLOSE.shift(1)
    return [
        (safe_div(OPEN, prev_close) - 1.0).alias("gap"),
        as_float(HIGH.shift(1) < OPEN).alias("gap_up"),
        as_float(LOW.shift(1) > OPEN).alias("gap_down"),
    ]


def _patterns() -> list[pl.Expr]:
    body = _body()
    abs_body = body.abs()
    prev_open, prev_close = OPEN.shift(1), CLOSE.shift(1)
    prev_up, prev_down = prev_close > prev_open, prev_close < prev_open
    small_upper = _upper_wick() <= abs_body
    small_lower = _lower_wick() <= abs_body
    ups = _is_up_bar()
    downs = _is_down_bar()
    three_up = ups & ups.shift(1) & ups.shift(2) & (CLOSE.shift(1) < CLOSE)
    three_down = downs & downs.shift(1) & downs.shift(2) & (CLOSE.shift(1) > CLOSE)
    return [
        as_float(_is_doji()).alias("doji"),
        as_float((_lower_wick() >= 2.0 * abs_body) & small_upper).alias("hammer"),
        as_float((_upper_wick() >= 2.0 * abs_body) & small_lower).alias("shooting_star"),
        as_float(abs_body >= _MARUBOZU_BODY_SHARE * _bar_range()).alias("marubozu"),
        as_float(prev_down & ups & (prev_close >= OPEN) & (prev_open <= CLOSE)).alias(
            "bullish_engulfing"
        ),
        as_float(prev_up & downs & (prev_close <= OPEN) & (prev_open >= CLOSE)).alias(
            "bearish_engulfing"
        ),
        as_float((HIGH.shift(1) >= HIGH) & (LOW.shift(1) <= LOW)).alias("inside_bar"),
        as_float((HIGH.shift(1) < HIGH) & (LOW.shift(1) > LOW)).alias("outside_bar"),
        as_float(three_up).alias("three_white_soldiers"),
        as_float(three_down).alias("three_black_crows"),
    ]


def _runs() -> list[pl.Expr]:
    prev_close = CLOSE.shift(1)
    return [
        run_length(prev_close < CLOSE).alias("consecutive_up"),
        run_length(prev_close > CLOSE).alias("consecutive_down"),
        run_length(_is_up_bar()).alias("consecutive_up_bodies"),
        run_length(_is_down_bar()).alias("consecutive_down_bodies"),
    ]


def _windowed(window: int) -> list[pl.Expr]:
    bar_range = _bar_range()
    w = window
    return [
        safe_div(_body(), bar_range).rolling_mean(w).alias(f"body_ratio_mean_{w}"),
        safe_div(_upper_wick(), bar_range).rolling_mean(w).alias(f"upper_wick_mean_{w}"),
        safe_div(_lower_wick(), bar_range).rolling_mean(w).alias(f"lower_wick_mean_{w}"),
        safe_div(CLOSE - LOW, bar_range).rolling_mean(w).alias(f"close_position_mean_{w}"),
        as_float(_is_up_bar()).rolling_mean(w).alias(f"up_bar_share_{w}"),
        as_float(_is_doji()).rolling_mean(w).alias(f"doji_share_{w}"),
        safe_div(bar_range, bar_range.rolling_mean(w)).alias(f"range_vs_mean_{w}"),
    ]


class CandlestickFeatures:
    """Body/range ratios, wicks, gaps, engulfing/doji/hammer flags and up/down runs."""

    name = "candlestick"

    def expressions(self, scale: FeatureScale) -> list[pl.Expr]:
        exprs = [*_geometry(), *_gaps(), *_patterns(), *_runs()]
        for window in scale.windows:
            exprs.extend(_windowed(window))
        return exprs

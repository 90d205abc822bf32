"""Market-structure features: swing flags and excursions, range breakouts, trend strength.

The swing flags ``swing_high_w{w}``/``swing_low_w{w}`` and excursions
``swing_high_excursion_w{w}``/``swing_low_excursion_w{w}`` restate a swing target's own
definition (without its threshold); :func:`target_derived_columns` names them so that they
are dropped before training that target.
"""

from __future__ import annotations

import polars as pl

from alphafactory.features._base import (
    CLOSE,
    HIGH,
    LOW,
    FeatureScale,
    as_float,
    bars_since,
    finite_or_nan,
    safe_div,
    true_range,
    wilder,
)

SWING_FLAG = "swing_{swing_type}_w{window}"
SWING_EXCURSION = "swing_{swing_type}_excursion_w{window}"


def swing_high_flag(window: int) -> pl.Expr:
    """True when the high makes a new ``window``-bar high: high_t >= max(high_{t-w..t-1})."""
    return HIGH.shift(1).rolling_max(window) <= HIGH


def swing_low_flag(window: int) -> pl.Expr:
    """True when the low makes a new ``window``-bar low: low_t <= min(low_{t-w..t-1})."""
    return LOW.shift(1).rolling_min(window) >= LOW


def swing_sigma(window: int) -> pl.Expr:
    """Trailing volatility in price units: std of the last max(window, 2) closes."""
    return CLOSE.rolling_std(max(window, 2))


def _swing(window: int) -> list[pl.Expr]:
    mean_close = CLOSE.rolling_mean(window)
    sigma = swing_sigma(window)
    high_flag, low_flag = swing_high_flag(window), swing_low_flag(window)
    rate_window = max(window, 10)
    return [
        as_float(high_flag).alias(SWING_FLAG.format(swing_type="high", window=window)),
        as_float(low_flag).alias(SWING_FLAG.format(swing_type="low", window=window)),
        # NaN where sigma is 0 (closes flat over the window), like the target's own excursion.
        safe_div(HIGH - mean_close, sigma).alias(
            SWING_EXCURSION.format(swing_type="high", window=window)
        ),
        safe_div(mean_close - LOW, sigma).alias(
            SWING_EXCURSION.format(swing_type="low", window=window)
        ),
        bars_since(high_flag.shift(1)).alias(f"bars_since_swing_high_w{window}"),
        bars_since(low_flag.shift(1)).alias(f"bars_since_swing_low_w{window}"),
        # Rates and ages use swings before bar t only: the flag at t is the target's own.
        as_float(high_flag.shift(1)).rolling_mean(rate_window).alias(f"swing_high_rate_w{window}"),
        as_float(low_flag.shift(1)).rolling_mean(rate_window).alias(f"swing_low_rate_w{window}"),
    ]


def _ranges(window: int) -> list[pl.Expr]:
    w = window
    highest, lowest = HIGH.rolling_max(w), LOW.rolling_min(w)
    prior_high, prior_low = HIGH.shift(1).rolling_max(w), LOW.shift(1).rolling_min(w)
    atr = true_range().rolling_mean(w)
    return [
        (safe_div(CLOSE, highest) - 1.0).alias(f"dist_high_{w}"),
        (safe_div(CLOSE, lowest) - 1.0).alias(f"dist_low_{w}"),
        safe_div(highest - lowest, CLOSE).alias(f"range_width_{w}"),
        as_float(prior_high < CLOSE).alias(f"breakout_up_{w}"),
        as_float(prior_low > CLOSE).alias(f"breakout_down_{w}"),
        safe_div(CLOSE - prior_high, atr).alias(f"breakout_strength_up_{w}"),
        safe_div(prior_low - CLOSE, atr).alias(f"breakout_strength_down_{w}"),
    ]


def _structure_counts(window: int) -> list[pl.Expr]:
    w = window
    higher_high, lower_low = HIGH.shift(1) < HIGH, LOW.shift(1) > LOW
    higher_low, lower_high = LOW.shift(1) < LOW, HIGH.shift(1) > HIGH
    return [
        as_float(higher_high).rolling_mean(w).alias(f"higher_high_share_{w}"),
        as_float(lower_low).rolling_mean(w).alias(f"lower_low_share_{w}"),
        as_float(higher_low).rolling_mean(w).alias(f"higher_low_share_{w}"),
        as_float(lower_high).rolling_mean(w).alias(f"lower_high_share_{w}"),
    ]


def _directional(window: int) -> tuple[pl.Expr, pl.Expr]:
    up_move, down_move = HIGH.diff(), -LOW.diff()
    plus_dm = pl.when((up_move > down_move) & (up_move > 0)).then(up_move).otherwise(0.0)
    minus_dm = pl.when((down_move > up_move) & (down_move > 0)).then(down_move).otherwise(0.0)
    atr = wilder(true_range(), window)
    return safe_div(100.0 * wilder(plus_dm, window), atr), safe_div(
        100.0 * wilder(minus_dm, window), atr
    )


def _trend(window: int) -> list[pl.Expr]:
    w = window
    index = pl.int_range(pl.len(), dtype=pl.Int64).cast(pl.Float64)
    path = CLOSE.diff().abs().rolling_sum(w)
    net = CLOSE - CLOSE.shift(w)
    index_var = w * (w + 1) / 12.0
    plus_di, minus_di = _directional(w)
    dx = safe_div(100.0 * (plus_di - minus_di).abs(), plus_di + minus_di)
    slope = pl.rolling_cov(index, CLOSE, window_size=w) / index_var
    return [
        safe_div(net, path).alias(f"efficiency_{w}"),
        safe_div(net.abs(), path).alias(f"trend_efficiency_{w}"),
        # cov / (std * std) inside: a flat window must give NaN, not a round-off blow-up.
        finite_or_nan(pl.rolling_corr(index, CLOSE, window_size=w)).alias(f"trend_corr_{w}"),
        safe_div(slope, CLOSE).alias(f"trend_slope_{w}"),
        (plus_di - minus_di).alias(f"di_diff_{w}"),
        wilder(dx, w).alias(f"adx_{w}"),
    ]


class MarketStructureFeatures:
    """Swing flags/excursions, distance to highs/lows, HH/LL counts, breakouts, trend."""

    name = "market_structure"

    def expressions(self, scale: FeatureScale) -> list[pl.Expr]:
        exprs: list[pl.Expr] = []
        for window in scale.swing_windows:
            exprs.extend(_swing(window))
        for window in scale.windows:
            exprs.extend(_ranges(window))
            exprs.extend(_structure_counts(window))
            exprs.extend(_trend(window))
        return exprs

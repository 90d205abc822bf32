"""Technical indicators: moving-average ratios, oscillators, bands, ATR, OBV and volume."""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from alphafactory.features._base import (
    CLOSE,
    HIGH,
    LOW,
    VOLUME,
    FeatureScale,
    ema,
    safe_div,
    true_range,
    wilder,
)

_BOLLINGER_WIDTH = 2.0
_CCI_CONSTANT = 0.015
_STOCH_SMOOTHING = 3


def rsi(window: int) -> pl.Expr:
    """Wilder's relative strength index (0-100) of the close."""
    change = CLOSE.diff()
    gain = wilder(change.clip(lower_bound=0.0), window)
    loss = wilder((-change).clip(lower_bound=0.0), window)
    # Unguarded on purpose, and never ±inf: no losses gives gain / 0 = inf and the limit
    # 100 - 100 / inf = 100; no moves at all gives 0 / 0 = NaN.
    return 100.0 - 100.0 / (1.0 + gain / loss)


def _typical_price() -> pl.Expr:
    return (HIGH + LOW + CLOSE) / 3.0


def _rolling_mean_abs_deviation(values: pl.Series, window: int) -> pl.Series:
    """Mean |x_i - mean| over each trailing window; NaN while the window is incomplete."""
    array = values.cast(pl.Float64).to_numpy()
    result = np.full(array.shape[0], np.nan)
    if array.shape[0] >= window:
        windows = sliding_window_view(array, window)
        centred = windows - windows.mean(axis=1, keepdims=True)
        result[window - 1 :] = np.abs(centred).mean(axis=1)
    return pl.Series(values.name, result)


def cci(window: int) -> pl.Expr:
    """Commodity channel index with the exact mean absolute deviation over the window."""
    typical = _typical_price()
    mean = typical.rolling_mean(window)  # null in warm-up, which masks the NaN deviation
    mean_deviation = typical.map_batches(
        lambda values: _rolling_mean_abs_deviation(values, window), return_dtype=pl.Float64
    )
    return safe_div(typical - mean, _CCI_CONSTANT * mean_deviation)


def _on_balance_volume() -> pl.Expr:
    return (CLOSE.diff().sign().fill_null(0.0) * VOLUME).cum_sum()


def _trend(window: int) -> list[pl.Expr]:
    w = window
    return [
        (safe_div(CLOSE, CLOSE.rolling_mean(w)) - 1.0).alias(f"sma_ratio_{w}"),
        (safe_div(CLOSE, ema(CLOSE, w)) - 1.0).alias(f"ema_ratio_{w}"),
        (safe_div(CLOSE, CLOSE.shift(w)) - 1.0).alias(f"roc_{w}"),
        safe_div(CLOSE - CLOSE.shift(w), true_range().rolling_mean(w)).alias(f"momentum_atr_{w}"),
    ]


def _oscillators(window: int) -> list[pl.Expr]:
    w = window
    highest, lowest = HIGH.rolling_max(w), LOW.rolling_min(w)
    stoch_k = safe_div(CLOSE - lowest, highest - lowest)
    return [
        rsi(w).alias(f"rsi_{w}"),
        (100.0 * stoch_k).alias(f"stoch_k_{w}"),
        (100.0 * stoch_k.rolling_mean(_STOCH_SMOOTHING)).alias(f"stoch_d_{w}"),
        safe_div(-100.0 * (highest - CLOSE), highest - lowest).alias(f"williams_r_{w}"),
        cci(w).alias(f"cci_{w}"),
    ]


def _bands(window: int) -> list[pl.Expr]:
    w = window
    mean, std = CLOSE.rolling_mean(w), CLOSE.rolling_std(w)
    lower = mean - _BOLLINGER_WIDTH * std
    width = 2.0 * _BOLLINGER_WIDTH * std
    return [
        safe_div(CLOSE - lower, width).alias(f"bb_pctb_{w}"),
        safe_div(width, mean).alias(f"bb_width_{w}"),
        safe_div(wilder(true_range(), w), CLOSE).alias(f"natr_{w}"),
    ]


def _volume(window: int) -> list[pl.Expr]:
    w = window
    obv = _on_balance_volume()
    vwap = safe_div((CLOSE * VOLUME).rolling_sum(w), VOLUME.rolling_sum(w))
    return [
        safe_div(obv - obv.shift(w), VOLUME.rolling_sum(w)).alias(f"obv_change_{w}"),
        safe_div(VOLUME - VOLUME.rolling_mean(w), VOLUME.rolling_std(w)).alias(f"volume_z_{w}"),
        safe_div(VOLUME, VOLUME.rolling_mean(w)).alias(f"volume_ratio_{w}"),
        (safe_div(vwap, CLOSE) - 1.0).alias(f"vwap_distance_{w}"),
    ]


def _macd(fast: int, slow: int, signal: int) -> list[pl.Expr]:
    suffix = f"{fast}_{slow}_{signal}"
    line = safe_div(ema(CLOSE, fast) - ema(CLOSE, slow), CLOSE)
    signal_line = ema(line, signal)
    return [
        line.alias(f"macd_{suffix}"),
        signal_line.alias(f"macd_signal_{suffix}"),
        (line - signal_line).alias(f"macd_hist_{suffix}"),
    ]


def _ema_crosses(windows: tuple[int, ...]) -> list[pl.Expr]:
    return [
        (safe_div(ema(CLOSE, fast), ema(CLOSE, slow)) - 1.0).alias(f"ema_cross_{fast}_{slow}")
        for fast, slow in zip(windows, windows[1:], strict=False)
    ]


class TechnicalFeatures:
    """SMA/EMA ratios, RSI, MACD, Bollinger, stochastic, ROC, ATR, OBV, CCI, Williams %R."""

    name = "technical"

    def expressions(self, scale: FeatureScale) -> list[pl.Expr]:
        exprs: list[pl.Expr] = []
        for window in scale.windows:
            exprs.extend(_trend(window))
            exprs.extend(_oscillators(window))
            exprs.extend(_bands(window))
            exprs.extend(_volume(window))
        for fast, slow, signal in scale.macd_spans:
            exprs.extend(_macd(fast, slow, signal))
        exprs.extend(_ema_crosses(scale.windows))
        return exprs

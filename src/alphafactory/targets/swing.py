"""Swing events and their 3-class labels (breakout / reversion / neither), triple-barrier style.

Definitions (all pinned by tests on hand-made series):

* sigma_t: trailing volatility in price units, ``close_t * std(log returns over the last
  max(20, 2w) bars)``; it uses bars <= t only.
* swing-high event at bar t for window w and std threshold k: ``high_t`` is a new w-bar high
  (``high_t >= max(high_{t-w} .. high_{t-1})``) and its excursion over the mean close of the
  last w bars is at least k sigmas: ``(high_t - mean(close_{t-w+1} .. close_t)) / sigma_t >= k``.
  A swing low mirrors it with lows.
* label over the forward horizon h with move threshold b (bars t+1 .. t+h), swing high:
  breakout (1) when a high reaches ``high_t + b*sigma_t`` first; reversion (2) when a low reaches
  ``close_t - b*sigma_t`` first; neither (0) when no barrier is touched, or both are touched in
  the same bar (the order inside a bar is unknown). Swing low mirrors it: breakout below
  ``low_t - b*sigma_t``, reversion above ``close_t + b*sigma_t``.
* rows without an event, and events whose horizon runs past the data with no barrier touched,
  have no label (null); each variant trains on its labelled rows only.
* every row carries its label end per horizon (`label_end_h{h}`): the timestamp of the h-th
  next bar of the same symbol, by which every label of that horizon is known; splits purge on
  it (`alphafactory.data.splits`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from alphafactory.config.schema import GridConfig
from alphafactory.data.splits import bars_ahead, label_end_column
from alphafactory.targets.variants import SwingType, Variant, expand_grid, group_variants

NEITHER, BREAKOUT, REVERSION = 0, 1, 2
CLASS_NAMES = ("neither", "breakout", "reversion")
#: Clip of a move that touched no barrier: strictly inside (-1, 1).
_INSIDE = 0.999
_UNKNOWN = -1


def trailing_sigma(close: np.ndarray, window: int) -> np.ndarray:
    """Volatility in price units over past bars only (NaN during warm-up)."""
    lookback = max(20, 2 * window)
    log_returns = pl.Series(np.diff(np.log(close), prepend=np.nan))
    std = log_returns.rolling_std(lookback, min_samples=lookback).to_numpy()
    return np.asarray(close * std, dtype=np.float64)


def swing_excursion(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int, swing_type: SwingType
) -> tuple[np.ndarray, np.ndarray]:
    """(is_new_extreme, excursion in sigmas) per bar for one symbol's sorted bars."""
    sigma = trailing_sigma(close, window)
    mean_close = pl.Series(close).rolling_mean(window, min_samples=window).to_numpy()
    if swing_type == "high":
        previous = pl.Series(high).shift(1).rolling_max(window, min_samples=window).to_numpy()
        is_extreme = high >= previous
        distance = high - mean_close
    else:
        previous = pl.Series(low).shift(1).rolling_min(window, min_samples=window).to_numpy()
        is_extreme = low <= previous
        distance = mean_close - low
    # Zero or non-finite sigma (flat closes) is no event and a NaN excursion, as in the features.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        excursion = distance / sigma
    valid = ~np.isnan(previous) & np.isfinite(excursion) & (sigma > 0)
    return is_extreme & valid, np.where(valid, excursion, np.nan)


def first_touch(
    high: np.ndarray, low: np.ndarray, upper: np.ndarray, lower: np.ndarray, max_horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bars until the first high >= upper and the first low <= lower (max_horizon+1 if never)."""
    n = len(high)
    never = max_horizon + 1
    first_up = np.full(n, never, dtype=np.int32)
    first_down = np.full(n, never, dtype=np.int32)
    for step in range(min(max_horizon, n - 1), 0, -1):
        future_high = np.full(n, np.nan)
        future_low = np.full(n, np.nan)
        future_high[: n - step] = high[step:]
        future_low[: n - step] = low[step:]
        first_up[future_high >= upper] = step
        first_down[future_low <= lower] = step
    return first_up, first_down


def move_column(variant_id: str) -> str:
    """The targets column holding each event's realised move (`barrier_outcomes`)."""
    return f"{variant_id}__move"


def barrier_labels(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    sigma: np.ndarray,
    swing_type: SwingType,
    move_threshold: float,
    horizons: Sequence[int],
) -> dict[int, np.ndarray]:
    """Label per bar for each horizon: 0/1/2, or -1 where the outcome is unknown."""
    labels, _ = barrier_outcomes(high, low, close, sigma, swing_type, move_threshold, horizons)
    return labels


def barrier_outcomes(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    sigma: np.ndarray,
    swing_type: SwingType,
    move_threshold: float,
    horizons: Sequence[int],
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Labels (as `barrier_labels`) and realised moves per bar for each horizon.

    The move is in units of the barrier distance b*sigma_t, positive towards the breakout
    barrier: +1 when the breakout barrier is touched first, -1 for the reversion barrier, 0
    when both are touched in the same bar, else the close-to-close move over the horizon,
    clipped inside (-1, 1) so that label 1 <=> move >= 1 and label 2 <=> move <= -1.
    """
    distance = move_threshold * sigma
    if swing_type == "high":
        upper, lower = high + distance, close - distance
    else:
        upper, lower = close + distance, low - distance
    first_up, first_down = first_touch(high, low, upper, lower, max(horizons))
    breakout_first, reversion_first = (
        (first_up < first_down, first_down < first_up)
        if swing_type == "high"
        else (first_down < first_up, first_up < first_down)
    )
    first_any = np.minimum(first_up, first_down)
    bars_left = len(high) - 1 - np.arange(len(high))
    direction = 1.0 if swing_type == "high" else -1.0
    labels: dict[int, np.ndarray] = {}
    moves: dict[int, np.ndarray] = {}
    for horizon in horizons:
        label = np.full(len(high), NEITHER, dtype=np.int8)
        touched = first_any <= horizon
        label[touched & breakout_first] = BREAKOUT
        label[touched & reversion_first] = REVERSION
        label[~touched & (bars_left < horizon)] = _UNKNOWN
        labels[horizon] = label
        ahead = np.full(len(close), np.nan)
        ahead[: max(0, len(close) - horizon)] = close[horizon:]
        with np.errstate(divide="ignore", invalid="ignore"):
            drift = direction * (ahead - close) / distance
        move = np.clip(drift, -_INSIDE, _INSIDE)
        move[touched] = 0.0  # both barriers in one bar, unless one came first (below)
        move[label == BREAKOUT] = 1.0
        move[label == REVERSION] = -1.0
        moves[horizon] = move
    return labels, moves


def group_targets(bars_one_symbol: pl.DataFrame, variants: Sequence[Variant]) -> pl.DataFrame:
    """Labels of every variant of one group: `timestamp`, one Int8 column per variant id and
    one label-end column per horizon."""
    high = bars_one_symbol["high"].to_numpy()
    low = bars_one_symbol["low"].to_numpy()
    close = bars_one_symbol["close"].to_numpy()
    window, swing_type = variants[0].window, variants[0].swing_type
    is_extreme, excursion = swing_excursion(high, low, close, window, swing_type)
    sigma = trailing_sigma(close, window)
    horizons = sorted({v.horizon for v in variants})
    columns: dict[str, pl.Series] = {"timestamp": bars_one_symbol["timestamp"]}
    by_move: dict[float, tuple[dict[int, np.ndarray], dict[int, np.ndarray]]] = {}
    for variant in variants:
        if variant.move_threshold not in by_move:
            by_move[variant.move_threshold] = barrier_outcomes(
                high, low, close, sigma, swing_type, variant.move_threshold, horizons
            )
        labels, moves = by_move[variant.move_threshold]
        label = labels[variant.horizon]
        event = is_extreme & (excursion >= variant.std_threshold) & (label != _UNKNOWN)
        columns[variant.variant_id] = _masked(variant.variant_id, label, event)
        name = move_column(variant.variant_id)
        columns[name] = pl.Series(name, moves[variant.horizon], dtype=pl.Float32).set(
            pl.Series(~event), None
        )
    stamps = bars_one_symbol["timestamp"].cast(pl.Datetime("us")).to_numpy()
    for horizon in horizons:
        ends = pl.Series(label_end_column(horizon), bars_ahead(stamps, horizon))
        columns[ends.name] = ends.cast(pl.Datetime("us"))
    return pl.DataFrame(columns)


def _masked(name: str, values: np.ndarray, keep: np.ndarray) -> pl.Series:
    frame = pl.DataFrame({"value": values.astype(np.int8), "keep": keep})
    return frame.select(pl.when(pl.col("keep")).then(pl.col("value")).alias(name)).to_series()


def build_targets(
    bars: pl.DataFrame, grid: GridConfig, symbols: Sequence[str] | None = None
) -> dict[str, pl.DataFrame]:
    """Target frames by group id for every group of the grid."""
    chosen = list(symbols) if symbols is not None else sorted(bars["symbol"].unique().to_list())
    groups = group_variants(expand_grid(grid, chosen))
    per_symbol = {s: bars.filter(pl.col("symbol") == s).sort("timestamp") for s in chosen}
    return {gid: group_targets(per_symbol[vs[0].symbol], vs) for gid, vs in groups.items()}

"""Probabilities to trades: one variant's event predictions become at most one open position
at a time, entered at the next bar's open and closed at the label's barriers or its horizon.

Rule (`simulate_trades`), for an event at bar t with probabilities (p_neither, p_breakout,
p_reversion), b = move_threshold, h = horizon and sigma_t = ``trailing_sigma(close, window)[t]``
(bars <= t only):

1. Signal: the predicted class is the argmax (a tie goes to the lower class id, so a tie with
   neither is flat). Neither, or a top probability below ``min_confidence``, is flat. Breakout
   trades *with* the swing (high: long, low: short), reversion *against* it (high: short,
   low: long).
2. Levels, the label's barriers: swing high ``upper = high_t + b*sigma_t``,
   ``lower = close_t - b*sigma_t``; swing low ``upper = close_t + b*sigma_t``,
   ``lower = low_t - b*sigma_t``. The take-profit is the barrier the trade bets on (long:
   upper, short: lower), the stop is the other one.
3. Entry at the open of bar t+1 (never at bar t's close); none when there is no bar t+1 or
   sigma_t is NaN or not > 0 (counted in ``skipped_unusable``).
4. Exit, scanning bars t+1 .. t+h (the entry bar too: its high and low come after its open),
   per bar in this order: it opens at or beyond the stop -> stop, filled at the open (gap); it
   opens at or beyond the take-profit -> take-profit at the open; its range touches the stop
   -> stop at the stop level, also when it touches both (conservative: the order inside a bar
   is unknown); its range touches the take-profit -> take-profit at its level. Untouched: the
   close of bar t+h ('horizon'), or of the last bar when the data ends first ('end_of_data').
5. One position at a time: a trade signal at a bar from the entry bar up to, not including,
   the exit bar is skipped (``skipped_busy``); a signal at the exit bar may trade (it enters
   at the next open, after the exit). Flat signals count in ``skipped_flat`` only.

Costs, per side, with s = slippage_bps / 1e4 and f = fee_bps / 1e4: fills move adversely (a
buy fills at price*(1+s), a sell at price*(1-s)); the fee is a factor (1-f) on the trade's
equity (its notional) at entry and at exit. With d = +1 long / -1 short and
x = exit_fill / entry_fill: ``net_return = (1-f)**2 * (1 + d*(x - 1)) - 1``, and
``gross_return = d*(exit / entry - 1)`` on the raw prices, before slippage and fees.

Bar returns follow the trade's equity, marked at each held bar's close P:
``E(P) = (1-f) * (1 + d*(P/entry_fill - 1))``, ``E = 1 + net_return`` after the exit and 1
before the entry; a held bar returns E / E_previous - 1, flat bars 0. For a long that is
close/entry_fill on the entry bar and close-to-close inside the trade; a short's equity is its
collateral plus its (un-rebalanced) short gain. Either way the product of (1 + bar return)
over a trade's bars is exactly 1 + net_return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from alphafactory.errors import ConfigError, DataError
from alphafactory.targets.swing import BREAKOUT, CLASS_NAMES, NEITHER, trailing_sigma
from alphafactory.targets.variants import SwingType, Variant

PROBABILITY_COLUMNS = tuple(f"p_{name}" for name in CLASS_NAMES)
PRICE_COLUMNS = ("open", "high", "low", "close")
TAKE_PROFIT, STOP, HORIZON, END_OF_DATA = "take_profit", "stop", "horizon", "end_of_data"
_BPS = 1e-4


@dataclass(frozen=True)
class TradeRule:
    """How predictions become trades: the confidence needed to trade and the costs per side.

    Attributes:
        min_confidence: the predicted class's probability must be at least this, in [0, 1).
        fee_bps: fee per side in basis points of the trade's notional, in [0, 10000).
        slippage_bps: adverse fill-price move per side in basis points, in [0, 10000).
    """

    min_confidence: float = 0.0
    fee_bps: float = 0.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence < 1.0:
            raise ConfigError(f"min_confidence must be in [0, 1), got {self.min_confidence!r}")
        for name in ("fee_bps", "slippage_bps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value < 1e4):
                raise ConfigError(f"{name} must be in [0, 10000) basis points, got {value!r}")


@dataclass(frozen=True, eq=False)
class TradeLog:
    """The trades of one variant and its per-bar positions and strategy returns.

    Attributes:
        trades: one row per trade: event_time, entry_time, exit_time, direction (+1/-1),
            entry_price and exit_price (fills, after slippage), exit_reason, bars_held (entry
            bar to exit bar, both counted), gross_return and net_return.
        positions: int8 per bar of `timestamps`: the direction held during the bar, else 0.
        bar_returns: float64 per bar: the mark-to-market strategy return (module docstring).
        timestamps: the bars' timestamps.
        skipped_busy: trade signals skipped because a position was open.
        skipped_flat: events predicted neither or below `min_confidence`.
        skipped_unusable: trade signals without a next bar or a usable sigma.
    """

    trades: pl.DataFrame
    positions: np.ndarray
    bar_returns: np.ndarray
    timestamps: pl.Series
    skipped_busy: int
    skipped_flat: int
    skipped_unusable: int


def simulate_trades(
    bars: pl.DataFrame, events: pl.DataFrame, variant: Variant, rule: TradeRule
) -> TradeLog:
    """Trade one variant's event predictions over one symbol's bars (rule: module docstring).

    Args:
        bars: one symbol's ``timestamp, open, high, low, close``, sorted by timestamp.
        events: ``timestamp, p_neither, p_breakout, p_reversion`` at event bars of `bars`.
        variant: the variant whose window, swing type, move threshold and horizon apply.
        rule: confidence threshold and costs.

    Returns:
        The trades, per-bar positions and returns, and the counts of skipped events.

    Raises:
        DataError: a column is missing, a price or probability is missing or not finite, the
            bars are not sorted and unique, or an event timestamp is not a bar of `bars`.
    """
    stamps = _check_bars(bars, variant)
    event_bars, probabilities = _locate_events(events, stamps)
    o, hi, lo, cl = (bars[name].cast(pl.Float64).to_numpy() for name in PRICE_COLUMNS)
    sigma = trailing_sigma(cl, variant.window)
    n = len(cl)
    positions = np.zeros(n, dtype=np.int8)
    bar_returns = np.zeros(n, dtype=np.float64)
    slip, fee = rule.slippage_bps * _BPS, rule.fee_bps * _BPS
    rows: list[dict[str, Any]] = []
    busy_until, skipped_busy, skipped_flat, skipped_unusable = -1, 0, 0, 0
    for t, probs in zip(event_bars.tolist(), probabilities, strict=True):
        d = _direction(probs, variant.swing_type, rule.min_confidence)
        if d == 0:
            skipped_flat += 1
            continue
        if t < busy_until:
            skipped_busy += 1
            continue
        if t + 1 >= n or not sigma[t] > 0:
            skipped_unusable += 1
            continue
        distance = variant.move_threshold * sigma[t]
        if variant.swing_type == "high":
            upper, lower = hi[t] + distance, cl[t] - distance
        else:
            upper, lower = cl[t] + distance, lo[t] - distance
        take, stop = (upper, lower) if d > 0 else (lower, upper)
        entry, last = t + 1, min(t + variant.horizon, n - 1)
        exit_bar, exit_raw, reason = _scan(o, hi, lo, entry, last, d, take, stop)
        if reason is None:
            exit_raw = cl[last]
            reason = HORIZON if t + variant.horizon <= n - 1 else END_OF_DATA
        entry_fill, exit_fill = o[entry] * (1 + d * slip), exit_raw * (1 - d * slip)
        held = slice(entry, exit_bar + 1)
        marks = 1.0 + d * (cl[entry:exit_bar] / entry_fill - 1.0)
        final = (1.0 - fee) ** 2 * (1.0 + d * (exit_fill / entry_fill - 1.0))
        equity = np.concatenate(([1.0], (1.0 - fee) * marks, [final]))
        bar_returns[held] = equity[1:] / equity[:-1] - 1.0
        positions[held] = d
        busy_until = exit_bar
        rows.append(
            {
                "event": t,
                "entry": entry,
                "exit": exit_bar,
                "direction": d,
                "entry_price": entry_fill,
                "exit_price": exit_fill,
                "exit_reason": reason,
                "bars_held": exit_bar - entry + 1,
                "gross_return": d * (exit_raw / o[entry] - 1.0),
                "net_return": final - 1.0,
            }
        )
    return TradeLog(
        trades=_trade_frame(rows, stamps),
        positions=positions,
        bar_returns=bar_returns,
        timestamps=stamps,
        skipped_busy=skipped_busy,
        skipped_flat=skipped_flat,
        skipped_unusable=skipped_unusable,
    )


def _direction(probs: np.ndarray, swing_type: SwingType, min_confidence: float) -> int:
    """+1 long, -1 short, 0 flat for one event's (p_neither, p_breakout, p_reversion)."""
    predicted = int(np.argmax(probs))
    if predicted == NEITHER or probs[predicted] < min_confidence:
        return 0
    with_swing = 1 if swing_type == "high" else -1
    return with_swing if predicted == BREAKOUT else -with_swing


def _scan(
    o: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    entry: int,
    last: int,
    d: int,
    take: float,
    stop: float,
) -> tuple[int, float, str | None]:
    """(exit bar, raw exit price, reason) of the first bar in entry..last touching a level;
    (last, nan, None) when none does."""
    opens = o[entry : last + 1]
    adverse, favourable = (lo, hi) if d > 0 else (hi, lo)
    gap_stop = d * (opens - stop) <= 0
    gap_take = d * (opens - take) >= 0
    hit_stop = gap_stop | (d * (adverse[entry : last + 1] - stop) <= 0)
    hit_take = gap_take | (d * (favourable[entry : last + 1] - take) >= 0)
    hit = hit_stop | hit_take
    if not hit.any():
        return last, math.nan, None
    k = int(np.argmax(hit))
    if gap_stop[k]:
        return entry + k, float(opens[k]), STOP
    if gap_take[k]:
        return entry + k, float(opens[k]), TAKE_PROFIT
    if hit_stop[k]:
        return entry + k, float(stop), STOP
    return entry + k, float(take), TAKE_PROFIT


def _check_bars(bars: pl.DataFrame, variant: Variant) -> pl.Series:
    """The bars' timestamps, after checking columns, prices, order and symbol."""
    missing = [c for c in ("timestamp", *PRICE_COLUMNS) if c not in bars.columns]
    if missing:
        raise DataError(f"trades: bars lack column(s) {missing}; need timestamp, open..close")
    stamps = bars["timestamp"]
    if "symbol" in bars.columns:
        symbols = bars["symbol"].unique().to_list()
        if symbols and symbols != [variant.symbol]:
            raise DataError(
                f"trades: bars must hold only {variant.symbol!r} of the variant, got {symbols}"
            )
    prices = bars.select(pl.col(PRICE_COLUMNS).cast(pl.Float64)).to_numpy()
    bad = ~np.isfinite(prices).all(axis=1)
    if bad.any():
        at = stamps[int(np.argmax(bad))]
        raise DataError(f"trades: bar at {at} has a missing or non-finite price")
    if stamps.null_count():
        raise DataError("trades: bars have a null timestamp")
    order = np.diff(stamps.to_physical().to_numpy()) <= 0
    if order.any():
        at = stamps[int(np.argmax(order)) + 1]
        raise DataError(f"trades: bars must be sorted by timestamp and unique; see {at}")
    return stamps


def _locate_events(events: pl.DataFrame, stamps: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(bar index per event, probabilities (k, 3)), in time order, after checking them."""
    missing = [c for c in ("timestamp", *PROBABILITY_COLUMNS) if c not in events.columns]
    if missing:
        raise DataError(
            f"trades: events lack column(s) {missing}; need timestamp, "
            + ", ".join(PROBABILITY_COLUMNS)
        )
    try:
        moments = events["timestamp"].cast(stamps.dtype)
    except pl.exceptions.PolarsError as exc:
        raise DataError(
            f"trades: event timestamps ({events['timestamp'].dtype}) do not match the bars' "
            f"({stamps.dtype})"
        ) from exc
    if moments.null_count():
        raise DataError("trades: events have a null timestamp")
    order = np.argsort(moments.to_physical().to_numpy(), kind="stable")
    moments = moments.gather(order)
    wanted = moments.to_physical().to_numpy()
    known = stamps.to_physical().to_numpy()
    index = np.searchsorted(known, wanted)
    found = index < len(known)
    found[found] = known[index[found]] == wanted[found]
    if not found.all():
        at = moments[int(np.argmin(found))]
        raise DataError(f"trades: event timestamp {at} is not a bar of the bars given")
    repeated = np.diff(index) == 0
    if repeated.any():
        raise DataError(f"trades: event timestamp {moments[int(np.argmax(repeated))]} repeats")
    probabilities = events.select(pl.col(PROBABILITY_COLUMNS).cast(pl.Float64)).to_numpy()
    probabilities = probabilities[order]
    bad = ~np.isfinite(probabilities).all(axis=1)
    if bad.any():
        at = moments[int(np.argmax(bad))]
        raise DataError(f"trades: event at {at} has a missing or non-finite probability")
    return index, probabilities


def _trade_frame(rows: list[dict[str, Any]], stamps: pl.Series) -> pl.DataFrame:
    """The trades as a frame with a fixed schema (also when there are none)."""

    def column(key: str) -> list[Any]:
        return [row[key] for row in rows]

    def times(key: str) -> pl.Series:
        return stamps.gather(np.asarray(column(key), dtype=np.int64))

    return pl.DataFrame(
        {
            "event_time": times("event"),
            "entry_time": times("entry"),
            "exit_time": times("exit"),
            "direction": pl.Series(column("direction"), dtype=pl.Int8),
            "entry_price": pl.Series(column("entry_price"), dtype=pl.Float64),
            "exit_price": pl.Series(column("exit_price"), dtype=pl.Float64),
            "exit_reason": pl.Series(column("exit_reason"), dtype=pl.String),
            "bars_held": pl.Series(column("bars_held"), dtype=pl.Int32),
            "gross_return": pl.Series(column("gross_return"), dtype=pl.Float64),
            "net_return": pl.Series(column("net_return"), dtype=pl.Float64),
        }
    )

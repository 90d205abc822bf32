"""Trading metrics of a backtest's return series: annualised return, Sharpe, Sortino, drawdown,
and the trade statistics (hit rate, profit factor, exposure, turnover).

Return-series definitions follow empyrical's (risk-free and required return 0); the tests
check them against it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from alphafactory.errors import DataError

#: Trading days of an equity year, and calendar days of a crypto one.
EQUITY_DAYS = 252
CRYPTO_DAYS = 365


@dataclass(frozen=True)
class TradingMetrics:
    """Metrics of one backtest; the bar-based ones are annualised with `periods_per_year`.

    Attributes:
        total_return: compounded simple return over all bars.
        annual_return: geometric (CAGR) over n_bars / periods_per_year years.
        sharpe: mean / std(ddof=1) * sqrt(periods_per_year); NaN for a constant series or
            fewer than 2 bars.
        sortino: mean / sqrt(mean(min(r, 0)**2)) * sqrt(periods_per_year); NaN for fewer than
            2 bars or no downside at all (empyrical gives +inf there).
        max_drawdown: largest peak-to-trough loss of the equity curve as a positive fraction,
            the starting capital 1.0 counting as a peak.
        hit_rate: share of trades with a net return > 0; NaN without trades.
        profit_factor: sum of winning trades / |sum of losing trades|; +inf with winners and no
            losers, 0.0 with losers and no winners, NaN with neither.
        win_loss_ratio: mean win / |mean loss|; same conventions as profit_factor.
        n_trades: number of closed trades.
        exposure: share of bars with a nonzero position.
        turnover: annualised sum of |position_t - position_{t-1}| (position_{-1} = 0).
    """

    total_return: float
    annual_return: float
    sharpe: float
    sortino: float
    max_drawdown: float
    hit_rate: float
    profit_factor: float
    win_loss_ratio: float
    n_trades: int
    exposure: float
    turnover: float

    def to_dict(self) -> dict[str, float | int]:
        """Plain floats and ints (JSON-ready; NaN and inf stay floats)."""
        return {
            key: int(value) if key == "n_trades" else float(value)
            for key, value in asdict(self).items()
        }


def periods_per_year(timestamps: np.ndarray, calendar: Literal["crypto", "equity"]) -> float:
    """Bars per year from the data's own bar frequency.

    Args:
        timestamps: bar timestamps, numpy datetime64 of any unit (naive UTC); sorted or not,
            duplicates are ignored.
        calendar: "crypto" (trades around the clock: 365 days * 86400 s / median bar spacing)
            or "equity" (252 sessions * median number of bars per UTC calendar date).

    Returns:
        The annualisation factor, e.g. 8760 for hourly crypto, 252 for daily equity bars.

    Raises:
        DataError: fewer than 2 distinct timestamps, not datetime64, or NaT values.
    """
    stamps = np.asarray(timestamps)
    if not np.issubdtype(stamps.dtype, np.datetime64):
        raise DataError(f"timestamps must be numpy datetime64, got dtype {stamps.dtype}")
    if np.isnat(stamps).any():
        raise DataError("timestamps contain NaT: drop or fill the missing bar times")
    stamps = np.unique(stamps.astype("datetime64[us]"))
    if stamps.size < 2:
        raise DataError(f"periods_per_year needs at least 2 distinct timestamps, got {stamps.size}")
    if calendar == "crypto":
        spacing_s = float(np.median(np.diff(stamps).astype(np.int64))) / 1e6
        return CRYPTO_DAYS * 86400.0 / spacing_s
    if calendar == "equity":
        _, per_date = np.unique(stamps.astype("datetime64[D]"), return_counts=True)
        return EQUITY_DAYS * float(np.median(per_date))
    raise DataError(f"calendar must be 'crypto' or 'equity', got {calendar!r}")


def equity_curve(bar_returns: np.ndarray) -> np.ndarray:
    """Compounded equity after each bar: cumprod(1 + r), one value per bar.

    The starting capital 1.0 (before the first bar) is implied, not included.
    """
    returns = _bar_returns(bar_returns)
    return np.cumprod(1.0 + returns)


def drawdown_curve(bar_returns: np.ndarray) -> np.ndarray:
    """Drawdown after each bar: 1 - equity / running peak, a fraction >= 0 per bar.

    The running peak starts at the implied capital 1.0, so a loss on the first bar is a
    drawdown.
    """
    equity = equity_curve(bar_returns)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    return np.maximum(1.0 - equity / peak, 0.0)


def trading_metrics(
    bar_returns: np.ndarray,
    positions: np.ndarray,
    trade_returns: np.ndarray,
    periods_per_year: float,
) -> TradingMetrics:
    """Metrics of a strategy's per-bar returns, positions and closed trades.

    Args:
        bar_returns: per-bar simple returns (0.0 when flat), finite and > -1.
        positions: per-bar position in {-1, 0, +1}, as long as `bar_returns`.
        trade_returns: one net simple return per closed trade (finite; a short can lose more
            than 100 %, so values below -1 are allowed).
        periods_per_year: annualisation factor, e.g. from `periods_per_year()`.

    Returns:
        The `TradingMetrics`.

    Raises:
        DataError: no bars, lengths differ, non-finite values, a bar return <= -1, a position
            outside {-1, 0, 1}, or a periods_per_year that is not a positive number.
    """
    returns = _bar_returns(bar_returns)
    held = _positions(positions, returns.size)
    trades = _finite_1d(trade_returns, "trade_returns")
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise DataError(f"periods_per_year must be a positive number, got {periods_per_year}")
    n_bars = returns.size
    total = float(np.prod(1.0 + returns)) - 1.0
    changes = np.abs(np.diff(held, prepend=0.0))
    return TradingMetrics(
        total_return=total,
        annual_return=(1.0 + total) ** (periods_per_year / n_bars) - 1.0,
        sharpe=_sharpe(returns, periods_per_year),
        sortino=_sortino(returns, periods_per_year),
        max_drawdown=float(drawdown_curve(returns).max()),
        hit_rate=float(np.mean(trades > 0)) if trades.size else math.nan,
        profit_factor=_ratio(trades[trades > 0].sum(), trades[trades < 0].sum(), trades),
        win_loss_ratio=_ratio(_mean(trades[trades > 0]), _mean(trades[trades < 0]), trades),
        n_trades=int(trades.size),
        exposure=float(np.mean(held != 0)),
        turnover=float(changes.sum()) / n_bars * periods_per_year,
    )


def _sharpe(returns: np.ndarray, ppy: float) -> float:
    # a constant series has std 0; its computed std can be a ~1e-18 residue, hence max == min
    if returns.size < 2 or returns.max() == returns.min():
        return math.nan
    return float(returns.mean() / returns.std(ddof=1) * math.sqrt(ppy))


def _sortino(returns: np.ndarray, ppy: float) -> float:
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if returns.size < 2 or downside == 0.0:
        return math.nan
    return float(returns.mean() / downside * math.sqrt(ppy))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


def _ratio(wins: float, losses: float, trades: np.ndarray) -> float:
    """wins / |losses|: +inf without losses, 0 without wins, NaN with neither."""
    if not np.any(trades < 0):
        return math.inf if np.any(trades > 0) else math.nan
    return float(wins) / abs(float(losses))


def _finite_1d(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise DataError(f"{name} has {bad.size} non-finite values (first at index {bad[0]})")
    return array


def _bar_returns(values: np.ndarray) -> np.ndarray:
    returns = _finite_1d(values, "bar_returns")
    if returns.size == 0:
        raise DataError("bar_returns is empty: the backtest covers no bars")
    ruined = np.flatnonzero(returns <= -1.0)
    if ruined.size:
        raise DataError(
            f"bar_returns must be > -1 (a total loss or worse), got {returns[ruined[0]]} "
            f"at index {ruined[0]}"
        )
    return returns


def _positions(values: np.ndarray, n_bars: int) -> np.ndarray:
    held = _finite_1d(values, "positions")
    if held.size != n_bars:
        raise DataError(
            f"positions has {held.size} entries but bar_returns has {n_bars}: one per bar"
        )
    odd = np.flatnonzero(~np.isin(held, (-1.0, 0.0, 1.0)))
    if odd.size:
        raise DataError(f"positions must be -1, 0 or +1, got {held[odd[0]]} at index {odd[0]}")
    return held

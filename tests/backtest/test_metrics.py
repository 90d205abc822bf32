"""Trading metrics: the return-series ones against empyrical on the same series, hit rate,
profit factor, win/loss ratio and exposure against quantstats, every trade one also against
hand-computed values (turnover has no library counterpart here), periods_per_year on
synthetic calendars."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
import quantstats

from alphafactory.backtest.metrics import (
    TradingMetrics,
    drawdown_curve,
    equity_curve,
    periods_per_year,
    trading_metrics,
)
from alphafactory.errors import DataError

REL = 1e-9


def _series(seed: int, losing_stretch: bool = False) -> np.ndarray:
    """Bar returns with flat bars (0.0), optionally a long losing stretch in the middle."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0004, 0.01, 3000)
    returns[rng.random(3000) < 0.3] = 0.0
    if losing_stretch:
        returns[1000:1800] = rng.normal(-0.002, 0.01, 800)
    return returns


SERIES = [(_series(seed), ppy) for seed, ppy in zip(range(4), (252, 8760, 1764, 365), strict=True)]
SERIES.append((_series(7, losing_stretch=True), 8760))


def _positions_for(returns: np.ndarray) -> np.ndarray:
    return np.where(returns != 0.0, 1.0, 0.0)


def test_return_metrics_match_empyrical() -> None:
    checked = 0
    for returns, ppy in SERIES:
        m = trading_metrics(returns, _positions_for(returns), np.array([0.01]), ppy)
        assert m.total_return == pytest.approx(empyrical.cum_returns_final(returns), rel=REL)
        assert m.annual_return == pytest.approx(
            empyrical.annual_return(returns, annualization=ppy), rel=REL
        )
        assert m.sharpe == pytest.approx(
            empyrical.sharpe_ratio(returns, annualization=ppy), rel=REL
        )
        assert m.sortino == pytest.approx(
            empyrical.sortino_ratio(returns, annualization=ppy), rel=REL
        )
        assert m.max_drawdown == pytest.approx(-empyrical.max_drawdown(returns), rel=REL)
        assert m.max_drawdown > 0
        checked += 1
    assert checked == len(SERIES) == 5


def test_losing_stretch_is_a_deep_drawdown() -> None:
    returns, ppy = SERIES[-1]
    m = trading_metrics(returns, _positions_for(returns), np.array([]), ppy)
    assert m.max_drawdown > 0.5
    assert m.total_return < 0 and m.annual_return < 0 and m.sharpe < 0


def test_curves_match_empyrical() -> None:
    checked = 0
    for returns, _ in SERIES:
        np.testing.assert_allclose(
            equity_curve(returns), empyrical.cum_returns(returns, starting_value=1.0), rtol=REL
        )
        expected = -empyrical.stats.drawdown_series(returns)  # one value per bar
        drawdown = drawdown_curve(returns)
        assert drawdown.shape == returns.shape and (drawdown >= 0).all()
        np.testing.assert_allclose(drawdown, expected, rtol=REL, atol=1e-15)
        checked += 1
    assert checked == 5


def test_first_bar_loss_is_a_drawdown() -> None:
    assert drawdown_curve(np.array([-0.1, 0.05]))[0] == pytest.approx(0.1)
    assert equity_curve(np.array([-0.1, 0.05])) == pytest.approx([0.9, 0.945])


def test_trade_metrics_on_a_hand_example() -> None:
    positions = np.array([0, 1, 1, 0, -1, -1, 1, 0], dtype=float)
    bar_returns = np.array([0.0, 0.01, -0.02, 0.0, 0.03, 0.01, -0.01, 0.0])
    trades = np.array([0.02, -0.01, 0.04, -0.02, 0.0, -0.03])
    m = trading_metrics(bar_returns, positions, trades, periods_per_year=252)
    # By hand: winners 0.02, 0.04 (sum 0.06, mean 0.03); losers -0.01, -0.02, -0.03
    # (sum -0.06, mean -0.02); the 0.0 trade is neither.
    # hit rate 2/6; profit factor 0.06/0.06 = 1.0; win/loss 0.03/0.02 = 1.5; 6 trades.
    # Nonzero positions at bars 1, 2, 4, 5, 6: exposure 5/8 = 0.625.
    # |changes| from position_{-1} = 0: 0, 1, 0, 1, 1, 0, 2, 1 -> 6; turnover 6/8 * 252 = 189.
    assert m.hit_rate == pytest.approx(1 / 3)
    assert m.profit_factor == pytest.approx(1.0)
    assert m.win_loss_ratio == pytest.approx(1.5)
    assert m.n_trades == 6
    assert m.exposure == pytest.approx(0.625)
    assert m.turnover == pytest.approx(189.0)


def _trade_returns(seed: int) -> np.ndarray:
    """Per-trade net returns, none exactly 0 (quantstats leaves 0 out of the hit rate's
    denominator, alphafactory counts such a trade as a non-win; after costs it does not occur)."""
    rng = np.random.default_rng(seed)
    trades = rng.normal(0.002 * (seed - 2), 0.02, 40 + 30 * seed)
    assert (trades != 0).all()
    return trades


def test_trade_metrics_match_quantstats() -> None:
    checked = 0
    for seed in range(5):
        trades = _trade_returns(seed)
        returns, ppy = SERIES[seed]
        m = trading_metrics(returns, _positions_for(returns), trades, ppy)
        as_series = pd.Series(trades)
        assert m.hit_rate == pytest.approx(
            quantstats.stats.win_rate(as_series, prepare_returns=False), rel=REL
        )
        assert m.profit_factor == pytest.approx(
            quantstats.stats.profit_factor(as_series, prepare_returns=False), rel=REL
        )
        assert m.win_loss_ratio == pytest.approx(
            quantstats.stats.payoff_ratio(as_series, prepare_returns=False), rel=REL
        )
        # quantstats' exposure is the share of nonzero bar returns rounded up to a percent;
        # here a bar is held exactly when its return is nonzero.
        exposure = quantstats.stats.exposure(pd.Series(returns), prepare_returns=False)
        assert exposure == pytest.approx(math.ceil(m.exposure * 100) / 100, abs=1e-12)
        assert 0.6 < m.exposure < 0.8
        checked += 1
    assert checked == 5


def test_trade_ratios_without_losers_or_trades() -> None:
    flat = np.zeros(4)
    winners = trading_metrics(flat, flat, np.array([0.01, 0.02]), 252)
    assert winners.profit_factor == math.inf and winners.win_loss_ratio == math.inf
    assert winners.hit_rate == 1.0
    losers = trading_metrics(flat, flat, np.array([-0.01]), 252)
    assert losers.profit_factor == 0.0 and losers.hit_rate == 0.0
    none = trading_metrics(flat, flat, np.array([]), 252)
    assert none.n_trades == 0
    for value in (none.hit_rate, none.profit_factor, none.win_loss_ratio):
        assert math.isnan(value)


def test_zero_variance_and_single_bar_give_nan_ratios() -> None:
    for returns in (np.zeros(50), np.full(50, 0.001), np.array([0.01])):
        m = trading_metrics(returns, np.zeros(returns.size), np.array([]), 252)
        assert math.isnan(m.sharpe) and math.isnan(m.sortino)


def test_to_dict_is_plain() -> None:
    returns, ppy = SERIES[0]
    m = trading_metrics(returns, _positions_for(returns), np.array([]), ppy)
    d = m.to_dict()
    assert list(d) == [f for f in TradingMetrics.__dataclass_fields__]
    assert type(d["n_trades"]) is int
    assert all(type(v) is float for k, v in d.items() if k != "n_trades")
    assert math.isnan(d["hit_rate"])


@pytest.mark.parametrize(
    ("bar_returns", "positions", "trades", "ppy", "needle"),
    [
        (np.zeros(5), np.zeros(4), np.array([]), 252, "positions has 4"),
        (np.array([0.0, np.nan]), np.zeros(2), np.array([]), 252, "bar_returns has 1 non-finite"),
        (np.array([0.0, -1.0]), np.zeros(2), np.array([]), 252, "must be > -1"),
        (np.zeros(2), np.array([0.0, 0.5]), np.array([]), 252, "must be -1, 0 or"),
        (np.zeros(2), np.zeros(2), np.array([np.inf]), 252, "trade_returns"),
        (np.zeros(2), np.zeros(2), np.array([]), 0.0, "periods_per_year"),
        (np.array([]), np.array([]), np.array([]), 252, "empty"),
    ],
)
def test_invalid_inputs_raise_data_error(
    bar_returns: np.ndarray, positions: np.ndarray, trades: np.ndarray, ppy: float, needle: str
) -> None:
    with pytest.raises(DataError, match=needle):
        trading_metrics(bar_returns, positions, trades, ppy)


def _weekdays(n: int) -> np.ndarray:
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2026-01-01"))
    return days[np.is_busday(days)][:n]


def test_periods_per_year_hourly_crypto() -> None:
    stamps = np.arange(
        np.datetime64("2024-01-01T00:00"), np.datetime64("2024-02-01T00:00"), np.timedelta64(1, "h")
    )
    stamps = np.delete(stamps, [5, 6, 100])  # a few missing bars do not move the median
    assert periods_per_year(stamps, "crypto") == pytest.approx(8760.0)


def test_periods_per_year_daily_equity() -> None:
    stamps = _weekdays(300).astype("datetime64[us]")
    assert stamps.size == 300
    assert periods_per_year(stamps, "equity") == pytest.approx(252.0)


def test_periods_per_year_hourly_equity() -> None:
    opens = _weekdays(100).astype("datetime64[m]") + np.timedelta64(13 * 60 + 30, "m")
    stamps = (opens[:, None] + np.arange(7) * np.timedelta64(60, "m")).ravel()
    assert stamps.size == 700
    assert periods_per_year(stamps[::-1], "equity") == pytest.approx(1764.0)


def test_periods_per_year_rejects_too_few_or_non_datetime() -> None:
    with pytest.raises(DataError, match="at least 2"):
        periods_per_year(np.array(["2024-01-01"], dtype="datetime64[D]"), "crypto")
    with pytest.raises(DataError, match="at least 2"):
        periods_per_year(np.array(["2024-01-01"] * 3, dtype="datetime64[D]"), "equity")
    with pytest.raises(DataError, match="datetime64"):
        periods_per_year(np.arange(10), "crypto")

"""Probabilities to trades (`alphafactory.backtest.trades`) on hand-made bar series."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from alphafactory.backtest.trades import TradeLog, TradeRule, simulate_trades
from alphafactory.errors import ConfigError, DataError
from alphafactory.targets.swing import trailing_sigma
from alphafactory.targets.variants import SwingType, Variant

START = datetime(2024, 1, 1)
WINDOW = 5
WARM = 30  # bars before the event bar; sigma needs max(20, 2*WINDOW) returns
T = WARM  # the event bar's index
FEE_BPS, SLIP_BPS = 5.0, 10.0
F, S = FEE_BPS * 1e-4, SLIP_BPS * 1e-4
COSTS = TradeRule(fee_bps=FEE_BPS, slippage_bps=SLIP_BPS)
BREAKOUT_P, REVERSION_P, NEITHER_P = (0.1, 0.7, 0.2), (0.1, 0.2, 0.7), (0.6, 0.3, 0.1)

Bar = tuple[float, float, float, float]
Future = Callable[[float, float], list[Bar]]


def stamp(i: int) -> datetime:
    return START + timedelta(hours=i)


def variant(swing: SwingType = "high", move: float = 1.0, horizon: int = 5) -> Variant:
    return Variant("AAA", WINDOW, swing, 1.0, move, horizon)


def warmup() -> list[Bar]:
    """Closes alternating 100/101, each bar opening at the previous close."""
    rows, previous = [], 100.0
    for i in range(WARM):
        close = 100.0 if i % 2 == 0 else 101.0
        rows.append((previous, max(previous, close) + 0.25, min(previous, close) - 0.25, close))
        previous = close
    return rows


def frame(rows: list[Bar]) -> pl.DataFrame:
    o, h, low, c = (list(col) for col in zip(*rows, strict=True))
    stamps = [stamp(i) for i in range(len(rows))]
    return pl.DataFrame({"timestamp": stamps, "open": o, "high": h, "low": low, "close": c})


def events(*rows: tuple[int, tuple[float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": [stamp(i) for i, _ in rows],
            "p_neither": [p[0] for _, p in rows],
            "p_breakout": [p[1] for _, p in rows],
            "p_reversion": [p[2] for _, p in rows],
        }
    )


def levels(rows: list[Bar], swing: SwingType, move: float) -> tuple[float, float]:
    """(upper, lower) barriers of the event at bar T, as the module docstring defines them."""
    close = np.array([r[3] for r in rows[: T + 1]])
    sigma = float(trailing_sigma(close, WINDOW)[T])
    assert sigma > 0
    _, high_t, low_t, close_t = rows[T]
    if swing == "high":
        return high_t + move * sigma, close_t - move * sigma
    return close_t + move * sigma, low_t - move * sigma


def scenario(
    swing: SwingType, future: Future, move: float = 1.0, event: Bar = (101.0, 102.0, 100.5, 101.5)
) -> tuple[pl.DataFrame, float, float]:
    """Bars: warm-up, the event bar T, then `future(upper, lower)`; and the barriers."""
    rows = [*warmup(), event]
    upper, lower = levels(rows, swing, move)
    rows += future(upper, lower)
    assert levels(rows, swing, move) == (upper, lower)  # later bars never move the barriers
    return frame(rows), upper, lower


def quiet(price: float) -> Bar:
    return (price, price + 0.05, price - 0.05, price)


def only_trade(log: TradeLog) -> dict[str, object]:
    assert log.trades.height == 1
    return log.trades.row(0, named=True)


def test_swing_high_breakout_goes_long_and_takes_profit_at_the_upper_barrier() -> None:
    def future(up: float, lo: float) -> list[Bar]:
        mid = (up + lo) / 2
        return [
            quiet(mid),
            (mid, up - 0.01, mid - 0.1, mid + 0.2),  # just short of the take-profit
            (mid + 0.2, up + 0.3, mid, up + 0.1),  # first reaches it
            quiet(up + 1.0),
            quiet(up + 1.0),
        ]

    bars, up, lo = scenario("high", future)
    mid = (up + lo) / 2
    log = simulate_trades(bars, events((T, BREAKOUT_P)), variant("high"), COSTS)
    trade = only_trade(log)
    entry_fill, exit_fill = mid * (1 + S), up * (1 - S)
    assert trade["direction"] == 1
    assert trade["event_time"] == stamp(T)
    assert trade["entry_time"] == stamp(T + 1)
    assert trade["exit_time"] == stamp(T + 3)
    assert trade["exit_reason"] == "take_profit"
    assert trade["bars_held"] == 3
    assert trade["entry_price"] == pytest.approx(entry_fill, rel=1e-13)
    assert trade["exit_price"] == pytest.approx(exit_fill, rel=1e-13)
    assert trade["gross_return"] == pytest.approx(up / mid - 1, rel=1e-12)
    net = (1 - F) ** 2 * exit_fill / entry_fill - 1
    assert trade["net_return"] == pytest.approx(net, rel=1e-12)
    expected_positions = np.zeros(bars.height, dtype=np.int8)
    expected_positions[T + 1 : T + 4] = 1
    np.testing.assert_array_equal(log.positions, expected_positions)
    close = bars["close"].to_numpy()
    expected_returns = np.zeros(bars.height)
    expected_returns[T + 1] = (1 - F) * close[T + 1] / entry_fill - 1
    expected_returns[T + 2] = close[T + 2] / close[T + 1] - 1
    expected_returns[T + 3] = (1 - F) * exit_fill / close[T + 2] - 1
    np.testing.assert_allclose(log.bar_returns, expected_returns, rtol=1e-12, atol=1e-15)
    assert log.timestamps.equals(bars["timestamp"])
    assert (log.skipped_busy, log.skipped_flat, log.skipped_unusable) == (0, 0, 0)


@pytest.mark.parametrize(
    ("swing", "probs", "direction"),
    [
        ("low", REVERSION_P, 1),  # against a swing low: long
        ("high", REVERSION_P, -1),  # against a swing high: short
        ("low", BREAKOUT_P, -1),  # with a swing low: short
        ("high", BREAKOUT_P, 1),
    ],
)
def test_direction_and_take_profit_follow_the_predicted_class(
    swing: SwingType, probs: tuple[float, float, float], direction: int
) -> None:
    def future(up: float, lo: float) -> list[Bar]:
        mid = (up + lo) / 2
        touch = (
            (mid, up + 0.2, mid - 0.1, mid) if direction > 0 else (mid, mid + 0.1, lo - 0.2, mid)
        )
        return [quiet(mid), touch, quiet(mid), quiet(mid), quiet(mid)]

    bars, up, lo = scenario(swing, future)
    trade = only_trade(simulate_trades(bars, events((T, probs)), variant(swing), COSTS))
    take = up if direction > 0 else lo
    assert trade["direction"] == direction
    assert trade["exit_reason"] == "take_profit"
    assert trade["exit_time"] == stamp(T + 2)
    assert trade["entry_price"] == pytest.approx((up + lo) / 2 * (1 + direction * S), rel=1e-13)
    assert trade["exit_price"] == pytest.approx(take * (1 - direction * S), rel=1e-13)
    assert trade["gross_return"] > 0


@pytest.mark.parametrize(("probs", "direction"), [(BREAKOUT_P, 1), (REVERSION_P, -1)])
def test_a_bar_touching_both_barriers_is_a_stop(
    probs: tuple[float, float, float], direction: int
) -> None:
    def future(up: float, lo: float) -> list[Bar]:
        mid = (up + lo) / 2
        return [quiet(mid), (mid, up + 0.5, lo - 0.5, mid), quiet(mid), quiet(mid)]

    bars, up, lo = scenario("high", future)
    trade = only_trade(simulate_trades(bars, events((T, probs)), variant("high"), COSTS))
    stop = lo if direction > 0 else up
    assert trade["direction"] == direction
    assert trade["exit_reason"] == "stop"
    assert trade["exit_time"] == stamp(T + 2)
    assert trade["exit_price"] == pytest.approx(stop * (1 - direction * S), rel=1e-13)
    assert trade["gross_return"] < 0


@pytest.mark.parametrize(
    ("probs", "gap", "reason"),
    [
        (BREAKOUT_P, lambda up, lo: lo - 0.7, "stop"),  # long gaps down through its stop
        (BREAKOUT_P, lambda up, lo: up + 0.4, "take_profit"),  # long gaps up through its target
        (REVERSION_P, lambda up, lo: up + 0.7, "stop"),  # short gaps up through its stop
    ],
)
def test_a_gap_through_a_level_fills_at_the_open(
    probs: tuple[float, float, float], gap: Callable[[float, float], float], reason: str
) -> None:
    def future(up: float, lo: float) -> list[Bar]:
        mid, price = (up + lo) / 2, gap(up, lo)
        return [quiet(mid), (price, price + 0.1, price - 0.1, price), quiet(mid), quiet(mid)]

    bars, up, lo = scenario("high", future)
    trade = only_trade(simulate_trades(bars, events((T, probs)), variant("high"), COSTS))
    direction = trade["direction"]
    assert trade["exit_reason"] == reason
    assert trade["exit_time"] == stamp(T + 2)
    assert trade["exit_price"] == pytest.approx(gap(up, lo) * (1 - direction * S), rel=1e-13)


def test_a_gap_at_the_entry_bar_enters_and_exits_at_its_open() -> None:
    def future(up: float, lo: float) -> list[Bar]:
        return [quiet(lo - 1.0), quiet(lo - 1.0), quiet(lo - 1.0)]

    bars, up, lo = scenario("high", future)
    log = simulate_trades(bars, events((T, BREAKOUT_P)), variant("high"), COSTS)
    trade = only_trade(log)
    assert (trade["entry_time"], trade["exit_time"]) == (stamp(T + 1), stamp(T + 1))
    assert (trade["exit_reason"], trade["bars_held"], trade["gross_return"]) == ("stop", 1, 0.0)
    assert trade["net_return"] == pytest.approx((1 - F) ** 2 * (1 - S) / (1 + S) - 1, rel=1e-12)
    assert log.bar_returns[T + 1] == pytest.approx(trade["net_return"], rel=1e-12)


@pytest.mark.parametrize("extra", [0, 2])  # t+h is the last bar / there are bars after it
def test_untouched_barriers_exit_at_the_close_of_bar_t_plus_h(extra: int) -> None:
    def future(up: float, lo: float) -> list[Bar]:
        mid = (up + lo) / 2
        return [quiet(mid + 0.1 * k) for k in range(3 + extra)]

    bars, up, lo = scenario("high", future)
    trade = only_trade(simulate_trades(bars, events((T, BREAKOUT_P)), variant(horizon=3), COSTS))
    close = bars["close"].to_numpy()
    assert trade["exit_reason"] == "horizon"
    assert trade["exit_time"] == stamp(T + 3)
    assert trade["bars_held"] == 3
    assert trade["exit_price"] == pytest.approx(close[T + 3] * (1 - S), rel=1e-13)
    assert trade["gross_return"] == pytest.approx(close[T + 3] / close[T + 1] - 1, rel=1e-12)


def test_data_ending_before_the_horizon_exits_at_the_last_close() -> None:
    def future(up: float, lo: float) -> list[Bar]:
        mid = (up + lo) / 2
        return [quiet(mid), quiet(mid - 0.1), quiet(mid - 0.2)]

    bars, _, _ = scenario("low", future)
    log = simulate_trades(bars, events((T, BREAKOUT_P)), variant("low", horizon=10), COSTS)
    trade = only_trade(log)
    assert trade["direction"] == -1
    assert trade["exit_reason"] == "end_of_data"
    assert trade["exit_time"] == stamp(bars.height - 1)
    assert trade["bars_held"] == 3
    last_close = bars["close"][-1]
    assert trade["exit_price"] == pytest.approx(last_close * (1 + S), rel=1e-13)


def test_an_event_on_the_last_bar_cannot_enter() -> None:
    bars, _, _ = scenario("high", lambda up, lo: [])
    log = simulate_trades(bars, events((T, BREAKOUT_P)), variant("high"), COSTS)
    assert log.trades.height == 0
    assert log.skipped_unusable == 1
    assert not log.positions.any() and not log.bar_returns.any()


@pytest.mark.parametrize(
    ("probs", "min_confidence", "trades"),
    [
        ((0.2, 0.45, 0.35), 0.5, 0),  # below the confidence needed
        ((0.2, 0.5, 0.3), 0.5, 1),  # exactly at it
        (NEITHER_P, 0.0, 0),  # argmax neither
        ((0.4, 0.4, 0.2), 0.0, 0),  # a tie goes to neither
    ],
)
def test_neither_or_low_confidence_stays_flat(
    probs: tuple[float, float, float], min_confidence: float, trades: int
) -> None:
    bars, _, _ = scenario("high", lambda up, lo: [quiet((up + lo) / 2)] * 4)
    rule = TradeRule(min_confidence=min_confidence)
    log = simulate_trades(bars, events((T, probs)), variant("high"), rule)
    assert log.trades.height == trades
    assert log.skipped_flat == 1 - trades
    assert log.positions.any() == bool(trades)


def test_events_while_a_position_is_open_are_skipped() -> None:
    def future(up: float, lo: float) -> list[Bar]:
        mid = (up + lo) / 2
        return [quiet(mid), quiet(mid), (mid, up + 0.2, mid - 0.1, mid), *[quiet(mid)] * 8]

    bars, _, _ = scenario("high", future)
    # T trades and exits at T+3; T+1 would trade (busy), T+2 is flat, T+3 is the exit bar
    log = simulate_trades(
        bars,
        events((T, BREAKOUT_P), (T + 1, BREAKOUT_P), (T + 2, NEITHER_P), (T + 3, REVERSION_P)),
        variant("high"),
        COSTS,
    )
    assert log.trades["event_time"].to_list() == [stamp(T), stamp(T + 3)]
    assert log.trades["entry_time"].to_list() == [stamp(T + 1), stamp(T + 4)]
    assert log.trades["exit_time"][0] == stamp(T + 3)
    assert (log.skipped_busy, log.skipped_flat) == (1, 1)
    assert log.positions[T + 3] == 1 and log.positions[T + 4] == -1


# --- no look-ahead -------------------------------------------------------------------------


def random_bars(seed: int, n: int = 600) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    rows = list(zip(open_.tolist(), high.tolist(), low.tolist(), close.tolist(), strict=True))
    return frame(rows)


def random_events(seed: int, n: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed + 1)
    at = np.sort(rng.choice(np.arange(25, n), size=n // 5, replace=False))
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=len(at))
    return events(*((int(i), (p[0], p[1], p[2])) for i, p in zip(at, probs, strict=True)))


def test_entries_are_at_the_next_bars_open() -> None:
    checked = 0
    for swing in ("high", "low"):
        bars = random_bars(7)
        log = simulate_trades(bars, random_events(7, bars.height), variant(swing, 1.0, 8), COSTS)
        stamps, opens = bars["timestamp"].to_list(), bars["open"].to_numpy()
        for trade in log.trades.iter_rows(named=True):
            assert trade["entry_time"] > trade["event_time"]
            entry = stamps.index(trade["event_time"]) + 1
            assert trade["entry_time"] == stamps[entry]
            expected = opens[entry] * (1 + trade["direction"] * S)
            assert trade["entry_price"] == pytest.approx(expected, rel=1e-13)
            checked += 1
    assert checked >= 40


def test_bars_up_to_the_event_do_not_move_the_entry_price() -> None:
    def future(up: float, lo: float) -> list[Bar]:
        return [quiet((up + lo) / 2 + 0.05 * k) for k in range(6)]

    bars, _, _ = scenario("high", future)
    base = only_trade(simulate_trades(bars, events((T, BREAKOUT_P)), variant("high"), COSTS))
    rng = np.random.default_rng(3)
    upto = np.arange(bars.height) <= T
    noise = {
        c: bars[c].to_numpy() + rng.normal(0, 0.1, bars.height) * upto
        for c in ("open", "high", "low", "close")
    }
    changed = [
        # the event bar's close (it moves sigma and the lower barrier, not the entry)
        bars.with_columns(pl.col("close") - 0.4 * (pl.col("timestamp") == stamp(T))),
        # every open, high and low up to the event bar
        bars.with_columns(pl.Series(c, noise[c]) for c in ("open", "high", "low")),
        # every price up to the event bar
        bars.with_columns(pl.Series(c, v) for c, v in noise.items()),
    ]
    for other in changed:
        assert not other.equals(bars)
        trade = only_trade(simulate_trades(other, events((T, BREAKOUT_P)), variant("high"), COSTS))
        assert trade["entry_time"] == base["entry_time"]
        assert trade["entry_price"] == base["entry_price"]


def test_prices_after_a_trades_exit_do_not_change_it() -> None:
    bars = random_bars(11)
    chosen = random_events(11, bars.height)
    rule, var = COSTS, variant("low", 1.0, 8)
    base = simulate_trades(bars, chosen, var, rule).trades
    stamps = bars["timestamp"].to_list()
    checked = 0
    for trade in base.iter_rows(named=True):
        after = np.arange(bars.height) > stamps.index(trade["exit_time"])
        if not after.any():
            continue
        scale = np.where(after, 1.07, 1.0)
        moved = bars.with_columns(pl.col(c) * pl.Series(scale) for c in ("open", "high", "low"))
        moved = moved.with_columns(pl.col("close") * pl.Series(np.where(after, 0.93, 1.0)))
        again = simulate_trades(moved, chosen, var, rule).trades
        same = again.filter(pl.col("event_time") == trade["event_time"])
        assert same.height == 1
        assert same.row(0, named=True) == trade
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize(("probs", "direction"), [(BREAKOUT_P, 1), (REVERSION_P, -1)])
def test_entry_uses_the_next_open_not_the_event_close(
    probs: tuple[float, float, float], direction: int
) -> None:
    # bar T closes at 101.5, bar T+1 opens 3 points away; wide barriers so nothing is touched
    def future(up: float, lo: float) -> list[Bar]:
        return [(104.5, 104.8, 104.2, 104.6), quiet(104.0), quiet(103.8)]

    bars, up, lo = scenario("high", future, move=8.0)
    assert lo < 104.2 and up > 104.8
    trade = only_trade(simulate_trades(bars, events((T, probs)), variant("high", 8.0, 2), COSTS))
    assert trade["entry_price"] == pytest.approx(104.5 * (1 + direction * S), rel=1e-13)
    assert trade["entry_price"] != pytest.approx(101.5 * (1 + direction * S), rel=1e-6)
    assert trade["gross_return"] == pytest.approx(direction * (104.0 / 104.5 - 1), rel=1e-12)
    assert trade["exit_reason"] == "horizon"


# --- bar returns ---------------------------------------------------------------------------


def test_bar_returns_compound_to_each_trades_net_return() -> None:
    per_direction = {1: 0, -1: 0}
    for swing in ("high", "low"):
        bars = random_bars(5)
        log = simulate_trades(bars, random_events(5, bars.height), variant(swing, 1.0, 8), COSTS)
        stamps = bars["timestamp"].to_list()
        held = np.zeros(bars.height, dtype=bool)
        for trade in log.trades.iter_rows(named=True):
            entry, exit_ = stamps.index(trade["entry_time"]), stamps.index(trade["exit_time"])
            growth = np.prod(1 + log.bar_returns[entry : exit_ + 1])
            assert abs(growth - (1 + trade["net_return"])) < 1e-12
            assert (log.positions[entry : exit_ + 1] == trade["direction"]).all()
            held[entry : exit_ + 1] = True
            per_direction[trade["direction"]] += 1
        assert not log.positions[~held].any() and not log.bar_returns[~held].any()
    assert min(per_direction.values()) >= 10


def test_a_shorts_bar_returns_follow_its_equity() -> None:
    def future(up: float, lo: float) -> list[Bar]:
        mid = (up + lo) / 2
        return [quiet(mid), quiet(mid - 0.2), quiet(mid + 0.1), (mid, mid + 0.1, lo - 0.1, mid)]

    bars, up, lo = scenario("high", future)
    log = simulate_trades(bars, events((T, REVERSION_P)), variant("high"), COSTS)
    trade = only_trade(log)
    assert (trade["direction"], trade["exit_time"]) == (-1, stamp(T + 4))
    close, entry = bars["close"].to_numpy(), trade["entry_price"]
    equity = [1.0] + [(1 - F) * (2 - close[T + k] / entry) for k in (1, 2, 3)]
    equity.append((1 - F) ** 2 * (2 - trade["exit_price"] / entry))
    expected = np.array(equity[1:]) / np.array(equity[:-1]) - 1
    np.testing.assert_allclose(log.bar_returns[T + 1 : T + 5], expected, rtol=1e-12)
    assert trade["exit_price"] == pytest.approx(lo * (1 + S), rel=1e-13)
    assert trade["net_return"] == pytest.approx(equity[-1] - 1, rel=1e-12)


# --- bad input -----------------------------------------------------------------------------


def test_an_event_off_the_bars_is_a_data_error_naming_it() -> None:
    bars, _, _ = scenario("high", lambda up, lo: [quiet(up)] * 3)
    bad = stamp(T) + timedelta(minutes=30)
    chosen = events((T, BREAKOUT_P)).vstack(
        events((T, BREAKOUT_P)).with_columns(pl.lit(bad).alias("timestamp"))
    )
    with pytest.raises(DataError, match=str(bad)):
        simulate_trades(bars, chosen, variant("high"), COSTS)


def test_unsorted_bars_and_missing_columns_are_data_errors() -> None:
    bars, _, _ = scenario("high", lambda up, lo: [quiet(up)] * 3)
    with pytest.raises(DataError, match="sorted"):
        simulate_trades(bars.reverse(), events((T, BREAKOUT_P)), variant("high"), COSTS)
    with pytest.raises(DataError, match="p_reversion"):
        simulate_trades(bars, events((T, BREAKOUT_P)).drop("p_reversion"), variant(), COSTS)


@pytest.mark.parametrize(
    ("field", "value"),
    [("fee_bps", -1.0), ("slippage_bps", -0.5), ("min_confidence", 1.0), ("min_confidence", -0.1)],
)
def test_bad_rule_values_are_config_errors_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        TradeRule(**{field: value})

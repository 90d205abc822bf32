"""Real-data edge cases the validation catches: long gaps between bars (a warning per symbol)
and timestamps that are epoch milliseconds read as seconds (refused)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from alphafactory.data.bars import GAP_FACTOR, LATEST_TIMESTAMP, load_bars, validate_bars
from alphafactory.errors import DataError

T0 = datetime(2020, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
LOGGER = "alphafactory.data.bars"


def _bars(symbol: str, stamps: list[datetime]) -> pl.DataFrame:
    n_bars = len(stamps)
    return pl.DataFrame(
        {
            "timestamp": stamps,
            "symbol": [symbol] * n_bars,
            "open": [100.0] * n_bars,
            "high": [101.0] * n_bars,
            "low": [99.0] * n_bars,
            "close": [100.5] * n_bars,
            "volume": [1.0] * n_bars,
        }
    )


def _daily(start: datetime, n_bars: int) -> list[datetime]:
    return [start + i * DAY for i in range(n_bars)]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]


def test_a_one_year_gap_is_one_warning_naming_symbol_gap_and_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = _daily(T0, 30)
    after = _daily(before[-1] + timedelta(days=366), 30)
    frame = pl.concat([_bars("SPX", before + after), _bars("NDX", _daily(T0, 60))])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        validate_bars(frame, "index.csv")
    assert _warnings(caplog) == [
        "index.csv: symbol SPX has 1 gap(s) longer than 20x its median bar interval "
        "1 day, 0:00:00; the largest, 366 days, 0:00:00, between 2020-01-30 00:00:00+00:00 "
        "and 2021-01-30 00:00:00+00:00; check the data for missing bars"
    ]


def test_many_gaps_of_one_symbol_are_one_line_with_the_largest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stamps = _daily(T0, 20)
    for gap_days in (30, 90, 45):
        stamps += _daily(stamps[-1] + timedelta(days=gap_days), 20)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        validate_bars(_bars("IBM", stamps), "ibm.parquet")
    # blocks: Jan 1-20, Feb 19-Mar 9, Jun 7-26, Aug 10-29
    assert _warnings(caplog) == [
        "ibm.parquet: symbol IBM has 3 gap(s) longer than 20x its median bar interval "
        "1 day, 0:00:00; the largest, 90 days, 0:00:00, between 2020-03-09 00:00:00+00:00 "
        "and 2020-06-07 00:00:00+00:00; check the data for missing bars"
    ]


def test_weekends_and_holidays_of_daily_stock_bars_do_not_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    weekdays = [d for d in _daily(T0, 400) if d.weekday() < 5]
    trading = [d for d in weekdays if d.strftime("%m-%d") not in {"01-01", "07-04", "12-25"}]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        validate_bars(_bars("AAPL", trading), "aapl.csv")
    assert _warnings(caplog) == []


def test_gap_just_above_the_factor_warns_and_at_it_does_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    at_limit = _daily(T0, 10) + _daily(T0 + timedelta(days=9 + GAP_FACTOR), 10)
    above = _daily(T0, 10) + _daily(T0 + timedelta(days=9 + GAP_FACTOR + 1), 10)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        validate_bars(_bars("AT", at_limit), "x")
        assert _warnings(caplog) == []
        validate_bars(_bars("ABOVE", above), "x")
    assert [line.split(" has ")[0] for line in _warnings(caplog)] == ["x: symbol ABOVE"]


def _milliseconds_read_as_seconds(n_bars: int) -> pl.Series:
    hourly_ms = [int((T0 + timedelta(hours=i)).timestamp() * 1000) for i in range(n_bars)]
    return pl.from_epoch(pl.Series("timestamp", hourly_ms), time_unit="s")


def test_epoch_milliseconds_read_as_seconds_are_refused() -> None:
    stamps = _milliseconds_read_as_seconds(5)
    assert stamps.diff()[1] == timedelta(seconds=3600 * 1000)  # the probe's 41-day interval
    frame = _bars("BTC", _daily(T0, 5)).with_columns(stamps)
    with pytest.raises(DataError) as caught:
        validate_bars(frame, "btc.parquet")
    assert str(caught.value) == (
        "btc.parquet: row 1 (symbol BTC, timestamp +51969-08-29 00:00:00.000000+00:00) "
        f"lies after {LATEST_TIMESTAMP.year}; timestamps look like epoch milliseconds read as "
        "seconds; convert them with the unit 'ms' (pl.from_epoch(column, time_unit='ms')) or "
        "store the epoch integers, which load by magnitude"
    )


def test_a_parquet_file_with_misread_milliseconds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    _bars("ETH", _daily(T0, 4)).with_columns(_milliseconds_read_as_seconds(4)).write_parquet(path)
    with pytest.raises(DataError, match="timestamps look like epoch milliseconds read as seconds"):
        load_bars(str(path))


def test_the_last_day_before_the_limit_loads() -> None:
    stamps = [LATEST_TIMESTAMP - timedelta(hours=2), LATEST_TIMESTAMP - timedelta(hours=1)]
    assert validate_bars(_bars("BTC", stamps), "x")["timestamp"].to_list() == stamps

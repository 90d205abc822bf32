"""Validation of OHLCV bars: required columns, parsing, values, order, time scale and gaps.

Positions in error messages count from 1 as people do: a CSV file's bar is named by its file
line (the header is line 1, so the first bar is line 2); any other input's by its 1-based row
in the input order. Symbols must be safe names (they become file and
model names). Timestamps after 2100 are refused as epoch milliseconds read as seconds;
gaps longer than :data:`GAP_FACTOR` times a symbol's median bar interval are logged as
warnings, one line per symbol.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import polars as pl

from alphafactory.errors import DataError, first_line
from alphafactory.names import SAFE_NAME_RULE, is_safe_name

__all__ = [
    "CSV_FIRST_BAR_LINE",
    "GAP_FACTOR",
    "NO_DETAILS",
    "LATEST_TIMESTAMP",
    "NUMERIC_COLUMNS",
    "PRICE_COLUMNS",
    "REQUIRED_COLUMNS",
    "parse_timestamps",
    "select_required",
    "validate_bars",
]

logger = logging.getLogger("alphafactory.data.bars")

#: What a data error says of an exception without a message.
NO_DETAILS = "no details"

REQUIRED_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
NUMERIC_COLUMNS = (*PRICE_COLUMNS, "volume")
# Epoch integers: below 1e11 are seconds (to year 5138), below 1e14 milliseconds, and so on.
_EPOCH_UNITS: tuple[tuple[float, Literal["s", "ms", "us", "ns"]], ...] = (
    (1e11, "s"),
    (1e14, "ms"),
    (1e17, "us"),
    (float("inf"), "ns"),
)
#: A gap longer than this many median bar intervals of its symbol is logged as a warning:
#: above weekends and holidays of daily bars (at most about 5x), below a missing month (20x).
#: Intraday bars of markets that close (a 5-minute bar's weekend is 786x) warn once per symbol.
GAP_FACTOR = 20
#: Later timestamps are refused: epoch milliseconds (or a pandas/polars conversion with the
#: wrong unit) read as seconds land after the year 5000. No lower bound: daily index history
#: reaches back to the 1920s.
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=UTC)
#: The file line of a CSV file's first bar: line 1 is the header.
CSV_FIRST_BAR_LINE = 2


@dataclass(frozen=True)
class _Source:
    """The data's name in messages, and how a 0-based input position is named to a person."""

    name: str
    first_line: int | None = None
    """The file line of position 0 (text files); None names 1-based rows instead."""

    def __str__(self) -> str:
        return self.name

    def at(self, position: int) -> str:
        if self.first_line is None:
            return f"row {position + 1}"
        return f"line {position + self.first_line}"


# -------------------------------------------------------------------------------- validation


def validate_bars(
    frame: pl.DataFrame, source: str, *, first_line: int | None = None
) -> pl.DataFrame:
    """Check bars and return them in canonical form.

    Canonical form: columns :data:`REQUIRED_COLUMNS` in that order (extra columns dropped),
    ``timestamp`` as Datetime("us", "UTC") (naive values are taken as UTC; integers as epoch
    seconds or milliseconds, decided by magnitude), ``symbol`` as String, OHLCV as Float64,
    sorted by symbol then timestamp.

    Args:
        frame: Bars as read from a file or produced in memory.
        source: Name of the data (file or URI) used in error messages.
        first_line: The file line of the first row (:data:`CSV_FIRST_BAR_LINE` for a CSV
            file): messages then name file lines; None names 1-based rows.

    Raises:
        DataError: One line naming the source, the column/row/value and the fix.
    """
    where = _Source(source, first_line)
    bars = select_required(frame, source)
    if bars.height == 0:
        raise DataError(f"{source}: no rows; provide at least one bar per symbol")
    bars = bars.with_columns(
        parse_timestamps(bars["timestamp"], where),
        _parse_symbols(bars["symbol"], where),
        *(_parse_numbers(bars[column], where) for column in NUMERIC_COLUMNS),
    )
    _check_missing_values(bars, where)
    _check_values(bars, where)
    _check_order(bars, where)
    _check_time_scale(bars, where)
    bars = bars.sort("symbol", "timestamp", maintain_order=True)
    _warn_on_gaps(bars, source)
    return bars


def select_required(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing}; found {frame.columns}; "
            f"the file needs columns {list(REQUIRED_COLUMNS)}"
        )
    return frame.select(REQUIRED_COLUMNS)


def _first_index(mask: pl.Series) -> int | None:
    positions = mask.fill_null(False).arg_true()
    return int(positions[0]) if positions.len() else None


def parse_timestamps(values: pl.Series, source: str | _Source) -> pl.Series:
    dtype = values.dtype
    if dtype == pl.String:
        parsed = _timestamps_from_strings(values, source)
    elif dtype.is_integer():
        parsed = _timestamps_from_epoch(values.cast(pl.Int64))
    elif isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        parsed = values.cast(pl.Datetime("us", getattr(dtype, "time_zone", None)))
    else:
        raise DataError(
            f"{source}: column 'timestamp' has type {dtype}; "
            "use datetimes, ISO 8601 strings or integer epoch seconds/milliseconds"
        )
    parsed = _to_utc(parsed)
    row = _first_index(parsed.is_null())
    if row is not None:
        raise DataError(
            f"{source}: column 'timestamp' {_at(source, row)} has value {values[row]!r}, "
            "not a timestamp; "
            "use one ISO 8601 format (2019-01-01T00:00:00Z) or integer epoch seconds/milliseconds"
        )
    return parsed.alias("timestamp")


def _timestamps_from_strings(values: pl.Series, source: str | _Source) -> pl.Series:
    stripped = values.str.strip_chars()
    non_null = stripped.drop_nulls()
    if non_null.len() and non_null.str.contains(r"^-?\d+$").all():
        return _timestamps_from_epoch(stripped.cast(pl.Int64))
    try:
        return stripped.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
    except pl.exceptions.PolarsError as error:
        raise DataError(
            f"{source}: column 'timestamp' cannot be parsed ({first_line(error, NO_DETAILS)}); "
            "use one ISO 8601 format (2019-01-01T00:00:00Z) or integer epoch seconds/milliseconds"
        ) from error


def _timestamps_from_epoch(values: pl.Series) -> pl.Series:
    magnitude = values.abs().max()
    largest = float(magnitude) if isinstance(magnitude, int | float) else 0.0
    unit = next(unit for limit, unit in _EPOCH_UNITS if largest < limit)
    return pl.from_epoch(values, time_unit=unit).cast(pl.Datetime("us"))


def _to_utc(values: pl.Series) -> pl.Series:
    dtype = values.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return values.dt.convert_time_zone("UTC")
    return values.dt.replace_time_zone("UTC")


def _parse_symbols(values: pl.Series, source: str | _Source) -> pl.Series:
    symbols = values.cast(pl.String)
    row = _first_index(symbols.is_null() | (symbols.str.strip_chars() == ""))
    if row is not None:
        raise DataError(
            f"{source}: column 'symbol' {_at(source, row)} is empty; fill in or drop that row"
        )
    unsafe = [symbol for symbol in symbols.unique().to_list() if not is_safe_name(symbol)]
    row = _first_index(symbols.is_in(unsafe)) if unsafe else None
    if row is not None:
        raise DataError(
            f"{source}: column 'symbol' {_at(source, row)} has value {symbols[row]!r}, "
            "not a safe name (it becomes file and model names); "
            f"rename the symbol to {SAFE_NAME_RULE}"
        )
    return symbols.alias("symbol")


def _parse_numbers(values: pl.Series, source: str | _Source) -> pl.Series:
    column = values.name
    if values.dtype.is_numeric():
        return values.cast(pl.Float64)
    if values.dtype == pl.String:
        parsed = values.str.strip_chars().cast(pl.Float64, strict=False)
        row = _first_index(parsed.is_null() & values.is_not_null())
        if row is None:
            return parsed
        raise DataError(
            f"{source}: column '{column}' {_at(source, row)} has value {values[row]!r}, "
            "not a number; fix or remove that row"
        )
    raise DataError(
        f"{source}: column '{column}' has type {values.dtype}; it must hold numbers (Float64)"
    )


def _at(source: str | _Source, row: int) -> str:
    return (source if isinstance(source, _Source) else _Source(source)).at(row)


def _bar(bars: pl.DataFrame, source: _Source, row: int) -> str:
    stamp = bars["timestamp"][row]
    return f"{source.at(row)} (symbol {bars['symbol'][row]}, timestamp {stamp})"


def _check_missing_values(bars: pl.DataFrame, source: _Source) -> None:
    for column in NUMERIC_COLUMNS:
        row = _first_index(bars[column].is_null() | bars[column].is_nan())
        if row is not None:
            raise DataError(
                f"{source}: {_bar(bars, source, row)} has a missing value in '{column}'; "
                "fill or drop incomplete bars"
            )
        row = _first_index(bars[column].is_infinite())
        if row is not None:
            raise DataError(
                f"{source}: {_bar(bars, source, row)} has an infinite '{column}'; "
                "fix or drop that bar"
            )


def _check_values(bars: pl.DataFrame, source: _Source) -> None:
    for column in PRICE_COLUMNS:
        row = _first_index(bars[column] <= 0)
        if row is not None:
            raise DataError(
                f"{source}: {_bar(bars, source, row)} has {column} {bars[column][row]} <= 0; "
                "prices must be positive, fix or drop that bar"
            )
    row = _first_index(bars["volume"] < 0)
    if row is not None:
        raise DataError(
            f"{source}: {_bar(bars, source, row)} has negative volume {bars['volume'][row]}; "
            "volume must be >= 0, fix or drop that bar"
        )
    _check_ohlc(bars, source)


def _check_ohlc(bars: pl.DataFrame, source: _Source) -> None:
    body_top = pl.max_horizontal("open", "close")
    body_bottom = pl.min_horizontal("open", "close")
    rules = (
        (pl.col("high") < pl.col("low"), "high < low"),
        (pl.col("high") < body_top, "high < max(open, close)"),
        (pl.col("low") > body_bottom, "low > min(open, close)"),
    )
    for broken, rule in rules:
        row = _first_index(bars.select(broken).to_series())
        if row is None:
            continue
        open_, high, low, close = (bars[column][row] for column in PRICE_COLUMNS)
        raise DataError(
            f"{source}: {_bar(bars, source, row)} is an impossible bar ({rule}: open {open_}, "
            f"high {high}, low {low}, close {close}); fix or drop that bar"
        )


def _check_order(bars: pl.DataFrame, source: _Source) -> None:
    duplicated = bars.select(pl.struct("symbol", "timestamp").is_duplicated()).to_series()
    row = _first_index(duplicated)
    if row is not None:
        raise DataError(
            f"{source}: {_bar(bars, source, row)} is duplicated (same symbol and timestamp); "
            "drop duplicates so each (symbol, timestamp) appears once"
        )
    steps = bars.select(pl.col("timestamp").diff().over("symbol")).to_series()
    row = _first_index(steps <= timedelta(0))
    if row is not None:
        raise DataError(
            f"{source}: {_bar(bars, source, row)} is earlier than the previous bar of that "
            "symbol; timestamps must increase, sort the file by symbol, timestamp"
        )


def _check_time_scale(bars: pl.DataFrame, source: _Source) -> None:
    row = _first_index(bars["timestamp"] >= LATEST_TIMESTAMP)
    if row is not None:
        # As polars text: Python's datetime ends at the year 9999.
        stamp = bars["timestamp"].cast(pl.String)[row]
        raise DataError(
            f"{source}: {source.at(row)} (symbol {bars['symbol'][row]}, timestamp {stamp}) "
            f"lies after {LATEST_TIMESTAMP.year}; "
            "timestamps look like epoch milliseconds read as seconds; convert them with the "
            "unit 'ms' (pl.from_epoch(column, time_unit='ms')) or store the epoch integers, "
            "which load by magnitude"
        )


def _warn_on_gaps(bars: pl.DataFrame, source: str) -> None:
    """One warning per symbol with gaps above GAP_FACTOR x its median interval (bars sorted)."""
    step = pl.col("timestamp").diff().over("symbol")
    gaps = (
        bars.select("symbol", "timestamp", step.alias("step"))
        .with_columns(pl.col("step").median().over("symbol").alias("median"))
        .filter(pl.col("step") > pl.col("median") * GAP_FACTOR)
        .group_by("symbol", maintain_order=True)
        .agg(
            pl.len().alias("count"),
            pl.col("median").first(),
            pl.col("step").max().alias("largest"),
            pl.col("timestamp").sort_by("step").last().alias("end"),
        )
    )
    for symbol, count, median, largest, end in gaps.iter_rows():
        logger.warning(
            "%s: symbol %s has %d gap(s) longer than %dx its median bar interval %s; the "
            "largest, %s, between %s and %s; check the data for missing bars",
            source, symbol, count, GAP_FACTOR, median, largest, end - largest, end,
        )  # fmt: skip

"""Validation of OHLCV bars: required columns, parsing, values, order, time scale and gaps.

Row numbers in error messages are 0-based positions in the input frame (for a CSV file: the
data row, not counting the header line). Symbols must be safe names (they become file and
model names). Timestamps after 2100 are refused as epoch milliseconds read as seconds;
gaps longer than :data:`GAP_FACTOR` times a symbol's median bar interval are logged as
warnings, one line per symbol.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Literal

import polars as pl

from alphafactory.errors import DataError, first_line
from alphafactory.names import SAFE_NAME_RULE, is_safe_name

__all__ = [
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


# -------------------------------------------------------------------------------- validation


def validate_bars(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """Check bars and return them in canonical form.

    Canonical form: columns :data:`REQUIRED_COLUMNS` in that order (extra columns dropped),
    ``timestamp`` as Datetime("us", "UTC") (naive values are taken as UTC; integers as epoch
    seconds or milliseconds, decided by magnitude), ``symbol`` as String, OHLCV as Float64,
    sorted by symbol then timestamp.

    Args:
        frame: Bars as read from a file or produced in memory.
        source: Name of the data (file or URI) used in error messages.

    Raises:
        DataError: One line naming the source, the column/row/value and the fix.
    """
    bars = select_required(frame, source)
    if bars.height == 0:
        raise DataError(f"{source}: no rows; provide at least one bar per symbol")
    bars = bars.with_columns(
        parse_timestamps(bars["timestamp"], source),
        _parse_symbols(bars["symbol"], source),
        *(_parse_numbers(bars[column], source) for column in NUMERIC_COLUMNS),
    )
    _check_missing_values(bars, source)
    _check_values(bars, source)
    _check_order(bars, source)
    _check_time_scale(bars, source)
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


def parse_timestamps(values: pl.Series, source: str) -> pl.Series:
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
            f"{source}: column 'timestamp' row {row} has value {values[row]!r}, not a timestamp; "
            "use one ISO 8601 format (2019-01-01T00:00:00Z) or integer epoch seconds/milliseconds"
        )
    return parsed.alias("timestamp")


def _timestamps_from_strings(values: pl.Series, source: str) -> pl.Series:
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


def _parse_symbols(values: pl.Series, source: str) -> pl.Series:
    symbols = values.cast(pl.String)
    row = _first_index(symbols.is_null() | (symbols.str.strip_chars() == ""))
    if row is not None:
        raise DataError(f"{source}: column 'symbol' row {row} is empty; fill in or drop that row")
    unsafe = [symbol for symbol in symbols.unique().to_list() if not is_safe_name(symbol)]
    row = _first_index(symbols.is_in(unsafe)) if unsafe else None
    if row is not None:
        raise DataError(
            f"{source}: column 'symbol' row {row} has value {symbols[row]!r}, not a safe name "
            f"(it becomes file and model names); rename the symbol to {SAFE_NAME_RULE}"
        )
    return symbols.alias("symbol")


def _parse_numbers(values: pl.Series, source: str) -> pl.Series:
    column = values.name
    if values.dtype.is_numeric():
        return values.cast(pl.Float64)
    if values.dtype == pl.String:
        parsed = values.str.strip_chars().cast(pl.Float64, strict=False)
        row = _first_index(parsed.is_null() & values.is_not_null())
        if row is None:
            return parsed
        raise DataError(
            f"{source}: column '{column}' row {row} has value {values[row]!r}, not a number; "
            "fix or remove that row"
        )
    raise DataError(
        f"{source}: column '{column}' has type {values.dtype}; it must hold numbers (Float64)"
    )


def _describe_row(bars: pl.DataFrame, row: int) -> str:
    return f"row {row} (symbol {bars['symbol'][row]}, timestamp {bars['timestamp'][row]})"


def _check_missing_values(bars: pl.DataFrame, source: str) -> None:
    for column in NUMERIC_COLUMNS:
        row = _first_index(bars[column].is_null() | bars[column].is_nan())
        if row is not None:
            raise DataError(
                f"{source}: {_describe_row(bars, row)} has a missing value in '{column}'; "
                "fill or drop incomplete bars"
            )
        row = _first_index(bars[column].is_infinite())
        if row is not None:
            raise DataError(
                f"{source}: {_describe_row(bars, row)} has an infinite '{column}'; "
                "fix or drop that bar"
            )


def _check_values(bars: pl.DataFrame, source: str) -> None:
    for column in PRICE_COLUMNS:
        row = _first_index(bars[column] <= 0)
        if row is not None:
            raise DataError(
                f"{source}: {_describe_row(bars, row)} has {column} {bars[column][row]} <= 0; "
                "prices must be positive, fix or drop that bar"
            )
    row = _first_index(bars["volume"] < 0)
    if row is not None:
        raise DataError(
            f"{source}: {_describe_row(bars, row)} has negative volume {bars['volume'][row]}; "
            "volume must be >= 0, fix or drop that bar"
        )
    _check_ohlc(bars, source)


def _check_ohlc(bars: pl.DataFrame, source: str) -> None:
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
            f"{source}: {_describe_row(bars, row)} is an impossible bar ({rule}: open {open_}, "
            f"high {high}, low {low}, close {close}); fix or drop that bar"
        )


def _check_order(bars: pl.DataFrame, source: str) -> None:
    duplicated = bars.select(pl.struct("symbol", "timestamp").is_duplicated()).to_series()
    row = _first_index(duplicated)
    if row is not None:
        raise DataError(
            f"{source}: {_describe_row(bars, row)} is duplicated (same symbol and timestamp); "
            "drop duplicates so each (symbol, timestamp) appears once"
        )
    steps = bars.select(pl.col("timestamp").diff().over("symbol")).to_series()
    row = _first_index(steps <= timedelta(0))
    if row is not None:
        raise DataError(
            f"{source}: {_describe_row(bars, row)} is earlier than the previous bar of that "
            "symbol; timestamps must increase, sort the file by symbol, timestamp"
        )


def _check_time_scale(bars: pl.DataFrame, source: str) -> None:
    row = _first_index(bars["timestamp"] >= LATEST_TIMESTAMP)
    if row is not None:
        # As polars text: Python's datetime ends at the year 9999.
        stamp = bars["timestamp"].cast(pl.String)[row]
        raise DataError(
            f"{source}: row {row} (symbol {bars['symbol'][row]}, timestamp {stamp}) lies after "
            f"{LATEST_TIMESTAMP.year}; "
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

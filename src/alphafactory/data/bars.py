"""Load, validate, write and fingerprint OHLCV bars on any fsspec URI (local, memory://, gs://).

Row numbers in error messages are 0-based positions in the input frame (for a CSV file: the
data row, not counting the header line).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import posixpath
import uuid
from datetime import timedelta
from typing import Any, Literal

import fsspec
import numpy as np
import polars as pl

from alphafactory.errors import DataError

__all__ = [
    "REQUIRED_COLUMNS",
    "data_hash",
    "infer_frequency",
    "load_bars",
    "validate_bars",
    "write_bars",
]

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
NUMERIC_COLUMNS = (*PRICE_COLUMNS, "volume")

_FileFormat = Literal["parquet", "csv", "csv.gz"]
_SUFFIXES: tuple[tuple[str, _FileFormat], ...] = (
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".csv.gz", "csv.gz"),
    (".csv", "csv"),
)
_CLOUD_HINT = "pip install 'alphafactory[cloud]'"
# Object stores publish an object only once its upload completes, so no temporary name.
_RENAMING_PROTOCOLS = {"file", "local", "memory"}
# Epoch integers: below 1e11 are seconds (to year 5138), below 1e14 milliseconds, and so on.
_EPOCH_UNITS: tuple[tuple[float, Literal["s", "ms", "us", "ns"]], ...] = (
    (1e11, "s"),
    (1e14, "ms"),
    (1e17, "us"),
    (float("inf"), "ns"),
)
_HASH_VERSION = b"alphafactory-bars-v1"


# --------------------------------------------------------------------------------------- I/O


def load_bars(uri: str, *, storage_options: dict[str, Any] | None = None) -> pl.DataFrame:
    """Read parquet (``.parquet``, ``.pq``) or CSV (``.csv``, ``.csv.gz``) bars and validate them.

    Args:
        uri: A local path or fsspec URI (``file://``, ``memory://``, ``gs://``...).
        storage_options: Passed to the fsspec filesystem (credentials, project...).

    Returns:
        The frame returned by :func:`validate_bars`.

    Raises:
        DataError: Unknown extension, missing or unreadable file, or invalid bars.
    """
    file_format = _file_format(uri)
    filesystem, path = _filesystem(uri, storage_options)
    if not _exists(filesystem, path, uri):
        raise DataError(f"{uri}: file not found; check the path or write the bars there first")
    try:
        with filesystem.open(path, "rb") as handle:
            payload = handle.read()
        frame = _parse(payload, file_format)
    except DataError:
        raise
    except Exception as error:  # readers raise many types; all mean "cannot read this file"
        raise DataError(
            f"{uri}: cannot read as {file_format} ({type(error).__name__}: {_first_line(error)}); "
            "check that the file is complete and really is that format"
        ) from error
    logger.info("loaded %d rows from %s", frame.height, uri)
    return validate_bars(frame, uri)


def write_bars(frame: pl.DataFrame, uri: str) -> None:
    """Validate ``frame`` and write it as parquet or CSV (by extension) to ``uri``.

    On local and in-memory filesystems the file is written under a temporary name and then
    renamed, so readers never see a partial file.
    """
    file_format = _file_format(uri)
    bars = validate_bars(frame, uri)
    payload = _serialise(bars, file_format)
    filesystem, path = _filesystem(uri, None)
    parent = posixpath.dirname(path)
    if parent:
        filesystem.makedirs(parent, exist_ok=True)
    if _protocol(filesystem) in _RENAMING_PROTOCOLS:
        temporary = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
        try:
            _write_payload(filesystem, temporary, payload)
            filesystem.mv(temporary, path)
        finally:
            if filesystem.exists(temporary):
                filesystem.rm(temporary)
    else:
        _write_payload(filesystem, path, payload)
    logger.info("wrote %d rows to %s", bars.height, uri)


def _file_format(uri: str) -> _FileFormat:
    lowered = uri.lower()
    for suffix, file_format in _SUFFIXES:
        if lowered.endswith(suffix):
            return file_format
    raise DataError(
        f"{uri}: unknown file extension; name the file *.parquet, *.pq, *.csv or *.csv.gz"
    )


def _filesystem(
    uri: str, storage_options: dict[str, Any] | None
) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        filesystem, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except ImportError as error:
        raise DataError(
            f"{uri}: the filesystem for this URI is not installed ({_first_line(error)}); "
            f"{_CLOUD_HINT}"
        ) from error
    except ValueError as error:
        raise DataError(f"{uri}: not a usable URI ({_first_line(error)})") from error
    return filesystem, path


def _exists(filesystem: fsspec.AbstractFileSystem, path: str, uri: str) -> bool:
    try:
        return bool(filesystem.exists(path))
    except Exception as error:  # network, DNS and credential failures of remote filesystems
        raise DataError(
            f"{uri}: cannot reach the file ({type(error).__name__}: {_first_line(error)}); "
            "check the network, the credentials and storage_options"
        ) from error


def _protocol(filesystem: fsspec.AbstractFileSystem) -> str:
    protocol = filesystem.protocol
    return protocol if isinstance(protocol, str) else protocol[0]


def _parse(payload: bytes, file_format: _FileFormat) -> pl.DataFrame:
    if file_format == "parquet":
        return pl.read_parquet(io.BytesIO(payload))
    if file_format == "csv.gz":
        payload = gzip.decompress(payload)
    # Everything as text: validate_bars then casts with messages that name the bad value.
    return pl.read_csv(io.BytesIO(payload), infer_schema=False)


def _serialise(bars: pl.DataFrame, file_format: _FileFormat) -> bytes:
    buffer = io.BytesIO()
    if file_format == "parquet":
        bars.write_parquet(buffer)
        return buffer.getvalue()
    bars.write_csv(buffer, datetime_format="%Y-%m-%dT%H:%M:%S%.6fZ")
    text = buffer.getvalue()
    # mtime=0 keeps the gzip bytes identical for identical bars.
    return gzip.compress(text, mtime=0) if file_format == "csv.gz" else text


def _write_payload(filesystem: fsspec.AbstractFileSystem, path: str, payload: bytes) -> None:
    with filesystem.open(path, "wb") as handle:
        handle.write(payload)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no details"


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
    bars = _select_required(frame, source)
    if bars.height == 0:
        raise DataError(f"{source}: no rows; provide at least one bar per symbol")
    bars = bars.with_columns(
        _parse_timestamps(bars["timestamp"], source),
        _parse_symbols(bars["symbol"], source),
        *(_parse_numbers(bars[column], source) for column in NUMERIC_COLUMNS),
    )
    _check_missing_values(bars, source)
    _check_values(bars, source)
    _check_order(bars, source)
    return bars.sort("symbol", "timestamp", maintain_order=True)


def _select_required(frame: pl.DataFrame, source: str) -> pl.DataFrame:
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


def _parse_timestamps(values: pl.Series, source: str) -> pl.Series:
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
            f"{source}: column 'timestamp' cannot be parsed ({_first_line(error)}); "
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


# ----------------------------------------------------------------------- frequency and hash


def infer_frequency(frame: pl.DataFrame) -> timedelta:
    """Median spacing between consecutive bars of the same symbol."""
    steps = (
        frame.select("symbol", "timestamp")
        .sort("symbol", "timestamp")
        .select(pl.col("timestamp").diff().over("symbol").alias("step"))
        .drop_nulls()
        .to_series()
    )
    if steps.len() == 0:
        raise DataError("cannot infer the bar frequency: no symbol has two bars; provide more bars")
    median = steps.median()
    if not isinstance(median, timedelta):
        raise DataError("cannot infer the bar frequency: timestamps are not datetimes")
    return median


def data_hash(frame: pl.DataFrame) -> str:
    """Stable sha256 hex digest of the bars' content, independent of the input row order.

    The digest covers only the required columns in canonical dtypes, hashed from raw
    little-endian values, so it does not change with polars/pyarrow versions.
    """
    bars = _canonical_for_hash(frame)
    digest = hashlib.sha256(_HASH_VERSION)
    runs = bars.select(pl.col("symbol").rle()).unnest("symbol")
    for symbol, count in zip(runs["value"].to_list(), runs["len"].to_list(), strict=True):
        encoded = symbol.encode("utf-8")
        digest.update(
            len(encoded).to_bytes(8, "little") + encoded + int(count).to_bytes(8, "little")
        )
    timestamps = bars["timestamp"].dt.epoch("us").to_numpy()
    digest.update(np.ascontiguousarray(timestamps, dtype="<i8").tobytes())
    for column in NUMERIC_COLUMNS:
        # + 0.0 maps -0.0 to 0.0 so equal numbers hash equally.
        values = bars[column].to_numpy() + 0.0
        digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()


def _canonical_for_hash(frame: pl.DataFrame) -> pl.DataFrame:
    source = "data_hash input"
    bars = _select_required(frame, source)
    return bars.with_columns(
        _parse_timestamps(bars["timestamp"], source),
        pl.col("symbol").cast(pl.String),
        *(pl.col(column).cast(pl.Float64) for column in NUMERIC_COLUMNS),
    ).sort("symbol", "timestamp", *NUMERIC_COLUMNS)

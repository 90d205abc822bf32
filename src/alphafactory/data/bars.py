"""Load, validate, write and fingerprint OHLCV bars on any fsspec URI (local, memory://, gs://).

The validation rules live in :mod:`alphafactory.data._validation`.
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

from alphafactory.data._validation import (
    CSV_FIRST_BAR_LINE,
    GAP_FACTOR,
    LATEST_TIMESTAMP,
    NO_DETAILS,
    NUMERIC_COLUMNS,
    REQUIRED_COLUMNS,
    parse_timestamps,
    select_required,
    validate_bars,
)
from alphafactory.errors import DataError, first_line
from alphafactory.names import CREDENTIALS_HINT, redact_uri, uri_has_credentials

__all__ = [
    "GAP_FACTOR",
    "LATEST_TIMESTAMP",
    "NUMERIC_COLUMNS",
    "REQUIRED_COLUMNS",
    "data_hash",
    "infer_frequency",
    "load_bars",
    "validate_bars",
    "write_bars",
]

logger = logging.getLogger(__name__)


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
    if uri_has_credentials(uri):
        raise DataError(f"{redact_uri(uri)}: {CREDENTIALS_HINT}, or in storage_options")
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
            f"{uri}: cannot read as {file_format} "
            f"({type(error).__name__}: {first_line(error, NO_DETAILS)}); "
            "check that the file is complete and really is that format"
        ) from error
    logger.info("loaded %d rows from %s", frame.height, uri)
    bar_line = None if file_format == "parquet" else CSV_FIRST_BAR_LINE
    return validate_bars(frame, uri, first_line=bar_line)


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
            f"{uri}: the filesystem for this URI is not installed "
            f"({first_line(error, NO_DETAILS)}); "
            f"{_CLOUD_HINT}"
        ) from error
    except ValueError as error:
        raise DataError(f"{uri}: not a usable URI ({first_line(error, NO_DETAILS)})") from error
    return filesystem, path


def _exists(filesystem: fsspec.AbstractFileSystem, path: str, uri: str) -> bool:
    try:
        return bool(filesystem.exists(path))
    except Exception as error:  # network, DNS and credential failures of remote filesystems
        raise DataError(
            f"{uri}: cannot reach the file "
            f"({type(error).__name__}: {first_line(error, NO_DETAILS)}); "
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
    bars = select_required(frame, source)
    return bars.with_columns(
        parse_timestamps(bars["timestamp"], source),
        pl.col("symbol").cast(pl.String),
        *(pl.col(column).cast(pl.Float64) for column in NUMERIC_COLUMNS),
    ).sort("symbol", "timestamp", *NUMERIC_COLUMNS)

"""Tests of loading, validating, writing and hashing OHLCV bars."""

from __future__ import annotations

import gzip
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import polars as pl
import pytest

from alphafactory.data.bars import (
    REQUIRED_COLUMNS,
    data_hash,
    infer_frequency,
    load_bars,
    validate_bars,
    write_bars,
)
from alphafactory.data.synthetic import generate_bars
from alphafactory.errors import DataError

SOURCE = "bars.csv"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return generate_bars(("BTC", "ETH"), n_bars=48, seed=5)


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"memory://alphafactory-tests/{uuid.uuid4().hex}"
    yield root
    filesystem = fsspec.filesystem("memory")
    if filesystem.exists(root):
        filesystem.rm(root, recursive=True)


def _raw(**overrides: list[Any]) -> dict[str, list[Any]]:
    """Three valid hourly BTC bars as plain columns; keyword arguments replace columns."""
    columns: dict[str, list[Any]] = {
        "timestamp": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)],
        "symbol": ["BTC", "BTC", "BTC"],
        "open": [100.0, 101.0, 102.0],
        "high": [102.0, 103.0, 104.0],
        "low": [99.0, 100.0, 101.0],
        "close": [101.0, 102.0, 103.0],
        "volume": [10.0, 11.0, 12.0],
    }
    columns.update(overrides)
    return columns


def _frame(**overrides: list[Any]) -> pl.DataFrame:
    return pl.DataFrame(_raw(**overrides))


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", ["bars.parquet", "bars.pq", "bars.csv", "bars.csv.gz"])
def test_round_trip_on_local_path(bars: pl.DataFrame, tmp_path: Path, name: str) -> None:
    path = tmp_path / "nested" / name
    write_bars(bars, str(path))
    loaded = load_bars(str(path))
    assert loaded.equals(bars)
    assert dict(loaded.schema) == dict(bars.schema)
    assert sorted(p.name for p in path.parent.iterdir()) == [name]  # no temporary file left


@pytest.mark.parametrize("name", ["bars.parquet", "bars.csv"])
def test_round_trip_with_file_uri(bars: pl.DataFrame, tmp_path: Path, name: str) -> None:
    uri = (tmp_path / name).as_uri()
    write_bars(bars, uri)
    assert load_bars(uri).equals(bars)


@pytest.mark.parametrize("name", ["bars.parquet", "bars.csv", "bars.csv.gz"])
def test_round_trip_in_memory(bars: pl.DataFrame, memory_root: str, name: str) -> None:
    uri = f"{memory_root}/{name}"
    write_bars(bars, uri)
    assert load_bars(uri).equals(bars)
    listed = fsspec.filesystem("memory").ls(memory_root, detail=False)
    assert [entry.rsplit("/", 1)[-1] for entry in listed] == [name]


def test_write_replaces_an_existing_file(bars: pl.DataFrame, tmp_path: Path) -> None:
    path = str(tmp_path / "bars.parquet")
    write_bars(bars, path)
    smaller = bars.filter(pl.col("symbol") == "ETH")
    write_bars(smaller, path)
    assert load_bars(path).equals(smaller)


def test_csv_is_written_with_iso_utc_timestamps(bars: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "bars.csv.gz"
    write_bars(bars, str(path))
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert lines[0] == ",".join(REQUIRED_COLUMNS)
    assert lines[1].startswith("2019-01-01T00:00:00.000000Z,BTC,")


def test_load_sorts_and_drops_extra_columns(tmp_path: Path) -> None:
    interleaved = pl.DataFrame(
        {
            "timestamp": [T0, T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1)],
            "symbol": ["SOL", "ADA", "SOL", "ADA"],
            "open": [1.0, 2.0, 1.0, 2.0],
            "high": [1.0, 2.0, 1.0, 2.0],
            "low": [1.0, 2.0, 1.0, 2.0],
            "close": [1.0, 2.0, 1.0, 2.0],
            "volume": [0.0, 5.0, 0.0, 5.0],
            "trades": [1, 2, 3, 4],
        }
    )
    path = str(tmp_path / "bars.parquet")
    interleaved.write_parquet(path)
    loaded = load_bars(path)
    assert tuple(loaded.columns) == REQUIRED_COLUMNS
    assert loaded["symbol"].to_list() == ["ADA", "ADA", "SOL", "SOL"]


def test_categorical_symbols_become_strings() -> None:
    frame = _frame().with_columns(pl.col("symbol").cast(pl.Categorical))
    assert validate_bars(frame, SOURCE)["symbol"].dtype == pl.String


# ------------------------------------------------------------------------- load error cases


def test_unknown_extension(tmp_path: Path) -> None:
    uri = str(tmp_path / "bars.json")
    with pytest.raises(DataError, match=r"bars\.json: unknown file extension; .*\.parquet"):
        load_bars(uri)


def test_missing_file(tmp_path: Path) -> None:
    uri = str(tmp_path / "absent.parquet")
    with pytest.raises(DataError, match=r"absent\.parquet: file not found"):
        load_bars(uri)


def test_missing_file_in_memory(memory_root: str) -> None:
    with pytest.raises(DataError, match=r"memory://.*absent\.csv: file not found"):
        load_bars(f"{memory_root}/absent.csv")


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"broken\.parquet: cannot read as parquet"):
        load_bars(str(path))


def test_unreadable_gzip(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"broken\.csv\.gz: cannot read as csv\.gz"):
        load_bars(str(path))


def test_missing_cloud_filesystem_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.registry import _registry

    monkeypatch.delitem(_registry, "gs", raising=False)
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    with pytest.raises(DataError, match=r"gs://bucket/bars\.parquet: .*alphafactory\[cloud\]"):
        load_bars("gs://bucket/bars.parquet")


def test_csv_with_bad_number_names_file_column_row_value(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,BTC,100,102,99,101,10\n"
        "2024-01-01T01:00:00Z,BTC,101,103,100,n/a,11\n"
    )
    with pytest.raises(
        DataError, match=r"prices\.csv: column 'close' line 3 has value 'n/a', not a number"
    ):
        load_bars(str(path))


# --------------------------------------------------------------------- timestamp parsing


def test_iso_strings_with_offsets_become_utc() -> None:
    stamps = ["2024-01-01T02:00:00+02:00", "2024-01-01T03:00:00+02:00", "2024-01-01T04:00:00+02:00"]
    parsed = validate_bars(_frame(timestamp=stamps), SOURCE)
    assert parsed["timestamp"].dtype == pl.Datetime("us", "UTC")
    assert parsed["timestamp"].to_list() == _raw()["timestamp"]


def test_naive_iso_strings_and_datetimes_are_taken_as_utc() -> None:
    naive_strings = ["2024-01-01 00:00:00", "2024-01-01 01:00:00", "2024-01-01 02:00:00"]
    naive_datetimes = [stamp.replace(tzinfo=None) for stamp in _raw()["timestamp"]]
    for stamps in (naive_strings, naive_datetimes):
        parsed = validate_bars(_frame(timestamp=stamps), SOURCE)
        assert parsed["timestamp"].to_list() == _raw()["timestamp"]


def test_other_time_zones_are_converted_to_utc() -> None:
    frame = _frame().with_columns(pl.col("timestamp").dt.convert_time_zone("Asia/Tokyo"))
    parsed = validate_bars(frame, SOURCE)
    assert parsed["timestamp"].dtype == pl.Datetime("us", "UTC")
    assert parsed["timestamp"].to_list() == _raw()["timestamp"]


@pytest.mark.parametrize("scale", [1, 1000])
def test_epoch_integers_by_magnitude(scale: int) -> None:
    seconds = [int(stamp.timestamp()) for stamp in _raw()["timestamp"]]
    parsed = validate_bars(_frame(timestamp=[s * scale for s in seconds]), SOURCE)
    assert parsed["timestamp"].to_list() == _raw()["timestamp"]


def test_epoch_milliseconds_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "epoch.csv"
    path.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "1704067200000,BTC,100,102,99,101,10\n"
        "1704070800000,BTC,101,103,100,102,11\n"
    )
    loaded = load_bars(str(path))
    assert loaded["timestamp"].to_list() == [T0, T0 + timedelta(hours=1)]
    assert loaded["close"].to_list() == [101.0, 102.0]


def test_unparseable_timestamp_names_row_and_value() -> None:
    stamps = ["2024-01-01T00:00:00Z", "yesterday", "2024-01-01T02:00:00Z"]
    with pytest.raises(
        DataError, match=r"bars\.csv: column 'timestamp' row 2 has value 'yesterday'.*ISO 8601"
    ):
        validate_bars(_frame(timestamp=stamps), SOURCE)


def test_timestamp_of_wrong_type() -> None:
    with pytest.raises(DataError, match=r"column 'timestamp' has type Float64; use datetimes"):
        validate_bars(_frame(timestamp=[1.5, 2.5, 3.5]), SOURCE)


# ------------------------------------------------------------------------ validation errors


def test_missing_columns_are_listed_with_found_ones() -> None:
    frame = _frame().drop("volume", "low")
    with pytest.raises(
        DataError,
        match=r"bars\.csv: missing column\(s\) \['low', 'volume'\]; found \['timestamp', ",
    ):
        validate_bars(frame, SOURCE)


def test_empty_frame() -> None:
    with pytest.raises(DataError, match="bars.csv: no rows"):
        validate_bars(_frame().clear(), SOURCE)


def test_non_numeric_string_value() -> None:
    with pytest.raises(DataError, match=r"column 'volume' row 3 has value 'lots', not a number"):
        validate_bars(_frame(volume=["10", "11", "lots"]), SOURCE)


def test_numeric_strings_are_cast() -> None:
    parsed = validate_bars(_frame(volume=["10", " 11.5", "1e3"]), SOURCE)
    assert parsed["volume"].to_list() == [10.0, 11.5, 1000.0]


def test_non_numeric_type() -> None:
    with pytest.raises(DataError, match=r"column 'open' has type Boolean; it must hold numbers"):
        validate_bars(_frame(open=[True, False, True]), SOURCE)


def test_null_value_names_row_and_column() -> None:
    with pytest.raises(
        DataError, match=r"row 2 \(symbol BTC, timestamp .*\) has a missing value in 'high'"
    ):
        validate_bars(_frame(high=[102.0, None, 104.0]), SOURCE)


def test_nan_value_names_row_and_column() -> None:
    with pytest.raises(DataError, match=r"row 3 .* missing value in 'volume'; fill or drop"):
        validate_bars(_frame(volume=[10.0, 11.0, float("nan")]), SOURCE)


def test_infinite_value() -> None:
    with pytest.raises(DataError, match=r"row 1 .* infinite 'close'"):
        validate_bars(_frame(close=[float("inf"), 102.0, 103.0]), SOURCE)


def test_empty_symbol() -> None:
    with pytest.raises(DataError, match=r"column 'symbol' row 2 is empty"):
        validate_bars(_frame(symbol=["BTC", None, "BTC"]), SOURCE)


@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
def test_non_positive_price_names_the_column(column: str) -> None:
    values = _raw()
    values[column] = [values[column][0], 0.0, values[column][2]]
    with pytest.raises(
        DataError,
        match=rf"row 2 \(symbol BTC, .*\) has {column} 0\.0 <= 0; prices must be positive",
    ):
        validate_bars(pl.DataFrame(values), SOURCE)


def test_negative_volume() -> None:
    with pytest.raises(
        DataError, match=r"row 2 .* negative volume -5\.0; volume must be >= 0, fix or drop"
    ):
        validate_bars(_frame(volume=[10.0, -5.0, 12.0]), SOURCE)


def test_zero_volume_is_allowed() -> None:
    assert validate_bars(_frame(volume=[0.0, 0.0, 0.0]), SOURCE)["volume"].sum() == 0.0


def test_high_below_low() -> None:
    frame = _frame(high=[102.0, 103.0, 100.0], low=[99.0, 100.0, 101.5])
    with pytest.raises(
        DataError,
        match=r"row 3 \(symbol BTC, timestamp 2024-01-01 02:00:00.*\) is an impossible bar "
        r"\(high < low: open 102\.0, high 100\.0, low 101\.5, close 103\.0\)",
    ):
        validate_bars(frame, SOURCE)


def test_high_below_close() -> None:
    with pytest.raises(DataError, match=r"row 1 .* \(high < max\(open, close\): .*fix or drop"):
        validate_bars(_frame(high=[100.5, 103.0, 104.0]), SOURCE)


def test_low_above_open() -> None:
    with pytest.raises(DataError, match=r"row 2 .* \(low > min\(open, close\): .*low 101\.5"):
        validate_bars(_frame(low=[99.0, 101.5, 101.0]), SOURCE)


def test_non_monotonic_timestamps() -> None:
    stamps = [T0, T0 + timedelta(hours=2), T0 + timedelta(hours=1)]
    with pytest.raises(
        DataError,
        match=r"row 3 \(symbol BTC, timestamp 2024-01-01 01:00:00.*sort the file by symbol, "
        "timestamp",
    ):
        validate_bars(_frame(timestamp=stamps), SOURCE)


def test_interleaved_symbols_in_time_order_are_accepted() -> None:
    frame = _frame(symbol=["BTC", "ETH", "BTC"], timestamp=[T0, T0, T0 + timedelta(hours=1)])
    parsed = validate_bars(frame, SOURCE)
    assert parsed["symbol"].to_list() == ["BTC", "BTC", "ETH"]


def test_duplicate_symbol_timestamp() -> None:
    stamps = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1)]
    with pytest.raises(
        DataError,
        match=r"row 2 \(symbol BTC, timestamp 2024-01-01 01:00:00.*\) is duplicated .*"
        r"drop duplicates",
    ):
        validate_bars(_frame(timestamp=stamps), SOURCE)


def test_validation_error_from_file_names_the_uri(bars: pl.DataFrame, memory_root: str) -> None:
    uri = f"{memory_root}/bad.parquet"
    broken = bars.with_columns(pl.lit(-1.0).alias("volume"))
    with fsspec.open(uri, "wb") as handle:
        broken.write_parquet(handle)
    with pytest.raises(DataError, match=rf"^{uri}: row 1 .* negative volume"):
        load_bars(uri)


def test_write_refuses_invalid_bars(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    with pytest.raises(DataError, match=r"bars\.parquet: row 2 .* negative volume"):
        write_bars(_frame(volume=[1.0, -1.0, 1.0]), str(path))
    assert not path.exists()


def test_messages_are_one_line() -> None:
    with pytest.raises(DataError) as caught:
        validate_bars(_frame(high=[102.0, None, 104.0]), SOURCE)
    assert "\n" not in str(caught.value)


# ----------------------------------------------------------------------- frequency and hash


def test_infer_frequency_takes_median_within_symbols() -> None:
    stamps = [T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=30), T0 + timedelta(hours=5)]
    frame = pl.DataFrame({"timestamp": stamps, "symbol": ["A", "A", "A", "A"]})
    other = pl.DataFrame({"timestamp": [T0, T0 + timedelta(minutes=15)], "symbol": ["B", "B"]})
    assert infer_frequency(pl.concat([frame, other])) == timedelta(minutes=15)


def test_infer_frequency_needs_two_bars() -> None:
    with pytest.raises(DataError, match="no symbol has two bars"):
        infer_frequency(_frame().head(1))


def test_data_hash_is_stable_and_order_independent(bars: pl.DataFrame) -> None:
    digest = data_hash(bars)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert data_hash(bars.clone()) == digest
    assert data_hash(bars.sample(fraction=1.0, shuffle=True, seed=1)) == digest
    assert data_hash(bars.with_columns(pl.lit(1).alias("extra"))) == digest
    assert data_hash(generate_bars(("BTC", "ETH"), n_bars=48, seed=5)) == digest


def test_data_hash_matches_after_round_trip(bars: pl.DataFrame, memory_root: str) -> None:
    for name in ("bars.csv", "bars.parquet"):
        uri = f"{memory_root}/{name}"
        write_bars(bars, uri)
        assert data_hash(load_bars(uri)) == data_hash(bars)


def test_data_hash_changes_with_any_value(bars: pl.DataFrame) -> None:
    digest = data_hash(bars)
    row = pl.int_range(pl.len()) == 17
    changed = [
        bars.with_columns(pl.when(row).then(pl.col("close") * 1.000001).otherwise("close")),
        bars.with_columns(pl.when(row).then(pl.col("volume") + 1).otherwise("volume")),
        bars.with_columns(
            pl.when(row).then(pl.col("timestamp") + timedelta(minutes=1)).otherwise("timestamp")
        ),
        bars.with_columns(pl.col("symbol").replace({"ETH": "ETC"})),
        bars.head(bars.height - 1),
    ]
    digests = {data_hash(frame) for frame in changed}
    assert digest not in digests
    assert len(digests) == len(changed)


def test_data_hash_does_not_depend_on_dtype_details(bars: pl.DataFrame) -> None:
    as_milliseconds = bars.with_columns(pl.col("timestamp").dt.cast_time_unit("ms"))
    as_categorical = bars.with_columns(pl.col("symbol").cast(pl.Categorical))
    assert data_hash(as_milliseconds) == data_hash(bars)
    assert data_hash(as_categorical) == data_hash(bars)


@pytest.mark.parametrize(("suffix", "named"), [(".csv", "line 11"), (".parquet", "row 10")])
def test_positions_count_like_people_do(tmp_path: Path, suffix: str, named: str) -> None:
    """The issue's probe: the bad bar is on file line 11 (the header is line 1) = the 10th bar."""
    frame = generate_bars(["BTC"], n_bars=12, seed=3).with_columns(
        pl.when(pl.int_range(pl.len()) == 9).then(-1.0).otherwise(pl.col("volume")).alias("volume")
    )
    path = tmp_path / f"bars{suffix}"
    frame.write_csv(path) if suffix == ".csv" else frame.write_parquet(path)
    if suffix == ".csv":
        assert path.read_text().splitlines()[10].endswith(",-1.0")  # file line 11
    with pytest.raises(DataError, match=rf"bars{suffix}: {named} \(symbol BTC, .*negative volume"):
        load_bars(str(path))

"""Tests of the synthetic bar generator: schema, determinism and market structure."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from alphafactory.data.bars import REQUIRED_COLUMNS, infer_frequency, validate_bars
from alphafactory.data.synthetic import frequency_to_timedelta, generate_bars
from alphafactory.errors import DataError

EXPECTED_SCHEMA = {
    "timestamp": pl.Datetime("us", "UTC"),
    "symbol": pl.String,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
}


@pytest.fixture(scope="module")
def year_of_bars() -> pl.DataFrame:
    return generate_bars()


def _log_returns(bars: pl.DataFrame, symbols: tuple[str, ...]) -> np.ndarray:
    closes = bars.pivot(on="symbol", index="timestamp", values="close").sort("timestamp")
    return np.diff(np.log(closes.select(symbols).to_numpy()), axis=0)


def _autocorrelation(values: np.ndarray, lag: int = 1) -> float:
    return float(np.corrcoef(values[lag:], values[:-lag])[0, 1])


def test_schema_shape_and_order(year_of_bars: pl.DataFrame) -> None:
    assert dict(year_of_bars.schema) == EXPECTED_SCHEMA
    assert tuple(year_of_bars.columns) == REQUIRED_COLUMNS
    assert year_of_bars.height == 3 * 8760
    assert year_of_bars.equals(year_of_bars.sort("symbol", "timestamp"))
    assert year_of_bars["symbol"].unique().sort().to_list() == ["BTC", "ETH", "SOL"]
    assert year_of_bars.null_count().sum_horizontal().item() == 0


def test_every_symbol_has_the_same_evenly_spaced_timestamps(year_of_bars: pl.DataFrame) -> None:
    per_symbol = year_of_bars.group_by("symbol").agg(pl.col("timestamp"))
    first, *others = per_symbol["timestamp"].to_list()
    assert all(other == first for other in others)
    assert first[0] == datetime(2019, 1, 1, tzinfo=UTC)
    assert first[-1] == datetime(2019, 1, 1, tzinfo=UTC) + timedelta(hours=8759)
    assert infer_frequency(year_of_bars) == timedelta(hours=1)


def test_generated_bars_pass_validation_unchanged(year_of_bars: pl.DataFrame) -> None:
    assert validate_bars(year_of_bars, "synthetic").equals(year_of_bars)


def test_ohlc_consistent_on_every_row(year_of_bars: pl.DataFrame) -> None:
    checks = year_of_bars.select(
        high_top=(pl.col("high") >= pl.max_horizontal("open", "close")).all(),
        low_bottom=(pl.col("low") <= pl.min_horizontal("open", "close")).all(),
        low_positive=(pl.col("low") > 0).all(),
        volume_positive=(pl.col("volume") > 0).all(),
    )
    assert checks.row(0) == (True, True, True, True)


def test_open_continues_previous_close(year_of_bars: pl.DataFrame) -> None:
    btc = year_of_bars.filter(pl.col("symbol") == "BTC")
    np.testing.assert_allclose(btc["open"].to_numpy()[1:], btc["close"].to_numpy()[:-1])


def test_known_symbols_start_near_their_2019_prices(year_of_bars: pl.DataFrame) -> None:
    first_open = dict(year_of_bars.group_by("symbol").agg(pl.col("open").first()).iter_rows())
    assert first_open == {"BTC": 3500.0, "ETH": 130.0, "SOL": 1.0}
    other = generate_bars(("XYZ",), n_bars=10)
    assert other["open"][0] == 100.0


def test_same_seed_same_frame_and_different_seed_different_frame() -> None:
    first = generate_bars(n_bars=500, seed=11)
    again = generate_bars(n_bars=500, seed=11)
    other = generate_bars(n_bars=500, seed=12)
    assert first.equals(again)
    assert not np.allclose(first["close"].to_numpy(), other["close"].to_numpy())


def test_cross_asset_return_correlation_in_band(year_of_bars: pl.DataFrame) -> None:
    correlations = np.corrcoef(_log_returns(year_of_bars, ("BTC", "ETH", "SOL")).T)
    pairwise = correlations[np.triu_indices(3, k=1)]
    assert np.all(pairwise > 0.5), pairwise
    assert np.all(pairwise < 0.8), pairwise
    # The leader (first symbol) is the most market-like: it correlates most with the others.
    assert correlations[0, 1] > correlations[1, 2]
    assert correlations[0, 2] > correlations[1, 2]


def test_volatility_clusters(year_of_bars: pl.DataFrame) -> None:
    returns = _log_returns(year_of_bars, ("BTC", "ETH", "SOL"))
    for column in range(returns.shape[1]):
        absolute = np.abs(returns[:, column])
        assert _autocorrelation(absolute) > 0.1
        assert _autocorrelation(returns[:, column] ** 2) > 0.05
        # Clustering, not predictability of direction: raw returns are close to uncorrelated.
        assert abs(_autocorrelation(returns[:, column])) < 0.1


def test_returns_are_fat_tailed(year_of_bars: pl.DataFrame) -> None:
    returns = _log_returns(year_of_bars, ("BTC",))[:, 0]
    standardised = (returns - returns.mean()) / returns.std()
    excess_kurtosis = float(np.mean(standardised**4) - 3.0)
    assert excess_kurtosis > 1.0


def test_volume_rises_with_absolute_return(year_of_bars: pl.DataFrame) -> None:
    returns = _log_returns(year_of_bars, ("ETH",))[:, 0]
    volume = year_of_bars.filter(pl.col("symbol") == "ETH")["volume"].to_numpy()[1:]
    assert np.corrcoef(np.abs(returns), volume)[0, 1] > 0.4


def test_annualised_volatility_is_crypto_like(year_of_bars: pl.DataFrame) -> None:
    returns = _log_returns(year_of_bars, ("BTC", "ETH", "SOL"))
    annual_vols = returns.std(axis=0) * np.sqrt(8760)
    assert np.all(annual_vols > 0.3), annual_vols
    assert np.all(annual_vols < 2.0), annual_vols


@pytest.mark.parametrize(
    ("frequency", "step"),
    [
        ("1m", timedelta(minutes=1)),
        ("5m", timedelta(minutes=5)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("4h", timedelta(hours=4)),
        ("1d", timedelta(days=1)),
    ],
)
def test_frequencies(frequency: str, step: timedelta) -> None:
    bars = generate_bars(("BTC", "ETH"), n_bars=300, frequency=frequency, seed=3)
    assert frequency_to_timedelta(frequency) == step
    assert infer_frequency(bars) == step
    assert validate_bars(bars, frequency).height == 600


def test_naive_start_is_utc() -> None:
    bars = generate_bars(("BTC",), n_bars=3, start=datetime(2021, 6, 1, 12))
    assert bars["timestamp"][0] == datetime(2021, 6, 1, 12, tzinfo=UTC)


def test_default_size_is_fast() -> None:
    started = time.perf_counter()
    generate_bars()
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("frequency", ["1x", "h", "0m", "", "1 hour"])
def test_unknown_frequency_is_rejected(frequency: str) -> None:
    with pytest.raises(DataError, match=r"frequency .* is not understood; use .*1m"):
        generate_bars(n_bars=10, frequency=frequency)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(DataError, match="symbols is empty"):
        generate_bars((), n_bars=10)
    with pytest.raises(DataError, match=r"symbols \['BTC'\] are repeated"):
        generate_bars(("BTC", "BTC"), n_bars=10)
    with pytest.raises(DataError, match="one string; pass a list"):
        generate_bars("BTC", n_bars=10)
    with pytest.raises(DataError, match="n_bars=1 is too small"):
        generate_bars(n_bars=1)

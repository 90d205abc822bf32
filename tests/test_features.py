"""Tests of the feature generators and the cross-asset feature matrix."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from alphafactory.errors import ConfigError, DataError
from alphafactory.features import (
    FEATURE_GENERATORS,
    FeatureGenerator,
    FeatureScale,
    build_feature_matrix,
    scale_preset,
    target_derived_columns,
)

SYMBOLS = ("AAA", "BBB", "CCC")
START = datetime(2024, 1, 1, tzinfo=UTC)
TINY_SCALE = FeatureScale(windows=(3, 5), swing_windows=(3,))


def random_walk_bars(
    n_bars: int = 600, symbols: tuple[str, ...] = SYMBOLS, seed: int = 0
) -> pl.DataFrame:
    """Seeded hourly random-walk OHLCV bars, sorted by symbol then timestamp."""
    rng = np.random.default_rng(seed)
    timestamps = [START + timedelta(hours=hour) for hour in range(n_bars)]
    frames = []
    for offset, symbol in enumerate(symbols):
        close = (50.0 + 50 * offset) * np.exp(np.cumsum(rng.normal(0.0, 0.01, n_bars)))
        open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0.0, 0.002, n_bars))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.004, n_bars)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.004, n_bars)))
        volume = rng.lognormal(10.0, 0.5, n_bars)
        frames.append(_bars_frame(symbol, timestamps, open_, high, low, close, volume))
    return pl.concat(frames)


def _bars_frame(
    symbol: str,
    timestamps: list[datetime],
    open_: np.ndarray | list[float],
    high: np.ndarray | list[float],
    low: np.ndarray | list[float],
    close: np.ndarray | list[float],
    volume: np.ndarray | list[float],
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": pl.Series(timestamps, dtype=pl.Datetime("us", "UTC")),
            "symbol": [symbol] * len(timestamps),
            "open": pl.Series(open_, dtype=pl.Float64),
            "high": pl.Series(high, dtype=pl.Float64),
            "low": pl.Series(low, dtype=pl.Float64),
            "close": pl.Series(close, dtype=pl.Float64),
            "volume": pl.Series(volume, dtype=pl.Float64),
        }
    )


def perturb_after(bars: pl.DataFrame, cutoff: datetime, seed: int) -> pl.DataFrame:
    """Scale every bar after ``cutoff`` by a random factor; OHLC stay consistent."""
    rng = np.random.default_rng(seed)
    price_factor = pl.Series(rng.uniform(0.5, 1.5, bars.height))
    volume_factor = pl.Series(rng.uniform(0.2, 5.0, bars.height))
    after = pl.col("timestamp") > cutoff
    return bars.with_columns(
        *[
            pl.when(after).then(pl.col(name) * price_factor).otherwise(pl.col(name)).alias(name)
            for name in ("open", "high", "low", "close")
        ],
        pl.when(after).then(pl.col("volume") * volume_factor).otherwise(pl.col("volume")),
    )


def feature_columns(matrix: pl.DataFrame, symbol: str) -> list[str]:
    return [column for column in matrix.columns if column.startswith(f"{symbol}__")]


def assert_no_look_ahead(
    bars: pl.DataFrame, scale: FeatureScale | str, generators: list[str] | None, rows: list[int]
) -> None:
    reference = build_feature_matrix(bars, scale, generators)
    for position, row in enumerate(rows):
        cutoff = reference.get_column("timestamp")[row]
        changed = build_feature_matrix(
            perturb_after(bars, cutoff, seed=position), scale, generators
        )
        assert_frame_equal(changed.head(row + 1), reference.head(row + 1), check_exact=True)
        # The perturbation did reach the features after the cutoff.
        assert not changed.slice(row + 1).equals(reference.slice(row + 1))


# --- look-ahead -------------------------------------------------------------------------


def test_small_scale_has_no_look_ahead() -> None:
    assert_no_look_ahead(random_walk_bars(), "small", None, rows=[120, 299, 450])


@pytest.mark.parametrize("family", ["market_structure", "volatility", "technical", "candlestick"])
def test_full_scale_has_no_look_ahead(family: str) -> None:
    bars = random_walk_bars(n_bars=320, seed=3)
    assert_no_look_ahead(bars, "full", [family], rows=[230, 290])


def test_look_ahead_with_unequal_symbol_histories() -> None:
    bars = random_walk_bars(n_bars=400, seed=5).filter(
        (pl.col("symbol") != "BBB") | (pl.col("timestamp") >= START + timedelta(hours=37))
    )
    assert_no_look_ahead(bars, "small", None, rows=[100, 250])


def test_no_feature_expression_shifts_backwards_or_centres() -> None:
    scale = scale_preset("full")
    for generator in FEATURE_GENERATORS.values():
        for expr in generator.expressions(scale):
            text = str(expr)
            assert "center=true" not in text.lower()
            assert "shift(-" not in text.replace(" ", "")


# --- hand-checked values ------------------------------------------------------------------


def _tiny_bars() -> pl.DataFrame:
    close = [10.0, 10.5, 10.2, 10.8, 11.5, 11.2, 11.0, 11.6, 12.0, 11.4, 11.9, 12.3]
    open_ = [10.0, 10.0, 10.6, 10.1, 10.9, 11.6, 11.1, 11.1, 11.5, 12.1, 11.3, 11.9]
    high = [10.3, 10.7, 10.7, 11.0, 12.0, 11.7, 11.3, 11.8, 12.2, 12.2, 12.0, 12.5]
    low = [9.8, 9.9, 10.1, 10.0, 10.8, 11.0, 10.9, 11.0, 11.4, 11.3, 11.2, 11.8]
    volume = [100.0, 120, 90, 150, 200, 80, 70, 110, 130, 95, 105, 140]
    timestamps = [START + timedelta(hours=hour) for hour in range(len(close))]
    return _bars_frame("X", timestamps, open_, high, low, close, volume)


def _column(matrix: pl.DataFrame, family: str, name: str) -> list[float | None]:
    return matrix.get_column(f"X__{family}__{name}").to_list()


def test_hand_checked_candlestick_values() -> None:
    matrix = build_feature_matrix(_tiny_bars(), TINY_SCALE, ["candlestick"])
    # Bar 4: open 10.9, high 12.0, low 10.8, close 11.5 -> body 0.6 over range 1.2.
    assert _column(matrix, "candlestick", "body_ratio")[4] == pytest.approx(0.5)
    assert _column(matrix, "candlestick", "upper_wick_ratio")[4] == pytest.approx(0.5 / 1.2)
    assert _column(matrix, "candlestick", "gap")[4] == pytest.approx(10.9 / 10.8 - 1, rel=1e-6)
    # Closes 10.2 -> 10.8 -> 11.5 rise twice in a row, then 11.2 falls.
    up_runs = _column(matrix, "candlestick", "consecutive_up")
    assert up_runs[:6] == [0.0, 1.0, 0.0, 1.0, 2.0, 0.0]


def test_hand_checked_swing_flags_and_excursion() -> None:
    bars = _tiny_bars()
    matrix = build_feature_matrix(bars, TINY_SCALE, ["market_structure"])
    # Highs 10.3 10.7 10.7 11.0 12.0 11.7 11.3 11.8 12.2 12.2 12.0 12.5; new 3-bar high?
    expected = [None, None, None, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert _column(matrix, "market_structure", "swing_high_w3") == expected
    # Lows 9.8 9.9 10.1 10.0 10.8 11.0 10.9 11.0 11.4 11.3 11.2 11.8; new 3-bar low?
    expected_low = [None, None, None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert _column(matrix, "market_structure", "swing_low_w3") == expected_low
    closes = bars.get_column("close").to_numpy()
    last_three = closes[2:5]
    expected_excursion = (12.0 - last_three.mean()) / last_three.std(ddof=1)
    excursion = _column(matrix, "market_structure", "swing_high_excursion_w3")
    assert excursion[4] == pytest.approx(expected_excursion, rel=1e-6)
    assert excursion[1] is None


def test_hand_checked_body_change_after_a_zero_body_is_nan_not_inf() -> None:
    # Bar 3 gets open = close (a zero body); bar 4's body 0.6 over it was +inf.
    bars = _tiny_bars().with_columns(
        pl.when(pl.int_range(pl.len()) == 3)
        .then(pl.col("close"))
        .otherwise(pl.col("open"))
        .alias("open")
    )
    matrix = build_feature_matrix(bars, TINY_SCALE, ["candlestick"])
    body_change = _column(matrix, "candlestick", "body_change")
    assert body_change[0] is None
    assert body_change[3] == 0.0  # 0 / |10.2 - 10.6|
    assert body_change[4] is not None and math.isnan(body_change[4])
    assert body_change[5] == pytest.approx(0.4 / 0.6, rel=1e-5)


def test_hand_checked_swing_excursion_with_zero_sigma_is_nan_not_inf() -> None:
    close = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.5, 10.2]
    timestamps = [START + timedelta(hours=hour) for hour in range(len(close))]
    high = [c + 0.5 for c in close]
    low = [c - 0.5 for c in close]
    bars = _bars_frame("X", timestamps, close, high, low, close, [100.0] * len(close))
    matrix = build_feature_matrix(bars, TINY_SCALE, ["market_structure"])
    for swing_type in ("high", "low"):
        excursion = _column(matrix, "market_structure", f"swing_{swing_type}_excursion_w3")
        assert excursion[:2] == [None, None]
        # Three equal closes: sigma is 0 and 0.5 / 0 was +inf.
        assert all(value is not None and math.isnan(value) for value in excursion[2:6])
    last_three = np.array(close[4:7])
    expected = (high[6] - last_three.mean()) / last_three.std(ddof=1)
    assert _column(matrix, "market_structure", "swing_high_excursion_w3")[6] == pytest.approx(
        expected, rel=1e-5
    )


def _wilder_rsi(closes: list[float], window: int) -> list[float | None]:
    changes = np.diff(closes)
    gains, losses = np.clip(changes, 0, None), np.clip(-changes, 0, None)
    average_gain, average_loss = gains[0], losses[0]
    result: list[float | None] = [None]
    for index in range(len(changes)):
        if index > 0:
            average_gain += (gains[index] - average_gain) / window
            average_loss += (losses[index] - average_loss) / window
        ready = index + 1 >= window
        result.append(100 - 100 / (1 + average_gain / average_loss) if ready else None)
    return result


def test_hand_checked_rsi_and_realised_vol() -> None:
    bars = _tiny_bars()
    matrix = build_feature_matrix(bars, TINY_SCALE, ["technical", "volatility"])
    closes = bars.get_column("close").to_list()
    rsi = _column(matrix, "technical", "rsi_5")
    expected_rsi = _wilder_rsi(closes, 5)
    assert rsi[:5] == [None] * 5
    assert rsi[5:] == pytest.approx(expected_rsi[5:], rel=1e-5)
    returns = np.diff(np.log(closes))
    vol = _column(matrix, "volatility", "realised_vol_5")
    assert vol[:5] == [None] * 5
    assert vol[5] == pytest.approx(returns[0:5].std(ddof=1), rel=1e-5)
    assert vol[11] == pytest.approx(returns[6:11].std(ddof=1), rel=1e-5)


def test_hand_checked_temporal_values() -> None:
    saturday_six = datetime(2024, 1, 6, 6, tzinfo=UTC)
    bars = _bars_frame("X", [saturday_six], [1.0], [1.0], [1.0], [1.0], [1.0])
    row = build_feature_matrix(bars, TINY_SCALE, ["temporal"]).row(0, named=True)
    assert row["time__temporal__is_weekend"] == 1.0
    assert row["time__temporal__hour_sin"] == pytest.approx(1.0)
    assert row["time__temporal__day_of_week_sin"] == pytest.approx(math.sin(2 * math.pi * 5 / 7))
    assert row["time__temporal__month_cos"] == pytest.approx(1.0)


# --- shape, names, dtypes -------------------------------------------------------------------


def _per_symbol_count(matrix: pl.DataFrame) -> set[int]:
    return {len(feature_columns(matrix, symbol)) for symbol in SYMBOLS}


def test_small_scale_counts_names_and_dtypes() -> None:
    bars = random_walk_bars()
    matrix = build_feature_matrix(bars, "small")
    (count,) = _per_symbol_count(matrix)
    assert 150 <= count <= 400
    assert matrix.columns[0] == "timestamp"
    assert len(set(matrix.columns)) == matrix.width
    assert all(dtype == pl.Float32 for dtype in matrix.schema.values() if dtype != pl.Datetime)
    assert matrix.schema["timestamp"] == pl.Datetime("us", "UTC")
    temporal = [column for column in matrix.columns if column.startswith("time__temporal__")]
    assert matrix.width == 1 + 3 * count + len(temporal) and len(temporal) >= 10
    families = {column.split("__")[1] for column in matrix.columns[1:]}
    assert families == set(FEATURE_GENERATORS)
    assert matrix.height == 600


def test_full_scale_gives_thousands_per_symbol() -> None:
    matrix = build_feature_matrix(random_walk_bars(n_bars=260), "full")
    (count,) = _per_symbol_count(matrix)
    assert 1500 <= count <= 5000
    assert len(set(matrix.columns)) == matrix.width
    assert any(column.endswith("_lag5") for column in matrix.columns)


def test_rows_are_the_union_of_timestamps_with_nulls_where_a_symbol_is_missing() -> None:
    bars = random_walk_bars(n_bars=300)
    gaps = (pl.col("symbol") == "CCC") & (pl.col("timestamp").dt.hour() == 3)
    matrix = build_feature_matrix(bars.filter(~gaps), "small")
    assert matrix.height == 300
    assert matrix.get_column("timestamp").is_sorted()
    missing = matrix.filter(pl.col("timestamp").dt.hour() == 3)
    ccc = missing.select(feature_columns(matrix, "CCC"))
    assert ccc.null_count().sum_horizontal().item() == ccc.height * ccc.width
    late_aaa = missing.slice(5).select(feature_columns(matrix, "AAA"))
    assert late_aaa.null_count().sum_horizontal().item() < late_aaa.height * late_aaa.width


def test_build_is_deterministic_and_independent_of_generator_order() -> None:
    bars = random_walk_bars(n_bars=250)
    first = build_feature_matrix(bars, "small", ["volatility", "candlestick"])
    second = build_feature_matrix(
        bars.sample(fraction=1.0, seed=1), "small", ["candlestick", "volatility"]
    )
    assert_frame_equal(first, second, check_exact=True)
    assert {column.split("__")[1] for column in first.columns[1:]} == {"volatility", "candlestick"}


def test_every_family_is_a_generator_with_unique_names() -> None:
    assert list(FEATURE_GENERATORS) == [
        "candlestick",
        "technical",
        "temporal",
        "market_structure",
        "volatility",
    ]
    bars = random_walk_bars(n_bars=50, symbols=("AAA",))
    for name, generator in FEATURE_GENERATORS.items():
        assert isinstance(generator, FeatureGenerator) and generator.name == name
        names = bars.select(generator.expressions(scale_preset("small"))).columns
        assert len(names) == len(set(names))


# --- target-derived columns -----------------------------------------------------------------


def test_target_derived_columns_are_exactly_the_swing_flag_and_excursion() -> None:
    columns = build_feature_matrix(random_walk_bars(n_bars=120), "small").columns
    for window in (2, 3, 5, 10, 20, 50):
        for swing_type in ("high", "low"):
            derived = target_derived_columns(columns, "BBB", window, swing_type)
            assert derived == [
                f"BBB__market_structure__swing_{swing_type}_w{window}",
                f"BBB__market_structure__swing_{swing_type}_excursion_w{window}",
            ]
    assert target_derived_columns(columns, "BBB", 7, "high") == []
    assert target_derived_columns(columns, "ZZZ", 5, "low") == []


def test_target_derived_columns_ignore_lags_and_similar_names() -> None:
    columns = build_feature_matrix(random_walk_bars(n_bars=260), "full").columns
    assert "AAA__market_structure__swing_high_w5_lag1" in columns
    assert "AAA__market_structure__swing_high_w50" in columns
    derived = target_derived_columns(columns, "AAA", 5, "high")
    assert derived == [
        "AAA__market_structure__swing_high_w5",
        "AAA__market_structure__swing_high_excursion_w5",
    ]


def test_target_derived_columns_rejects_unknown_swing_type() -> None:
    with pytest.raises(ConfigError, match="swing_type"):
        target_derived_columns(["x"], "AAA", 5, "middle")  # type: ignore[arg-type]


# --- errors ---------------------------------------------------------------------------------


def test_errors_name_the_problem() -> None:
    bars = random_walk_bars(n_bars=30)
    with pytest.raises(DataError, match=r"missing columns \['volume'\]"):
        build_feature_matrix(bars.drop("volume"))
    with pytest.raises(DataError, match="duplicate"):
        build_feature_matrix(pl.concat([bars, bars.head(1)]))
    with pytest.raises(DataError, match="empty"):
        build_feature_matrix(bars.clear())
    with pytest.raises(ConfigError, match="unknown scale 'huge'"):
        build_feature_matrix(bars, "huge")
    for symbol in ("A__B", "../x", "B T C"):
        one = bars.filter(pl.col("symbol") == bars["symbol"][0])
        renamed = one.with_columns(pl.lit(symbol).alias("symbol"))
        with pytest.raises(DataError, match=r"symbols \[.*\] are not safe names; use 1-64 ASCII"):
            build_feature_matrix(renamed)
    with pytest.raises(ConfigError, match="unknown \\['candles'\\]"):
        build_feature_matrix(bars, "small", ["candles"])


def test_scale_validation() -> None:
    with pytest.raises(ValueError, match="windows"):
        FeatureScale(windows=(1, 5), swing_windows=(2,))
    assert scale_preset("small").swing_windows == (2, 3, 5, 10, 20, 50)
    assert set(scale_preset("small").swing_windows) <= set(scale_preset("full").swing_windows)


# --- speed sanity ---------------------------------------------------------------------------


def test_speed_sanity_one_year_hourly_small_scale(capsys: pytest.CaptureFixture[str]) -> None:
    bars = random_walk_bars(n_bars=8760, seed=11)
    started = time.perf_counter()
    matrix = build_feature_matrix(bars, "small")
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nbuild_feature_matrix 3 x 8760 small: {matrix.shape} in {elapsed:.2f}s")
    assert matrix.height == 8760

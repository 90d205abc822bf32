"""No feature is ever ±inf: degenerate bars give NaN (missing), and prepare refuses overflow."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from alphafactory.config import load_environment, with_data_uri
from alphafactory.data.synthetic import generate_bars
from alphafactory.errors import DataError
from alphafactory.features import FEATURE_GENERATORS, FeatureScale, build_feature_matrix
from alphafactory.features._base import safe_div, safe_log
from alphafactory.stages import run_prepare
from alphafactory.stages.prepare import refuse_infinite_features

N_BARS = 240
HUGE_AT = 120
#: Every family's code paths (all window kinds, MACD, crosses) on a short history.
SCALE = FeatureScale(
    windows=(2, 3, 5, 10, 20), swing_windows=(1, 2, 3, 5, 10), macd_spans=((3, 6, 2),)
)
START = datetime(2024, 1, 1, tzinfo=UTC)


def bars_frame(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": pl.Series(
                [START + timedelta(days=day) for day in range(len(close))],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "symbol": ["X"] * len(close),
            **{
                name: pl.Series(values, dtype=pl.Float64)
                for name, values in zip(
                    ("open", "high", "low", "close", "volume"),
                    (open_, high, low, close, volume),
                    strict=True,
                )
            },
        }
    )


def _walk(seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, N_BARS)))
    open_ = np.r_[close[0] * 0.999, close[:-1]]
    high = np.maximum(open_, close) * 1.003
    low = np.minimum(open_, close) * 0.997
    return open_, high, low, close, rng.lognormal(10.0, 0.5, N_BARS)


def _constant(value: float) -> np.ndarray:
    return np.full(N_BARS, value)


def flat_bars() -> pl.DataFrame:
    return bars_frame(*(_constant(100.0) for _ in range(4)), _constant(1000.0))


def zero_volume_bars() -> pl.DataFrame:
    open_, high, low, close, _ = _walk()
    return bars_frame(open_, high, low, close, _constant(0.0))


def open_equals_close_bars() -> pl.DataFrame:
    open_, high, low, close, volume = _walk()
    every_third = np.arange(N_BARS) % 3 == 0
    return bars_frame(np.where(every_third, close, open_), high, low, close, volume)


def zero_sigma_bars() -> pl.DataFrame:
    """Closes never move (sigma 0) while highs and lows do: the swing excursion case."""
    _, _, _, _, volume = _walk()
    return bars_frame(_constant(100.0), _constant(101.0), _constant(99.0), _constant(100.0), volume)


def flat_then_moving_bars() -> pl.DataFrame:
    """A halted stretch (flat, no volume), then trading: ratios against the flat past."""
    flat = np.arange(N_BARS) < N_BARS // 2
    walk = _walk()
    prices = [np.where(flat, 100.0, values) for values in walk[:4]]
    return bars_frame(*prices, np.where(flat, 0.0, walk[4]))


def huge_high_bars() -> pl.DataFrame:
    open_, high, low, close, volume = _walk()
    high = high.copy()
    high[HUGE_AT] = 1e300
    return bars_frame(open_, high, low, close, volume)


CASES: dict[str, Callable[[], pl.DataFrame]] = {
    "flat": flat_bars,
    "zero_volume": zero_volume_bars,
    "open_equals_close": open_equals_close_bars,
    "zero_sigma": zero_sigma_bars,
    "flat_then_moving": flat_then_moving_bars,
    "huge_high": huge_high_bars,
}


def infinite_cells(frame: pl.DataFrame) -> dict[str, int]:
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    counts = frame.select(pl.col(floats).is_infinite().sum()).row(0, named=True)
    return {column: count for column, count in counts.items() if count}


def generator_output(case: str, family: str) -> pl.DataFrame:
    return CASES[case]().select(FEATURE_GENERATORS[family].expressions(SCALE))


# --- the guarded-division rule ------------------------------------------------------------


def test_safe_div_is_nan_for_zero_or_infinite_denominators_and_overflow() -> None:
    frame = pl.DataFrame(
        {
            "num": [1.0, 0.0, -1.0, 1.0, None, 1.0, 3.0, 1e300, 1.0],
            "den": [0.0, 0.0, 0.0, math.inf, 2.0, None, 4.0, 1e-300, math.nan],
        }
    )
    result = frame.select(safe_div(pl.col("num"), pl.col("den"))).to_series().to_list()
    assert result[4:7] == [None, None, 0.75]
    assert [math.isnan(v) for i, v in enumerate(result) if i not in (4, 5, 6)] == [True] * 6


def test_safe_log_is_nan_for_non_positive_or_infinite_values() -> None:
    values = pl.DataFrame({"x": [0.0, -1.0, math.inf, math.nan, None, math.e]})
    result = values.select(safe_log(pl.col("x"))).to_series().to_list()
    assert result[4:] == [None, 1.0]
    assert all(math.isnan(v) for v in result[:4])


# --- every generator on degenerate bars ---------------------------------------------------


@pytest.mark.parametrize("family", list(FEATURE_GENERATORS))
@pytest.mark.parametrize("case", list(CASES))
def test_no_generator_emits_inf(case: str, family: str) -> None:
    output = generator_output(case, family)
    assert output.height == N_BARS and output.width > 0
    assert infinite_cells(output) == {}


def test_the_matrix_of_degenerate_but_valid_bars_has_no_inf() -> None:
    symbols = [case for case in CASES if case != "huge_high"]
    bars = pl.concat(
        CASES[case]().with_columns(pl.lit(case.upper()).alias("symbol")) for case in symbols
    )
    matrix = build_feature_matrix(bars, "small")
    assert matrix.width > 1 + 100 * len(symbols)
    assert infinite_cells(matrix) == {}


def test_degenerate_bars_give_nan_where_the_ratio_is_undefined() -> None:
    flat = generator_output("flat", "candlestick")
    assert flat["body_ratio"].is_nan().all()  # 0 / 0: no range
    assert flat["range_to_close"].to_list() == [0.0] * N_BARS
    zero_volume = generator_output("zero_volume", "technical")
    assert zero_volume["volume_ratio_5"].slice(4).is_nan().all()
    moving = generator_output("flat_then_moving", "volatility")
    # realised vol over the flat stretch is 0, so the change against it is undefined.
    vol_change, vol = moving["vol_change_5"].to_list(), moving["realised_vol_5"].to_list()
    first_move = N_BARS // 2
    assert vol[first_move - 1] == 0.0 and vol[first_move] > 0.0
    assert all(math.isnan(v) for v in vol_change[first_move : first_move + 5])
    assert vol_change[first_move + 5] == vol[first_move + 5] / vol[first_move]


# --- prepare refuses what overflows the float32 matrix ------------------------------------


def _bars_with_huge_high(tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    bars = generate_bars(["AAA", "BBB"], n_bars=400, frequency="1d", seed=11)
    row = pl.int_range(pl.len()).over("symbol")
    huge = (pl.col("symbol") == "BBB") & (row == 250)
    bars = bars.with_columns(pl.when(huge).then(1e300).otherwise(pl.col("high")).alias("high"))
    path = tmp_path / "bars.parquet"
    bars.write_parquet(path)
    return path, bars


def test_prepare_refuses_features_that_overflow_naming_columns_and_bar(tmp_path: Path) -> None:
    data, bars = _bars_with_huge_high(tmp_path)
    base = load_environment("local-dev")
    grid = {
        "windows": [3, 10],
        "swing_types": ["high", "low"],
        "std_thresholds": [1.0],
        "move_thresholds": [1.0],
        "horizons": [6],
    }
    config = with_data_uri(base, str(data)).model_copy(
        update={"grid": base.grid.model_validate(grid)}
    )
    with pytest.raises(DataError) as raised:
        run_prepare(config, str(tmp_path / "run"))
    message = str(raised.value)
    huge_day = bars.filter(pl.col("high") == 1e300)["timestamp"].item()
    assert message.startswith(f"{data}: ")
    assert " feature cells are ±inf in " in message
    assert "BBB__candlestick__range_to_close (1), BBB__candlestick__range_change (1)" in message
    assert f"the largest value of BBB is high = 1e+300 at {huge_day}" in message
    assert "symbols BBB;" in message and "check the input bars" in message
    assert "\n" not in message
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_prepare_check_passes_the_same_bars_without_the_huge_value(tmp_path: Path) -> None:
    _, bars = _bars_with_huge_high(tmp_path)
    clean = bars.with_columns(pl.col("high").clip(upper_bound=pl.col("close") * 1.5))
    assert refuse_infinite_features(build_feature_matrix(clean, "small"), clean, "x") is None

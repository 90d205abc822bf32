"""Synthetic OHLCV bars with the structure of real crypto markets, for tests and local runs.

Returns follow a common market factor led by the first symbol, GARCH(1,1) volatility
clustering, a bull/bear/sideways Markov regime, fat tails and Poisson jumps. Optionally some
symbols carry a planted, learnable precursor with known ground truth (`planted`, see
`alphafactory.data.planted`); without it the bars hold no signal for the swing labels.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from alphafactory.config.schema import PlantConfig
from alphafactory.data.planted import MARK_KINDS, plant_precursor, planted_ground_truth
from alphafactory.errors import DataError

__all__ = [
    "SUPPORTED_FREQUENCIES",
    "frequency_to_timedelta",
    "generate_bars",
    "generate_bars_with_marks",
    "generate_bars_with_truth",
]

logger = logging.getLogger(__name__)

SUPPORTED_FREQUENCIES = ("1m", "5m", "15m", "1h", "4h", "1d")
_FREQUENCY_PATTERN = re.compile(r"^(\d+)([mhd])$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}
_MINUTES_PER_YEAR = 365.0 * 1440.0

# Plausible early-2019 prices and annualised volatilities; unknown names get the default.
_START_PRICES = {"BTC": 3_500.0, "ETH": 130.0, "SOL": 1.0}
_ANNUAL_VOLS = {"BTC": 0.65, "ETH": 0.85, "SOL": 1.10}
_BASE_DAILY_VOLUMES = {"BTC": 30_000.0, "ETH": 400_000.0, "SOL": 5_000_000.0}
_DEFAULT_START_PRICE = 100.0
_DEFAULT_ANNUAL_VOL = 0.80
_DEFAULT_DAILY_VOLUME = 200_000.0

# Share of each symbol's diffusion variance explained by the market factor: the leader is
# mostly market, followers less so, which puts pairwise correlations near 0.55-0.75.
_LEADER_MARKET_SHARE = 0.80
_FOLLOWER_MARKET_SHARE = 0.65
# Followers also react to the leader's previous bar: a weak, realistic lead-lag.
_FOLLOWER_LAG_LOADING = 0.08

_GARCH_ALPHA = 0.09
_GARCH_BETA = 0.89
_STUDENT_T_DOF = 6.0

# Regimes: bull, bear, sideways. Annual drift, volatility multiplier, mean duration in days.
_REGIME_DRIFTS = np.array([0.90, -0.70, 0.0])
_REGIME_VOL_MULTIPLIERS = np.array([0.95, 1.35, 0.70])
_REGIME_MEAN_DAYS = np.array([45.0, 30.0, 40.0])

_JUMPS_PER_DAY = 0.08
_JUMP_MEAN_IN_DAILY_VOLS = -0.1
_JUMP_STD_IN_DAILY_VOLS = 0.5


@dataclass(frozen=True)
class _SymbolParams:
    start_prices: np.ndarray
    bar_vols: np.ndarray
    daily_vols: np.ndarray
    base_volumes: np.ndarray
    market_shares: np.ndarray


def frequency_to_timedelta(frequency: str) -> timedelta:
    """Turn a bar frequency such as ``"1m"``, ``"15m"``, ``"4h"`` or ``"1d"`` into a timedelta."""
    match = _FREQUENCY_PATTERN.match(frequency.strip())
    if match is None or int(match.group(1)) == 0:
        raise DataError(
            f"frequency {frequency!r} is not understood; use a positive count and a unit "
            f"m/h/d such as {', '.join(SUPPORTED_FREQUENCIES)}"
        )
    return timedelta(minutes=int(match.group(1)) * _UNIT_MINUTES[match.group(2)])


def generate_bars(
    symbols: Sequence[str] = ("BTC", "ETH", "SOL"),
    n_bars: int = 8760,
    frequency: str = "1h",
    seed: int = 7,
    start: datetime = datetime(2019, 1, 1, tzinfo=UTC),
    *,
    planted: PlantConfig | None = None,
) -> pl.DataFrame:
    """Generate deterministic synthetic OHLCV bars for several correlated symbols.

    Args:
        symbols: Symbol names; the first one leads the common market factor.
        n_bars: Bars per symbol; every symbol gets the same timestamps.
        frequency: Bar spacing, e.g. ``"1m"``, ``"5m"``, ``"15m"``, ``"1h"``, ``"4h"``, ``"1d"``.
        seed: Seed of the random generator; the same seed gives the same frame.
        start: Timestamp of the first bar; a naive datetime is taken as UTC.
        planted: Symbols that carry a planted precursor (see `alphafactory.data.planted`);
            None or no symbols: pure noise, byte-identical to a generation without it.
            Unplanted symbols are byte-identical to an unplanted generation either way.

    Returns:
        Columns ``timestamp`` (Datetime us UTC), ``symbol`` (String) and Float64
        ``open``, ``high``, ``low``, ``close``, ``volume``, sorted by symbol then timestamp.

    Example:
        >>> bars = generate_bars(("BTC", "ETH"), n_bars=48, seed=1)
        >>> bars.shape
        (96, 7)
    """
    bars, _ = generate_bars_with_marks(symbols, n_bars, frequency, seed, start, planted=planted)
    return bars


def generate_bars_with_marks(
    symbols: Sequence[str] = ("BTC", "ETH", "SOL"),
    n_bars: int = 8760,
    frequency: str = "1h",
    seed: int = 7,
    start: datetime = datetime(2019, 1, 1, tzinfo=UTC),
    *,
    planted: PlantConfig | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`generate_bars` plus the planted events: ``(bars, marks)``.

    ``marks`` has one row per planted event: ``timestamp`` (the marked bar), ``symbol``,
    ``swing_type`` (``"high"`` after a new two-bar high, ``"low"`` after a new low) and
    ``kind`` (``"breakout"``: volume spike, ``"reversion"``: volume drought), sorted by symbol
    then timestamp; empty without planting.
    """
    symbol_list = _check_arguments(symbols, n_bars)
    planted_columns = _planted_columns(symbol_list, planted)
    step = frequency_to_timedelta(frequency)
    bar_minutes = step.total_seconds() / 60.0
    rng = np.random.default_rng(seed)
    params = _symbol_params(symbol_list, bar_minutes)
    regimes = _regime_path(rng, n_bars, bar_minutes)
    plant = _Plant(planted, planted_columns, seed) if planted and planted_columns else None
    # A planted run is a controlled experiment: the weak lead-lag of followers on the
    # leader's previous bar is a real signal too, so it is switched off there and every
    # unplanted symbol is pure noise for the labels.
    log_returns, conditional_vols = _log_returns(
        rng, params, regimes, bar_minutes, lead_lag=plant is None
    )
    frame, marks = _assemble_frame(rng, symbol_list, params, log_returns, conditional_vols, plant)
    timestamps = _timestamps(start, step, n_bars)
    timestamp_column = pl.Series("timestamp", np.tile(timestamps, len(symbol_list)))
    frame = frame.with_columns(timestamp_column.dt.replace_time_zone("UTC"))
    logger.debug("generated %d synthetic bars for %s at %s", frame.height, symbol_list, frequency)
    bars = frame.select("timestamp", "symbol", "open", "high", "low", "close", "volume").sort(
        "symbol", "timestamp", maintain_order=True
    )
    return bars, _marks_frame(symbol_list, timestamps, marks)


def generate_bars_with_truth(
    symbols: Sequence[str] = ("BTC", "ETH", "SOL"),
    n_bars: int = 8760,
    frequency: str = "1h",
    seed: int = 7,
    start: datetime = datetime(2019, 1, 1, tzinfo=UTC),
    *,
    planted: PlantConfig | None = None,
    windows: Sequence[int] = (2, 3, 5, 10, 20, 50),
    swing_types: Sequence[str] = ("high", "low"),
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """`generate_bars` plus its JSON-friendly ground truth (`planted_ground_truth`)."""
    bars, marks = generate_bars_with_marks(symbols, n_bars, frequency, seed, start, planted=planted)
    config = planted if planted is not None else PlantConfig()
    truth = planted_ground_truth(config, list(symbols), windows, swing_types, marks)
    return bars, truth


@dataclass(frozen=True)
class _Plant:
    config: PlantConfig
    columns: list[int]
    seed: int


def _planted_columns(symbols: list[str], planted: PlantConfig | None) -> list[int]:
    """Column indices of the planted symbols; DataError for a symbol that is not generated."""
    if planted is None:
        return []
    for symbol in planted.symbols:
        if symbol not in symbols:
            raise DataError(
                f"planted symbol {symbol!r} is not among the generated symbols {symbols}; "
                "add it to data.symbols or remove it from data.planted.symbols"
            )
    return [symbols.index(s) for s in dict.fromkeys(planted.symbols)]


def _check_arguments(symbols: Sequence[str], n_bars: int) -> list[str]:
    if isinstance(symbols, str):
        raise DataError(f"symbols={symbols!r} is one string; pass a list such as ['BTC', 'ETH']")
    symbol_list = [str(symbol) for symbol in symbols]
    if not symbol_list:
        raise DataError("symbols is empty; pass at least one symbol such as ['BTC']")
    duplicates = sorted({s for s in symbol_list if symbol_list.count(s) > 1})
    if duplicates:
        raise DataError(f"symbols {duplicates} are repeated; list each symbol once")
    if n_bars < 2:
        raise DataError(f"n_bars={n_bars} is too small; generate at least 2 bars per symbol")
    return symbol_list


def _symbol_params(symbols: list[str], bar_minutes: float) -> _SymbolParams:
    annual_vols = np.array([_ANNUAL_VOLS.get(s, _DEFAULT_ANNUAL_VOL) for s in symbols])
    daily_volumes = np.array([_BASE_DAILY_VOLUMES.get(s, _DEFAULT_DAILY_VOLUME) for s in symbols])
    shares = np.full(len(symbols), _FOLLOWER_MARKET_SHARE)
    shares[0] = _LEADER_MARKET_SHARE
    return _SymbolParams(
        start_prices=np.array([_START_PRICES.get(s, _DEFAULT_START_PRICE) for s in symbols]),
        bar_vols=annual_vols * np.sqrt(bar_minutes / _MINUTES_PER_YEAR),
        daily_vols=annual_vols * np.sqrt(1440.0 / _MINUTES_PER_YEAR),
        base_volumes=daily_volumes * bar_minutes / 1440.0,
        market_shares=shares,
    )


def _regime_path(rng: np.random.Generator, n_bars: int, bar_minutes: float) -> np.ndarray:
    """Markov regime per bar, sampled as geometric sojourns so the loop runs per regime."""
    mean_bars = np.maximum(_REGIME_MEAN_DAYS * 1440.0 / bar_minutes, 1.0)
    regimes = np.empty(n_bars, dtype=np.int64)
    state = int(rng.integers(3))
    position = 0
    while position < n_bars:
        duration = int(rng.geometric(1.0 / mean_bars[state]))
        regimes[position : position + duration] = state
        position += duration
        # Leave the current regime for one of the other two with equal probability.
        state = (state + 1 + int(rng.integers(2))) % 3
    return regimes


def _student_t(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Student-t draws: fat-tailed shocks."""
    scale = np.sqrt((_STUDENT_T_DOF - 2.0) / _STUDENT_T_DOF)
    return rng.standard_t(_STUDENT_T_DOF, size=shape) * scale


def _garch_path(shocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) filter of unit shocks with unconditional variance one: (series, vols)."""
    omega = 1.0 - _GARCH_ALPHA - _GARCH_BETA
    vols = np.empty_like(shocks)
    variance = 1.0
    # Sequential by nature; scalar floats keep the loop cheap (~5 ms per 10k bars).
    for step, shock in enumerate(shocks.tolist()):
        vol = variance**0.5
        vols[step] = vol
        variance = omega + _GARCH_ALPHA * (vol * shock) ** 2 + _GARCH_BETA * variance
    return vols * shocks, vols


def _log_returns(
    rng: np.random.Generator,
    params: _SymbolParams,
    regimes: np.ndarray,
    bar_minutes: float,
    *,
    lead_lag: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Log returns and conditional volatilities, shape (n_bars, n_symbols)."""
    n_bars, n_symbols = regimes.shape[0], params.start_prices.shape[0]
    market, garch_vols = _garch_path(_student_t(rng, (n_bars,)))
    # One volatility process for all: crypto volatility is overwhelmingly common, and a
    # shared process keeps the realised correlation near the market share on every seed.
    idiosyncratic = garch_vols[:, None] * _student_t(rng, (n_bars, n_symbols))
    lagged_market = np.concatenate([[0.0], market[:-1]])[:, None]
    lag_loading = np.full(n_symbols, _FOLLOWER_LAG_LOADING if lead_lag else 0.0)
    lag_loading[0] = 0.0
    shares = params.market_shares
    diffusion = np.sqrt(shares) * market[:, None] + np.sqrt(1.0 - shares) * idiosyncratic
    diffusion = diffusion + lag_loading * lagged_market
    scaled_vols = params.bar_vols * _REGIME_VOL_MULTIPLIERS[regimes][:, None]
    drift = (_REGIME_DRIFTS[regimes] * bar_minutes / _MINUTES_PER_YEAR)[:, None]
    # Drifts are log drifts (no -sigma^2/2 term), so the median path trends with the regime.
    returns = drift + scaled_vols * diffusion + _jumps(rng, params, n_bars, bar_minutes)
    return returns, scaled_vols * garch_vols[:, None]


def _jumps(
    rng: np.random.Generator, params: _SymbolParams, n_bars: int, bar_minutes: float
) -> np.ndarray:
    """Compound-Poisson jumps per symbol, sized in units of the symbol's daily volatility."""
    n_symbols = params.start_prices.shape[0]
    counts = rng.poisson(_JUMPS_PER_DAY * bar_minutes / 1440.0, size=(n_bars, n_symbols))
    normals = rng.standard_normal((n_bars, n_symbols))
    sizes = _JUMP_MEAN_IN_DAILY_VOLS * counts + _JUMP_STD_IN_DAILY_VOLS * np.sqrt(counts) * normals
    return sizes * params.daily_vols


def _assemble_frame(
    rng: np.random.Generator,
    symbols: list[str],
    params: _SymbolParams,
    log_returns: np.ndarray,
    conditional_vols: np.ndarray,
    plant: _Plant | None = None,
) -> tuple[pl.DataFrame, np.ndarray]:
    """Prices, intrabar extremes and volume in long format (symbol-major), and the marks."""
    # Extremes beyond open/close scale with the bar's volatility (half-normal excursions).
    excursion_scale = 0.6 * conditional_vols
    upper = np.abs(rng.standard_normal(log_returns.shape)) * excursion_scale
    lower = np.abs(rng.standard_normal(log_returns.shape)) * excursion_scale
    volume = _volumes(rng, params, log_returns, conditional_vols)
    marks = np.zeros(log_returns.shape, dtype=np.int8)
    if plant is not None:
        log_returns, volume = log_returns.copy(), volume.copy()
        for column in plant.columns:
            # Its own stream per symbol: the main stream and other symbols never shift.
            plant_rng = np.random.default_rng([plant.seed, 1, column])
            series = plant_precursor(
                log_returns[:, column],
                conditional_vols[:, column],
                volume[:, column],
                upper[:, column],
                lower[:, column],
                plant_rng,
                plant.config,
            )
            log_returns[:, column] = series.log_returns
            volume[:, column] = series.volumes
            marks[:, column] = series.marks
    log_close = np.log(params.start_prices) + np.cumsum(log_returns, axis=0)
    close = np.exp(log_close)
    open_ = np.vstack([params.start_prices[None, :], close[:-1]])
    high = np.maximum(open_, close) * np.exp(upper)
    low = np.minimum(open_, close) * np.exp(-lower)
    n_bars = close.shape[0]
    frame = pl.DataFrame(
        {
            "symbol": np.repeat(np.array(symbols, dtype=object), n_bars),
            "open": open_.T.ravel(),
            "high": high.T.ravel(),
            "low": low.T.ravel(),
            "close": close.T.ravel(),
            "volume": volume.T.ravel(),
        },
        schema={
            "symbol": pl.String,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
        },
    )
    return frame, marks


def _marks_frame(symbols: list[str], timestamps: np.ndarray, marks: np.ndarray) -> pl.DataFrame:
    """One row per planted event, sorted by symbol then timestamp."""
    bar_index, column = np.nonzero(marks)
    codes = marks[bar_index, column].tolist()
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series(timestamps[bar_index], dtype=pl.Datetime("us")),
            "symbol": pl.Series([symbols[c] for c in column.tolist()], dtype=pl.String),
            "swing_type": pl.Series(["high" if c > 0 else "low" for c in codes], dtype=pl.String),
            "kind": pl.Series([MARK_KINDS[abs(c)] for c in codes], dtype=pl.String),
        }
    )
    frame = frame.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))
    return frame.sort("symbol", "timestamp")


def _volumes(
    rng: np.random.Generator,
    params: _SymbolParams,
    log_returns: np.ndarray,
    conditional_vols: np.ndarray,
) -> np.ndarray:
    """Positive volume that rises with |return| and with the volatility level."""
    surprise = np.abs(log_returns) / params.bar_vols
    vol_level = conditional_vols / params.bar_vols
    noise = rng.normal(0.0, 0.35, size=log_returns.shape)
    return params.base_volumes * (0.4 + 0.6 * surprise) * np.sqrt(vol_level) * np.exp(noise)


def _timestamps(start: datetime, step: timedelta, n_bars: int) -> np.ndarray:
    """n_bars UTC timestamps as naive datetime64[us] (polars adds the zone)."""
    start_utc = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    first = np.datetime64(start_utc.replace(tzinfo=None), "us")
    return first + np.arange(n_bars) * np.timedelta64(step, "us")

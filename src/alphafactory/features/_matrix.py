"""Build the wide cross-asset feature matrix and name the columns that leak a target."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import polars as pl

from alphafactory.errors import ConfigError, DataError
from alphafactory.features._base import FeatureGenerator, FeatureScale, scale_preset
from alphafactory.features._market_structure import SWING_EXCURSION, SWING_FLAG
from alphafactory.features._registry import FEATURE_GENERATORS
from alphafactory.names import SAFE_NAME_RULE, is_safe_name

SEPARATOR = "__"
TEMPORAL_PREFIX = f"time{SEPARATOR}temporal{SEPARATOR}"
_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_REQUIRED_COLUMNS = ("timestamp", "symbol", *_PRICE_COLUMNS)
_SWING_TYPES = ("high", "low")


def build_feature_matrix(
    bars: pl.DataFrame,
    scale: FeatureScale | str = "small",
    generators: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Compute every family's features per symbol and join them into one wide frame.

    Args:
        bars: OHLCV bars with ``timestamp``, ``symbol``, ``open``, ``high``, ``low``,
            ``close``, ``volume``; one row per (symbol, timestamp).
        scale: a :class:`FeatureScale` or a preset name (``"small"``, ``"full"``).
        generators: family names from ``FEATURE_GENERATORS``; all of them when None.

    Returns:
        ``timestamp`` (the sorted union of all symbols' timestamps), then Float32 columns
        ``{SYMBOL}__{family}__{name}`` per symbol in sorted symbol order (each symbol's base
        features by family, then their lagged copies ``..._lag{n}``), then
        ``time__temporal__{name}`` once.
        A symbol's features are null at timestamps where it has no bar and during warm-up.

    Raises:
        ConfigError: an unknown scale or generator name.
        DataError: missing columns, an empty frame or duplicate (symbol, timestamp) rows.

    Example:
        >>> matrix = build_feature_matrix(bars, "small", ["volatility"])  # doctest: +SKIP
    """
    resolved_scale = _resolve_scale(scale)
    families = _resolve_generators(generators)
    clean_bars = _validated(bars)
    timestamps = clean_bars.select("timestamp").unique().sort("timestamp")
    symbols = sorted(clean_bars.get_column("symbol").unique().to_list())
    per_symbol = [family for family in families if family.name != "temporal"]
    plans: list[pl.LazyFrame] = []
    if per_symbol:
        by_symbol = clean_bars.partition_by("symbol", as_dict=True)
        for symbol in symbols:
            symbol_bars = by_symbol[(symbol,)].sort("timestamp")
            plans.append(_symbol_plan(symbol_bars, symbol, per_symbol, resolved_scale))
    if any(family.name == "temporal" for family in families):
        plans.append(_temporal_plan(timestamps, FEATURE_GENERATORS["temporal"], resolved_scale))
    matrix = timestamps
    # The in-memory engine: the streaming one is several times slower on wide rolling selects.
    for frame in pl.collect_all(plans, engine="in-memory"):
        matrix = matrix.join(frame, on="timestamp", how="left", maintain_order="left")
    return matrix


def target_derived_columns(
    columns: Sequence[str],
    symbol: str,
    window: int,
    swing_type: Literal["high", "low"],
) -> list[str]:
    """The columns that restate one swing target's definition, in their matrix order.

    For a target on ``symbol`` with ``window`` and ``swing_type`` these are the swing flag
    ``{symbol}__market_structure__swing_{type}_w{window}`` and the excursion
    ``{symbol}__market_structure__swing_{type}_excursion_w{window}``, where present.

    Raises:
        ConfigError: ``swing_type`` is neither "high" nor "low".
    """
    if swing_type not in _SWING_TYPES:
        raise ConfigError(f"swing_type: {swing_type!r} is not one of 'high', 'low'")
    prefix = f"{symbol}{SEPARATOR}market_structure{SEPARATOR}"
    leaking = {
        prefix + SWING_FLAG.format(swing_type=swing_type, window=window),
        prefix + SWING_EXCURSION.format(swing_type=swing_type, window=window),
    }
    return [column for column in columns if column in leaking]


def column_symbol(column: str) -> str | None:
    """The symbol of a per-symbol feature column; None for the shared temporal columns."""
    if column.startswith(TEMPORAL_PREFIX):
        return None
    return column.split(SEPARATOR, 1)[0]


def _resolve_scale(scale: FeatureScale | str) -> FeatureScale:
    if isinstance(scale, FeatureScale):
        return scale
    return scale_preset(cast(Literal["small", "full"], scale))


def _resolve_generators(names: Sequence[str] | None) -> list[FeatureGenerator]:
    if names is None:
        return list(FEATURE_GENERATORS.values())
    unknown = sorted(set(names) - set(FEATURE_GENERATORS))
    if unknown:
        allowed = ", ".join(FEATURE_GENERATORS)
        raise ConfigError(f"features.generators: unknown {unknown}; use any of: {allowed}")
    # Registry order, so the column order does not depend on how the names were listed.
    return [generator for name, generator in FEATURE_GENERATORS.items() if name in names]


def _validated(bars: pl.DataFrame) -> pl.DataFrame:
    missing = [column for column in _REQUIRED_COLUMNS if column not in bars.columns]
    if missing:
        raise DataError(f"bars: missing columns {missing}; expected {list(_REQUIRED_COLUMNS)}")
    if bars.height == 0:
        raise DataError("bars: the frame is empty; load or generate bars first")
    if not isinstance(bars.schema["timestamp"], pl.Datetime):
        raise DataError(f"bars: 'timestamp' is {bars.schema['timestamp']}, expected Datetime")
    clean = bars.select(
        pl.col("timestamp"),
        pl.col("symbol").cast(pl.String),
        *[pl.col(column).cast(pl.Float64) for column in _PRICE_COLUMNS],
    )
    if clean.select(pl.struct("symbol", "timestamp").is_duplicated().any()).item():
        raise DataError("bars: duplicate (symbol, timestamp) rows; keep one bar per timestamp")
    # the safe-name rule excludes SEPARATOR, which joins symbol and feature names
    bad_symbols = [s for s in clean.get_column("symbol").unique() if not is_safe_name(s)]
    if bad_symbols:
        raise DataError(
            f"bars: symbols {sorted(map(str, bad_symbols))} are not safe names; "
            f"use {SAFE_NAME_RULE}"
        )
    return clean


def _symbol_plan(
    symbol_bars: pl.DataFrame,
    symbol: str,
    families: Sequence[FeatureGenerator],
    scale: FeatureScale,
) -> pl.LazyFrame:
    base: list[pl.Expr] = []
    for family in families:
        prefix = f"{symbol}{SEPARATOR}{family.name}{SEPARATOR}"
        base.extend(expr.name.prefix(prefix).cast(pl.Float32) for expr in family.expressions(scale))
    plan = symbol_bars.lazy().select(pl.col("timestamp"), *base)
    if scale.lags:
        names = plan.collect_schema().names()[1:]
        plan = plan.with_columns(
            pl.col(name).shift(lag).alias(f"{name}_lag{lag}")
            for lag in scale.lags
            for name in names
        )
    return plan


def _temporal_plan(
    timestamps: pl.DataFrame, temporal: FeatureGenerator, scale: FeatureScale
) -> pl.LazyFrame:
    features = [
        expr.name.prefix(TEMPORAL_PREFIX).cast(pl.Float32) for expr in temporal.expressions(scale)
    ]
    return timestamps.lazy().select(pl.col("timestamp"), *features)

"""Prepare stage: bars → features (hygiene-filtered float32 matrix) + targets + the run plan."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.bars import NUMERIC_COLUMNS, data_hash, infer_frequency
from alphafactory.data.sources import (
    LoadedBars,
    load_source,
    read_bars_origin,
    reload_source,
    runs_folder,
    write_bars_origin,
)
from alphafactory.data.splits import make_periods
from alphafactory.errors import DataError
from alphafactory.features import build_feature_matrix, column_symbol
from alphafactory.layout import Plan, RunLayout
from alphafactory.stages.hygiene import apply_hygiene
from alphafactory.targets.swing import build_targets
from alphafactory.targets.variants import expand_grid, group_variants, plan_shards

log = logging.getLogger(__name__)

_SHOWN_COLUMNS = 3


def load_source_bars(
    config: EnvironmentConfig, runs_dir: str | None = None
) -> tuple[pl.DataFrame, dict[str, Any] | None]:
    """The environment's bars from its source (`alphafactory.data.sources`): synthetic bars
    come with the ground truth of the signal they planted (None for any other data). A
    synthetic fallback is logged as a warning; `load_source` also returns its marker."""
    loaded = load_source(config, runs_dir)
    return loaded.bars, loaded.truth


def load_run_bars(config: EnvironmentConfig, run_dir: str) -> pl.DataFrame:
    """The bars that prepare used for the run in `run_dir`: the range it recorded, read from
    the raw-bar cache, or the same synthetic fallback (runs without a record: the source)."""
    origin = read_bars_origin(run_dir)
    runs_dir = runs_folder(run_dir)
    if origin is None:
        return load_source(config, runs_dir).bars
    return reload_source(config, origin, runs_dir).bars


def check_source(config: EnvironmentConfig, runs_dir: str) -> LoadedBars | None:
    """Before a run: the configured source's bars, checked to be long enough for the grid
    (a network source's fetch fills the raw-bar cache the prepare task then reads); None for
    the embedded synthetic bars, which need no check."""
    if config.data.source == "synthetic":
        return None
    loaded = load_source(config, runs_dir)
    check_enough_bars(loaded.bars, config, loaded.origin.label)
    return loaded


def check_enough_bars(bars: pl.DataFrame, config: EnvironmentConfig, source: str) -> None:
    """Refuse data too short for the largest window and horizon, naming the symbol."""
    needed = max(config.grid.windows) * 2 + max(config.grid.horizons) + 200
    counts = bars.group_by("symbol").len().sort("symbol")
    for symbol, count in counts.iter_rows():
        if count < needed:
            raise DataError(
                f"{source}: symbol {symbol} has {count} bars; this grid needs at least {needed} "
                "(largest window x 2 + largest horizon + 200 warm-up); supply more history "
                "or shrink grid.windows / grid.horizons"
            )


def refuse_infinite_features(features: pl.DataFrame, bars: pl.DataFrame, source: str) -> None:
    """Refuse a feature matrix with ±inf cells, naming the columns and the bar behind them.

    The generators never divide into ±inf, so an infinite cell is an input value beyond the
    float32 range of the matrix (a high of 1e300, say): the models must not see it.
    """
    counts = features.select(pl.exclude("timestamp").is_infinite().sum()).row(0, named=True)
    infinite = {column: count for column, count in counts.items() if count}
    if not infinite:
        return
    shown = ", ".join(f"{c} ({n})" for c, n in list(infinite.items())[:_SHOWN_COLUMNS])
    more = f" and {len(infinite) - _SHOWN_COLUMNS} more" if len(infinite) > _SHOWN_COLUMNS else ""
    symbols = sorted({s for s in map(column_symbol, infinite) if s is not None})
    culprit = _largest_bar_value(bars, symbols[0]) if symbols else ""
    raise DataError(
        f"{source}: {sum(infinite.values())} feature cells are ±inf in {len(infinite)} columns: "
        f"{shown}{more}; symbols {', '.join(symbols)}{culprit}; check the input bars for "
        "absurd or overflowing values (the features are float32, at most 3.4e38)"
    )


def _largest_bar_value(bars: pl.DataFrame, symbol: str) -> str:
    """'; the largest value of SYMBOL is high = 1e+300 at <timestamp>' for the message."""
    values = (
        bars.filter(pl.col("symbol") == symbol)
        .select("timestamp", *[pl.col(c).cast(pl.Float64) for c in NUMERIC_COLUMNS])
        .unpivot(index="timestamp")
        .filter(pl.col("value").is_not_nan())
        .sort(pl.col("value").abs(), descending=True, nulls_last=True)
    )
    if values.height == 0:
        return ""
    timestamp, column, value = values.row(0)
    return f"; the largest value of {symbol} is {column} = {value:.6g} at {timestamp}"


def run_prepare(config: EnvironmentConfig, run_dir: str) -> dict[str, Any]:
    """Build and write the feature matrix, targets per group and the plan; return metrics."""
    layout = RunLayout(run_dir)
    loaded = load_source(config, runs_folder(run_dir))
    bars, truth, source = loaded.bars, loaded.truth, loaded.origin.label
    check_enough_bars(bars, config, source)
    symbols = sorted(bars["symbol"].unique().to_list())
    log.info("prepare: %d bars for %s", bars.height, ", ".join(symbols))

    features = build_feature_matrix(bars, config.features.scale)
    refuse_infinite_features(features, bars, source)
    timeline = features["timestamp"].cast(pl.Datetime("us")).to_numpy()
    periods = make_periods(timeline, config.split.selection_fraction, config.split.test_fraction)
    # Hygiene is a choice: its statistics never see the test period.
    before_test = features.filter(pl.Series(timeline < periods.test_start))
    report = apply_hygiene(before_test, config.prepare)
    matrix = features.select(
        "timestamp", *[pl.col(c).cast(pl.Float32).fill_nan(None) for c in report.kept]
    )
    io.write_parquet(layout.features, matrix)
    log.info("prepare: kept %d of %d features", len(report.kept), features.width - 1)

    targets = build_targets(bars, config.grid, symbols)
    for gid, frame in targets.items():
        io.write_parquet(layout.targets(gid), frame)

    groups = group_variants(expand_grid(config.grid, symbols))
    plan = Plan(
        symbols=symbols,
        groups=groups,
        shards=plan_shards(list(groups), config.parallelism.shards),
        bar_seconds=infer_frequency(bars).total_seconds(),
        periods=periods,
        data_hash=data_hash(bars),
        n_rows=matrix.height,
    )
    if truth is not None:
        io.write_json(layout.ground_truth, truth)
    write_bars_origin(layout, loaded.origin)
    io.write_json(layout.plan, plan.to_dict())
    io.write_json(
        layout.path("prepare", "report.json"),
        {"counts": report.counts(), "dropped": report.dropped, "kept": len(report.kept)},
    )
    return {
        "rows": matrix.height,
        "features_generated": features.width - 1,
        "features_kept": len(report.kept),
        **{f"dropped_{name}": count for name, count in report.counts().items()},
        "variants": plan.n_variants,
        "groups": len(groups),
        "shards": len(plan.shards),
        "synthetic_fallback": int(loaded.origin.fallback),
    }

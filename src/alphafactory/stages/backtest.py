"""Backtest stage: every group champion walked forward over the untouched test period, its
trades and trading metrics, and the population scores of the choice that made it champion.

* The champion (variant, family, production parameters) is refitted per window on history
  before the window, with the production model's number of rounds (chosen on the selection
  period: the champion re-estimated, not re-tuned; families without one early-stop on the
  latest part of the window's history), and trades the window's events by the `backtest`
  rule: next-bar entry, the label's barriers, costs.
* Deflated Sharpe: the champion's test-period Sharpe against the best Sharpe expected from
  the number of trials the run took for the group (stage-1 fits of every family plus the
  tuning trials), with the trials' Sharpe variance taken from the stage-1 population.
* PBO: the stage-1 LightGBM variants of the group, each trading its selection-period
  predictions, are the population of the combinatorially symmetric cross-validation.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from alphafactory import io
from alphafactory.backtest.metrics import drawdown_curve, equity_curve
from alphafactory.backtest.population import deflated_sharpe, pbo, sharpe_per_column
from alphafactory.backtest.trades import PRICE_COLUMNS, TradeRule, simulate_trades
from alphafactory.backtest.variant import VariantBacktest, backtest_variant
from alphafactory.backtest.windows import Length, WindowSpec
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.bars import data_hash
from alphafactory.data.splits import label_end_column
from alphafactory.errors import DataError
from alphafactory.layout import Plan, RunLayout, read_plan
from alphafactory.models import FitBudget, Sample, family
from alphafactory.progress import tracked
from alphafactory.stages.common import Matrix, load_matrix
from alphafactory.stages.family_fit import fit_budget, masked_samples
from alphafactory.stages.fitting import read_targets
from alphafactory.stages.prepare import load_run_bars
from alphafactory.targets.variants import Variant

log = logging.getLogger(__name__)


def trade_rule(config: EnvironmentConfig) -> TradeRule:
    settings = config.backtest
    return TradeRule(settings.min_confidence, settings.fee_bps, settings.slippage_bps)


def window_spec(config: EnvironmentConfig) -> WindowSpec:
    """The environment's windows: in bars, or in calendar days when `train_days` is set."""
    settings = config.backtest
    lengths: tuple[Length, Length, Length | None] = (
        settings.train_bars, settings.test_bars, settings.step_bars
    )  # fmt: skip
    if settings.in_days:
        assert settings.train_days is not None and settings.test_days is not None
        step = None if settings.step_days is None else timedelta(days=settings.step_days)
        lengths = (timedelta(days=settings.train_days), timedelta(days=settings.test_days), step)
    return WindowSpec(
        train=lengths[0], test=lengths[1], step=lengths[2], expanding=settings.expanding,
        embargo_bars=config.split.embargo_bars, valid_fraction=settings.valid_fraction,
        min_train_rows=settings.min_train_rows,
    )  # fmt: skip


def run_bars(config: EnvironmentConfig, plan: Plan, run_dir: str) -> pl.DataFrame:
    """The run's bars again (the range prepare recorded, from the raw-bar cache for a network
    source), refused when they are not the data the run prepared."""
    bars = load_run_bars(config, run_dir)
    if data_hash(bars) != plan.data_hash:
        raise DataError(
            f"{config.data.label} changed since prepare (data hash "
            f"{data_hash(bars)[:12]} != {plan.data_hash[:12]}); re-run the pipeline"
        )
    return bars


def symbol_bars(bars: pl.DataFrame, symbol: str) -> pl.DataFrame:
    return bars.filter(pl.col("symbol") == symbol).sort("timestamp").select(
        "timestamp", *PRICE_COLUMNS
    )  # fmt: skip


def refit_params(family_name: str, production: dict[str, Any]) -> dict[str, Any]:
    """The production parameters a protocol refit takes: the family's own ones (LightGBM's
    production dictionary also holds fixed and dataset settings the family sets itself)."""
    own = family(family_name).params.model_fields
    return {name: value for name, value in production.items() if name in own}


def refit_budget(config: EnvironmentConfig, rounds: int) -> FitBudget:
    """The production model's `rounds` without early stopping; the train stage's budget for
    a family that reports none (0)."""
    if rounds > 0:
        return fit_budget(config, rounds, rounds)
    return fit_budget(config, config.train.num_rounds, config.train.early_stopping)


def group_trials(layout: RunLayout, gid: str) -> int:
    """Trials the run took for a group: stage-1 fits (every family) and tuning trials."""
    stage1 = io.read_json(layout.path("tune", "stage1", "variants.json"))
    count = sum(1 for row in stage1 if row.get("group_id") == gid and row["status"] == "ok")
    for stage in (2, 3, 4):
        if io.exists(layout.tune_winners(stage)):
            units = io.read_json(layout.tune_winners(stage))["units"]
            count += sum(int(u.get("trials", 0)) for u in units.values() if u["group_id"] == gid)
    return max(1, count)


def variant_events(layout: RunLayout, matrix: Matrix, variant: Variant) -> Sample:
    """Every labelled event of the variant (all periods), with its raw label ends."""
    targets = read_targets(layout, [variant], moves=True)
    labelled = targets[variant.variant_id].is_not_null().to_numpy()
    ends = targets[label_end_column(variant.horizon)].cast(pl.Datetime("us")).to_numpy()
    sample, _ = masked_samples(matrix, targets, variant, labelled, ~labelled, ends)
    return sample


def population_returns(
    bars: pl.DataFrame,
    predictions: pl.DataFrame,
    plan: Plan,
    gid: str,
    rule: TradeRule,
) -> tuple[np.ndarray, list[str]]:
    """Per-bar returns (bars × variants) over the selection period of every stage-1 variant
    of the group, trading its selection-period predictions."""
    stamps = bars["timestamp"].cast(pl.Datetime("us")).to_numpy()
    inside = (stamps >= plan.periods.selection_start) & (stamps < plan.periods.test_start)
    columns, names = [], []
    mine = predictions.filter(pl.col("group_id") == gid)
    for vid in sorted(mine["variant_id"].unique().to_list()):
        events = mine.filter(pl.col("variant_id") == vid).drop("group_id", "variant_id")
        trades = simulate_trades(bars, events, plan.variant(gid, vid), rule)
        columns.append(trades.bar_returns[inside])
        names.append(vid)
    if not columns:
        return np.zeros((int(inside.sum()), 0)), names
    return np.column_stack(columns), names


def population_scores(
    champion: VariantBacktest, population: np.ndarray, n_trials: int, config: EnvironmentConfig
) -> dict[str, Any]:
    """Deflated Sharpe of the champion's tested returns; PBO of the stage-1 population."""
    sharpes = sharpe_per_column(population) if population.shape[1] else np.zeros(0)
    finite = sharpes[np.isfinite(sharpes)]
    variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
    deflated = deflated_sharpe(champion.bar_returns, n_trials, variance)
    scores: dict[str, Any] = {
        "n_trials": n_trials,
        "trial_sharpe_variance": variance,
        "deflated_sharpe": deflated.to_dict(),
        "passes_deflated_sharpe": bool(deflated.probability >= config.backtest.significance),
        "pbo": None,
    }
    splits = config.backtest.pbo_splits
    usable = population[:, np.isfinite(sharpes)] if population.shape[1] else population
    if usable.shape[1] >= 2 and usable.shape[0] >= splits:
        result = pbo(usable, n_splits=splits)
        scores["pbo"] = {
            "pbo": result.pbo, "n_strategies": result.n_strategies,
            "n_combinations": result.n_combinations, "n_splits": result.n_splits,
            "median_logit": float(np.median(result.logits)),
        }  # fmt: skip
    return scores


def backtest_group(
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    bars: pl.DataFrame,
    predictions: pl.DataFrame,
    trained: dict[str, Any],
) -> dict[str, Any]:
    """Walk one champion forward over the test period; write its bars and trades."""
    variant = Variant.from_dict(trained["variant"])
    one = symbol_bars(bars, variant.symbol)
    rule = trade_rule(config)
    result = backtest_variant(
        one, variant_events(layout, matrix, variant), variant, trained["family"],
        refit_params(trained["family"], trained["params"]), window_spec(config), rule,
        refit_budget(config, int(trained.get("best_iteration") or 0)),
        calendar=config.backtest.calendar, start=plan.periods.test_start,
    )  # fmt: skip
    population, _ = population_returns(one, predictions, plan, variant.group_id, rule)
    scores = population_scores(result, population, group_trials(layout, variant.group_id), config)
    io.write_parquet(
        layout.backtest_bars(variant.group_id),
        pl.DataFrame(
            {
                "timestamp": pl.Series(result.timestamps).cast(pl.Datetime("us")),
                "position": result.trades.positions[result.tested],
                "bar_return": result.bar_returns,
                "equity": equity_curve(result.bar_returns),
                "drawdown": drawdown_curve(result.bar_returns),
            }
        ),
    )
    io.write_parquet(layout.backtest_trades(variant.group_id), result.trades.trades)
    described = {**result.to_dict(), "family": trained["family"], **scores}
    log.info(
        "backtest: %s %d windows, %d trades, Sharpe %.2f, deflated p %.3f",
        variant.group_id, len(result.walk.records), result.metrics.n_trades,
        result.metrics.sharpe, scores["deflated_sharpe"]["probability"],
    )  # fmt: skip
    return described


def run_backtest_shard(config: EnvironmentConfig, run_dir: str, shard: int) -> dict[str, Any]:
    """Backtest the champions of one shard's groups; write their results."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    trained = io.read_json(layout.train_shard(shard))
    champions = {g: t for g, t in trained.items() if t.get("status") == "ok"}
    results: dict[str, Any] = {}
    if champions and config.backtest.enabled:
        bars = run_bars(config, plan, run_dir)
        matrix = load_matrix(layout, io.read_json(layout.selected_features))
        predictions = io.read_parquet(layout.stage1_predictions(shard))
        for gid, fitted in tracked(champions.items(), run_dir, shard):
            results[gid] = backtest_group(config, layout, plan, matrix, bars, predictions, fitted)
    io.write_json(layout.backtest_shard(shard), results)
    return summary(results)


def run_backtest_aggregate(config: EnvironmentConfig, run_dir: str) -> dict[str, Any]:
    """Fan-in: every shard's backtests in one `backtest/results.json`."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    results: dict[str, Any] = {}
    for shard in range(len(plan.shards)):
        results.update(io.read_json(layout.backtest_shard(shard)))
    io.write_json(layout.backtest_results, {"enabled": config.backtest.enabled, "groups": results})
    return summary(results)


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """KFP metrics of a set of group backtests."""
    sharpes = [r["metrics"]["sharpe"] for r in results.values()]
    finite = [s for s in sharpes if isinstance(s, float) and math.isfinite(s)]
    return {
        "groups_backtested": len(results),
        "refits": sum(r["walk_forward"]["refits"] for r in results.values()),
        "trades": sum(r["metrics"]["n_trades"] for r in results.values()),
        "mean_sharpe": float(np.mean(finite)) if finite else 0.0,
        "passing_deflated_sharpe": sum(r["passes_deflated_sharpe"] for r in results.values()),
    }

"""The backtest stage on the session's tiny run: windows over the test period, next-bar fills,
metrics recomputed from the written bars, planted signal against noise, population scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tiny_run import TinyRuns, tiny_bars

from alphafactory.backtest.population import pbo
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.bars import write_bars
from alphafactory.errors import DataError
from alphafactory.layout import RunLayout, read_plan
from alphafactory.stages.backtest import group_trials, population_scores, run_bars


def _results(runs: TinyRuns) -> dict:
    return json.loads((runs.run_dir / "backtest" / "results.json").read_text())["groups"]


def _trained(runs: TinyRuns) -> dict:
    trained: dict = {}
    for path in sorted((runs.run_dir / "train" / "shards").glob("*.json")):
        trained.update(json.loads(path.read_text()))
    return {gid: t for gid, t in trained.items() if t["status"] == "ok"}


def test_every_champion_walks_forward_over_the_test_period(tiny_runs: TinyRuns) -> None:
    results, trained = _results(tiny_runs), _trained(tiny_runs)
    assert set(results) == set(trained) and len(results) == 8
    plan = read_plan(RunLayout(str(tiny_runs.run_dir)))
    for gid, result in results.items():
        records = result["walk_forward"]["records"]
        assert [r["test_start"] for r in records][0] == plan.periods.to_dict()["test_start"]
        assert [r["status"] for r in records] == ["fitted"] * 4  # 1000 test bars / 250
        for before, after in zip(records, records[1:], strict=False):
            assert before["test_end"] == after["test_start"]  # the windows tile the period
        assert result["family"] == trained[gid]["family"]
        assert result["variant"] == trained[gid]["variant"]


def test_trades_enter_at_the_next_open_after_their_event(tiny_runs: TinyRuns) -> None:
    bars = tiny_bars()
    slip = tiny_runs.config.backtest.slippage_bps / 1e4
    checked = 0
    for gid, result in _results(tiny_runs).items():
        symbol = result["variant"]["symbol"]
        one = bars.filter(pl.col("symbol") == symbol).sort("timestamp")
        stamps = one["timestamp"].cast(pl.Datetime("us")).to_numpy()
        trades = pl.read_parquet(tiny_runs.run_dir / "backtest" / "trades" / f"{gid}.parquet")
        events = trades["event_time"].cast(pl.Datetime("us")).to_numpy()
        entries = trades["entry_time"].cast(pl.Datetime("us")).to_numpy()
        positions = np.searchsorted(stamps, events)
        assert np.array_equal(entries, stamps[positions + 1])  # the very next bar
        opens = one["open"].to_numpy()[positions + 1]
        direction = trades["direction"].to_numpy()
        assert np.allclose(trades["entry_price"].to_numpy(), opens * (1 + direction * slip))
        checked += len(trades)
    assert checked > 500


def test_metrics_are_those_of_the_written_bar_returns(tiny_runs: TinyRuns) -> None:
    for gid, result in _results(tiny_runs).items():
        frame = pl.read_parquet(tiny_runs.run_dir / "backtest" / "equity" / f"{gid}.parquet")
        returns = frame["bar_return"].to_numpy()
        assert len(returns) == 1000  # the tested bars: the whole test period
        metrics = result["metrics"]
        assert math.isclose(metrics["total_return"], np.prod(1 + returns) - 1, rel_tol=1e-9)
        sharpe = returns.mean() / returns.std(ddof=1) * math.sqrt(24 * 365)
        assert math.isclose(metrics["sharpe"], sharpe, rel_tol=1e-9)
        assert math.isclose(metrics["max_drawdown"], frame["drawdown"].max(), rel_tol=1e-9)
        assert metrics["exposure"] == pytest.approx((frame["position"] != 0).mean())


def test_the_planted_symbol_earns_after_costs_and_noise_does_not_pass(
    tiny_runs: TinyRuns,
) -> None:
    results = _results(tiny_runs)
    planted = [r for g, r in results.items() if g.startswith("BTC")]
    noise = [r for g, r in results.items() if g.startswith("ETH")]
    assert len(planted) == 4 and len(noise) == 4
    assert all(r["metrics"]["sharpe"] > 1.0 for r in planted)
    assert sum(r["passes_deflated_sharpe"] for r in planted) >= 2
    assert not any(r["passes_deflated_sharpe"] for r in noise)


def test_trials_are_counted_from_what_the_run_tried(tiny_runs: TinyRuns) -> None:
    layout = RunLayout(str(tiny_runs.run_dir))
    rows = json.loads((tiny_runs.run_dir / "tune" / "stage1" / "variants.json").read_text())
    for gid, result in _results(tiny_runs).items():
        fitted = sum(1 for r in rows if r["group_id"] == gid and r["status"] == "ok")
        assert result["n_trials"] == group_trials(layout, gid) == max(1, fitted)
        assert result["deflated_sharpe"]["n_trials"] == result["n_trials"]


def test_population_scores_deflate_by_the_trials_and_measure_overfitting() -> None:
    """A noise population: PBO from the CSCV of its columns, and a champion whose Sharpe is
    the best of 40 noise columns does not pass once deflated by 40 trials."""
    config = EnvironmentConfig.model_validate({"name": "t", "backtest": {"pbo_splits": 8}})
    rng = np.random.default_rng(3)
    population = rng.normal(0.0, 0.01, size=(800, 40))
    best = int(np.argmax(population.mean(axis=0) / population.std(axis=0, ddof=1)))

    class Champion:  # the attributes population_scores reads
        bar_returns = population[:, best]

    one = population_scores(Champion(), population, 1, config)  # type: ignore[arg-type]
    many = population_scores(Champion(), population, 40, config)  # type: ignore[arg-type]
    assert many["deflated_sharpe"]["probability"] < one["deflated_sharpe"]["probability"]
    assert not many["passes_deflated_sharpe"]
    assert many["pbo"]["pbo"] == pytest.approx(pbo(population, n_splits=8).pbo)
    assert many["pbo"]["n_strategies"] == 40


def test_changed_data_is_refused(tiny_runs: TinyRuns, tmp_path: Path) -> None:
    changed = tiny_bars().with_columns(pl.col("open", "high", "low", "close") * 1.0001)
    uri = str(tmp_path / "changed.parquet")
    write_bars(changed, uri)
    settings = {**tiny_runs.settings, "data": {**tiny_runs.settings["data"], "uri": uri}}
    config = EnvironmentConfig.model_validate(settings)
    with pytest.raises(DataError, match=r"changed since prepare .*re-run the pipeline"):
        run_bars(config, read_plan(RunLayout(str(tiny_runs.run_dir))), str(tiny_runs.run_dir))


def test_windows_in_calendar_days_from_the_environment() -> None:
    from datetime import timedelta

    from alphafactory.config.loader import validate_environment
    from alphafactory.errors import ConfigError
    from alphafactory.stages.backtest import window_spec

    days = {"train_days": 252, "test_days": 63, "step_days": 21}
    spec = window_spec(EnvironmentConfig.model_validate({"name": "t", "backtest": days}))
    assert (spec.train, spec.test, spec.step) == (
        timedelta(days=252), timedelta(days=63), timedelta(days=21),
    )  # fmt: skip
    bars = window_spec(EnvironmentConfig.model_validate({"name": "t"}))
    assert (bars.train, bars.test, bars.step) == (4000, 500, None)
    with pytest.raises(ConfigError, match="set test_days too"):
        validate_environment({"name": "t", "backtest": {"train_days": 252}}, source="env.yaml")

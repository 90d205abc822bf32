"""`alphafactory backtest`: walk a registered model's recipe forward over bars it never saw."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from alphafactory.cli._common import EnvOption, RunsOption, console, errors, guarded

if TYPE_CHECKING:
    from alphafactory.backtest.engine import WindowRecord
    from alphafactory.backtest.registered import RegisteredBacktest
    from alphafactory.backtest.windows import WindowSpec
    from alphafactory.config import EnvironmentConfig


def _spec(config: EnvironmentConfig, train_bars: int | None, test_bars: int | None) -> WindowSpec:
    """The environment's windows (`backtest:`), with the lengths given on the command line."""
    from alphafactory.stages.backtest import window_spec

    spec = window_spec(config)
    if train_bars is not None:
        spec = replace(spec, train=train_bars)
    if test_bars is not None:
        spec = replace(spec, test=test_bars)
    return spec


def _progress(record: WindowRecord, n_windows: int) -> None:
    window = record.window
    errors.print(
        f"window {window.index + 1}/{n_windows} {window.to_dict()['test_start']}: "
        f"{record.status}, {record.n_fit} fit / {record.n_valid} valid / {record.n_test} test "
        f"rows, {record.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


def _number(value: float, percent: bool = False) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.2%}" if percent else f"{value:.4f}"


def _table(run: RegisteredBacktest) -> Table:
    metrics = run.result.metrics
    table = Table(
        title=f"backtest of {run.recipe.model.model_id}",
        caption="[bold red]IN-SAMPLE: figures are optimistic[/]" if run.in_sample else None,
        show_header=False,
    )
    rows = [
        ("variant", run.recipe.variant.variant_id),
        ("family", run.recipe.family),
        ("data", run.source),
        ("first test bar", run.result.walk.records[0].window.to_dict()["test_start"]),
        ("windows", str(len(run.result.walk.records))),
        ("refits", str(run.result.walk.refits)),
        ("trades", str(metrics.n_trades)),
        ("total return", _number(metrics.total_return, percent=True)),
        ("annual return", _number(metrics.annual_return, percent=True)),
        ("Sharpe", _number(metrics.sharpe)),
        ("Sortino", _number(metrics.sortino)),
        ("max drawdown", _number(metrics.max_drawdown, percent=True)),
        ("hit rate", _number(metrics.hit_rate, percent=True)),
        ("profit factor", _number(metrics.profit_factor)),
        ("win/loss", _number(metrics.win_loss_ratio)),
        ("exposure", _number(metrics.exposure, percent=True)),
        ("turnover (annual)", _number(metrics.turnover)),
        ("probabilistic Sharpe", _number(run.probabilistic_sharpe)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _source(config: EnvironmentConfig, data: str | None) -> str:
    if data:
        return data
    return config.data.uri or f"the synthetic bars of environment {config.name}"


def _run(
    env: str,
    runs_dir: Path | None,
    model: str,
    data: str | None,
    in_sample: bool,
    train_bars: int | None,
    test_bars: int | None,
    quiet: bool,
) -> RegisteredBacktest:
    from alphafactory.backtest.registered import load_recipe, run_registered_backtest
    from alphafactory.cli._models import open_registry, resolve_model
    from alphafactory.config import load_environment
    from alphafactory.data.bars import load_bars
    from alphafactory.stages.prepare import load_source_bars

    config = load_environment(env)
    spec = _spec(config, train_bars, test_bars)
    registry = open_registry(env, runs_dir)
    recipe = load_recipe(registry, resolve_model(registry, model))
    bars = load_bars(data) if data else load_source_bars(config)[0]
    return run_registered_backtest(
        config, recipe, bars, _source(config, data), spec, in_sample=in_sample,
        progress=None if quiet else _progress,
    )  # fmt: skip


def backtest_command(
    model: Annotated[str, typer.Option("--model", help="Model id, display name or a unique part")],
    data: Annotated[
        str | None,
        typer.Option(help="Bars (parquet/CSV path or URI); default: the env's data source."),
    ] = None,
    in_sample: Annotated[
        bool,
        typer.Option(
            "--in-sample", help="Run even on bars before the model's test start (optimistic)."
        ),
    ] = False,
    env: EnvOption = "local-dev",
    runs_dir: RunsOption = None,
    train_bars: Annotated[
        int | None, typer.Option(min=10, help="Bars each window refits on (default: the env's).")
    ] = None,
    test_bars: Annotated[
        int | None, typer.Option(min=1, help="Bars each window predicts (default: the env's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-window progress.")] = False,
) -> None:
    """Walk-forward backtest of a registered model's family, parameters, variant and features
    (refitted per window) on bars after its training data; bars before its test start are
    refused unless --in-sample."""
    run = guarded(lambda: _run(env, runs_dir, model, data, in_sample, train_bars, test_bars, quiet))
    if run.in_sample:
        overlap = run.overlap
        detail = (
            "the model's training period is unknown (no test_start tag)"
            if overlap.test_start is None
            else f"{overlap.bars_before_test_start} bars of {run.source} lie before the "
            "model's test start and trained or chose it"
        )
        errors.print(
            f"[bold red]IN-SAMPLE: figures are optimistic[/]: {detail}",
            highlight=False,
            soft_wrap=True,
        )
    if as_json:
        sys.stdout.write(json.dumps(run.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
        return
    console.print(_table(run))

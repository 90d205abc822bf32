"""`alphafactory backtest` on a registered champion of the tiny run: refused on the run's own
bars (they overlap its training), run with --in-sample, and run on genuinely later bars of the
same series, where its figures equal the library's on the same inputs."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tiny_run import EXTRA_BARS, TINY_BARS, TinyRuns, clone_runs, tiny_bars
from typer.testing import CliRunner

from alphafactory.backtest.population import probabilistic_sharpe
from alphafactory.backtest.registered import IN_SAMPLE_WARNING
from alphafactory.backtest.variant import backtest_variant
from alphafactory.cli import app
from alphafactory.data.bars import write_bars
from alphafactory.data.splits import label_end_column, parse_time
from alphafactory.features import build_feature_matrix
from alphafactory.registry import ModelRegistry, registered_model_name
from alphafactory.stages.backtest import refit_params, symbol_bars, trade_rule, window_spec
from alphafactory.stages.common import Matrix
from alphafactory.stages.family_fit import fit_budget, masked_samples
from alphafactory.targets.swing import group_targets
from alphafactory.targets.variants import parse_variant_id

WIDE = {"COLUMNS": "250"}
GROUP = "BTC_w3_high"
#: windows short enough for the 1,100 bars after the test start
WINDOWS = ("--train-bars", "600", "--test-bars", "200")


@pytest.fixture(scope="module")
def runs(tiny_runs: TinyRuns, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    return clone_runs(tiny_runs, tmp_path_factory.mktemp("cli-backtest"))


@pytest.fixture(scope="module")
def env(runs: TinyRuns) -> str:
    return str(runs.write_env(runs.runs_dir.parent))


@pytest.fixture(scope="module")
def registry(runs: TinyRuns) -> ModelRegistry:
    return ModelRegistry(root=runs.runs_dir / "registry")


@pytest.fixture(scope="module")
def champion(registry: ModelRegistry) -> str:
    model = registry.champion(registered_model_name(GROUP))
    assert model is not None, "the planted BTC group has a champion in the tiny run"
    return model.model_id


@pytest.fixture(scope="module")
def test_start(registry: ModelRegistry, champion: str) -> np.datetime64:
    return parse_time(registry.info(champion).tags["test_start"])


@pytest.fixture(scope="module")
def later_bars(runs: TinyRuns, test_start: np.datetime64) -> tuple[str, pl.DataFrame]:
    """Bars of the tiny run's series from the champion's test start on, including the
    EXTRA_BARS that come after the run's own bars."""
    bars = tiny_bars(TINY_BARS + EXTRA_BARS)
    later = bars.filter(pl.col("timestamp").cast(pl.Datetime("us")) >= test_start)
    path = runs.runs_dir.parent / "later.parquet"
    write_bars(later, str(path))
    return str(path), later


def invoke(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout, and everything printed (stdout and stderr)."""
    result = CliRunner().invoke(app, ["backtest", *args], env=WIDE)
    return result.exit_code, result.stdout, result.output


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def test_own_data_overlaps_training_and_is_refused(env: str, champion: str) -> None:
    code, _, output = invoke("--model", champion, "--env", env, "--json")
    assert code == 2 and "Traceback" not in output
    line = error_line(output)
    assert "overlaps the training" in line and champion in line and "--in-sample" in line


def test_in_sample_runs_warns_and_matches_the_pipeline_stage(
    env: str, champion: str, runs: TinyRuns
) -> None:
    code, stdout, output = invoke("--model", champion, "--env", env, "--json", "--in-sample")
    assert code == 0, output
    result = json.loads(stdout)
    assert result["windows"] > 0 and result["refits"] > 0
    assert result["in_sample"] is True and result["warning"] == IN_SAMPLE_WARNING
    assert "IN-SAMPLE: figures are optimistic" in output
    assert result["same_data_as_training"] is True and result["overlap"]["overlaps"] is True
    # on the run's own bars it starts at the test start: the pipeline's own backtest
    stage = json.loads((runs.run_dir / "backtest" / "results.json").read_text())["groups"][GROUP]
    assert result["windows"] == stage["walk_forward"]["windows"]
    assert result["metrics"] == pytest.approx(stage["metrics"], nan_ok=True)
    # one progress line per window on stderr
    assert sum(line.startswith("window ") for line in output.splitlines()) == result["windows"]


def test_table_output(env: str, champion: str) -> None:
    code, stdout, _ = invoke("--model", champion, "--env", env, "--in-sample", "--quiet")
    assert code == 0, stdout
    for label in ("windows", "refits", "Sharpe", "Sortino", "max drawdown", "profit factor",
                  "probabilistic Sharpe", "IN-SAMPLE: figures are optimistic"):  # fmt: skip
        assert label in stdout


def _library_backtest(
    runs: TinyRuns, registry: ModelRegistry, champion: str, bars: pl.DataFrame
) -> dict[str, Any]:
    """The library on the same inputs: the run's own (typed) production parameters, the
    model's feature list from the registry, the variant's targets on the same bars."""
    config = runs.config
    trained = {}
    for shard in sorted((runs.run_dir / "train" / "shards").glob("*.json")):
        trained.update(json.loads(shard.read_text()))
    fitted = trained[GROUP]
    variant = parse_variant_id(fitted["variant_id"])
    names = list(registry.info(champion).lineage.feature_list)
    features = build_feature_matrix(bars, config.features.scale).sort("timestamp")
    matrix = Matrix(
        features["timestamp"].cast(pl.Datetime("us")).to_numpy(),
        features.select(names).to_numpy().astype(np.float32),
        names,
    )
    one = symbol_bars(bars, variant.symbol)
    targets = group_targets(one, [variant])
    labelled = targets[variant.variant_id].is_not_null().to_numpy()
    ends = targets[label_end_column(variant.horizon)].cast(pl.Datetime("us")).to_numpy()
    sample, _ = masked_samples(matrix, targets, variant, labelled, ~labelled, ends)
    spec = replace(window_spec(config), train=600, test=200)
    result = backtest_variant(
        one, sample, variant, fitted["family"], refit_params(fitted["family"], fitted["params"]),
        spec, trade_rule(config),
        fit_budget(config, config.train.num_rounds, config.train.early_stopping),
        calendar=config.backtest.calendar,
    )  # fmt: skip
    return {
        "windows": len(result.walk.records),
        "metrics": result.metrics.to_dict(),
        "probabilistic_sharpe": probabilistic_sharpe(result.bar_returns),
    }


def test_later_bars_run_without_in_sample_and_match_the_library(
    env: str,
    champion: str,
    runs: TinyRuns,
    registry: ModelRegistry,
    later_bars: tuple[str, pl.DataFrame],
    test_start: np.datetime64,
) -> None:
    path, bars = later_bars
    code, stdout, output = invoke("--model", champion, "--env", env, "--data", path, "--json",
                                  *WINDOWS)  # fmt: skip
    assert code == 0, output
    result = json.loads(stdout)
    assert result["in_sample"] is False and result["warning"] is None
    assert "IN-SAMPLE" not in output
    assert result["overlap"]["bars_before_test_start"] == 0
    assert result["same_data_as_training"] is False
    assert parse_time(result["start"]) >= test_start
    assert result["windows"] == 3 and result["refits"] == 3 and result["trades"] > 0
    expected = _library_backtest(runs, registry, champion, bars)
    assert result["windows"] == expected["windows"]
    assert result["metrics"] == pytest.approx(expected["metrics"], nan_ok=True)
    assert math.isclose(result["probabilistic_sharpe"], expected["probabilistic_sharpe"])


def test_missing_feature_column_is_named(
    env: str, champion: str, later_bars: tuple[str, pl.DataFrame], tmp_path: Path
) -> None:
    path = tmp_path / "btc-only.parquet"
    write_bars(later_bars[1].filter(pl.col("symbol") == "BTC"), str(path))
    code, _, output = invoke("--model", champion, "--env", env, "--data", str(path), *WINDOWS)
    assert code == 2 and "Traceback" not in output
    line = error_line(output)
    assert "needs feature 'ETH__" in line and champion in line


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (("--model", "alphafactory.NOPE_w3_high/9"), "alphafactory.NOPE_w3_high/9"),
        (("--data", "/nonexistent/bars.parquet"), "/nonexistent/bars.parquet"),
    ],
)
def test_user_errors_are_one_line(
    env: str, champion: str, arguments: tuple[str, ...], named: str
) -> None:
    model = () if "--model" in arguments else ("--model", champion)
    code, _, output = invoke(*model, *arguments, "--env", env)
    assert code == 2 and "Traceback" not in output
    assert named in error_line(output)


def test_tampered_model_file_is_one_line(
    tiny_runs: TinyRuns, champion: str, tmp_path: Path
) -> None:
    broken = clone_runs(tiny_runs, tmp_path)
    for artifact in (broken.runs_dir / "registry").rglob(f"{GROUP}.zip"):
        artifact.write_bytes(b"not a model bundle")
    env = str(broken.write_env(tmp_path))
    code, _, output = invoke("--model", champion, "--env", env, "--in-sample")
    assert code == 2 and "Traceback" not in output
    line = error_line(output)
    assert champion in line and "cannot be loaded" in line and "alphafactory run" in line

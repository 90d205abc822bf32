"""`alphafactory models …` and `alphafactory cache …` on the registry and cache of a tiny run."""

from __future__ import annotations

import io
import re
import sys
from datetime import datetime
from pathlib import Path

import pytest
from tiny_run import TinyRuns, clone_runs
from typer.testing import CliRunner

from alphafactory.cli import app
from alphafactory.cli._models import resolve_model
from alphafactory.data.bars import write_bars
from alphafactory.data.synthetic import generate_bars
from alphafactory.errors import ModelError
from alphafactory.registry import ModelCache, ModelRegistry
from alphafactory.stages.evaluate import score_model

WIDE = {"COLUMNS": "250"}
MODEL_ID = re.compile(r"alphafactory\.[A-Za-z0-9_]+/\d+")


@pytest.fixture(scope="module")
def runs(tiny_runs: TinyRuns, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    return clone_runs(tiny_runs, tmp_path_factory.mktemp("cli-models"))


@pytest.fixture(scope="module")
def env(runs: TinyRuns) -> str:
    return str(runs.write_env(runs.runs_dir.parent))


@pytest.fixture(scope="module")
def registry(runs: TinyRuns) -> ModelRegistry:
    return ModelRegistry(root=runs.runs_dir / "registry")


def invoke(*args: str, answer: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=WIDE, input=answer)
    return result.exit_code, result.output


def listed(*options: str, env: str) -> set[str]:
    code, output = invoke("models", "list", "--env", env, *options)
    assert code == 0, output
    ids = set(MODEL_ID.findall(output))
    assert f"{len(ids)} registered models" in output
    return ids


def test_list_all_and_filtered(env: str, registry: ModelRegistry) -> None:
    everything = registry.list_models()
    assert listed(env=env) == {m.model_id for m in everything} and len(everything) == 8
    assert (
        listed("--symbol", "BTC", env=env)
        == {m.model_id for m in everything if m.symbol == "BTC"}
        == {f"alphafactory.BTC_w{w}_{t}/1" for w in (3, 10) for t in ("high", "low")}
    )
    assert listed("--model-type", "lightgbm", env=env) == {m.model_id for m in everything}
    assert listed("--model-type", "xgboost", env=env) == set()
    for grade in {m.grade for m in everything}:
        expected = {m.model_id for m in everything if m.grade == grade}
        assert listed("--grade", grade, env=env) == expected
    # only models with skill on the test period are champions: the planted symbol's four
    champions = {m.model_id for m in everything if m.symbol == "BTC"}
    assert listed("--champions", env=env) == champions and len(champions) == 4


def test_list_with_runs_dir_override(runs: TinyRuns, tmp_path: Path) -> None:
    elsewhere = {**runs.settings, "pipeline_root": str(tmp_path / "empty")}
    other_env = TinyRuns(runs.runs_dir, runs.data_uri, elsewhere).write_env(tmp_path)
    code, output = invoke("models", "list", "--env", str(other_env))
    assert code == 2 and "no model registry at" in output and "Traceback" not in output
    ids = listed("--runs-dir", str(runs.runs_dir), env=str(other_env))
    assert len(ids) == 8


def test_info_shows_lineage_and_checksum(env: str, registry: ModelRegistry, runs: TinyRuns) -> None:
    model = registry.get("alphafactory.BTC_w3_low/1")
    details = registry.info(model.model_id)
    code, output = invoke("models", "info", model.model_id, "--env", env)
    assert code == 0, output
    assert model.sha256 in output
    assert details.lineage.data_hash == runs.plan["data_hash"]
    assert details.lineage.data_hash in output
    assert (
        f"{len(details.lineage.feature_list)} (hash {details.lineage.feature_hash[:12]})" in output
    )
    assert "run-1" in output
    [aliases_row] = [line for line in output.splitlines() if "aliases" in line]
    assert "champion" in aliases_row  # the SQLite version search returns no aliases itself
    assert str(details.params["variant_id"]) in output


def test_ambiguous_partial_id_fails_with_one_line(env: str, registry: ModelRegistry) -> None:
    code, output = invoke("models", "info", "ETH_w10", "--env", env)
    assert code == 2
    assert "Traceback" not in output and "Which model" not in output
    [line] = [line for line in output.splitlines() if line.strip()]
    assert line.startswith("error: 2 models match 'ETH_w10': ")
    assert set(MODEL_ID.findall(line)) == {
        "alphafactory.ETH_w10_high/1",
        "alphafactory.ETH_w10_low/1",
    }


def test_unique_partial_id_resolves(env: str) -> None:
    code, output = invoke("models", "info", "BTC_w3_high", "--env", env)
    assert code == 0 and "alphafactory.BTC_w3_high/1" in output


def test_interactive_choice_picks_the_numbered_model(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("7\n2\n"))  # 7 is out of range: asked again
    chosen = resolve_model(registry, "BTC_w10", interactive=True)
    assert chosen.model_id == "alphafactory.BTC_w10_low/1"
    shown = capsys.readouterr().out
    assert "1. alphafactory.BTC_w10_high/1" in shown and "2. alphafactory.BTC_w10_low/1" in shown


def test_resolve_without_terminal_raises(registry: ModelRegistry) -> None:
    with pytest.raises(ModelError, match=r"4 models match 'BTC'.*give a full id"):
        resolve_model(registry, "BTC", interactive=False)
    with pytest.raises(ModelError, match=r"no registered model matches 'SOL'"):
        resolve_model(registry, "SOL", interactive=False)


def test_benchmark_prints_the_ap_of_each_model(
    env: str, registry: ModelRegistry, runs: TinyRuns, tmp_path: Path
) -> None:
    data = str(tmp_path / "later.parquet")
    later = generate_bars(["BTC", "ETH"], n_bars=1200, seed=11, start=datetime(2021, 1, 1))
    write_bars(later, data)
    ids = ["alphafactory.BTC_w3_high/1", "alphafactory.ETH_w10_low/1"]
    code, output = invoke("models", "benchmark", "--models", ",".join(ids), data, "--env", env)
    assert code == 0, output
    assert "warning" not in output  # bars after every model's test start: no overlap
    for model_id in ids:
        [row] = [line for line in output.splitlines() if model_id in line]
        printed = float(re.findall(r"\b[01]\.\d{4}\b", row)[0])
        variant_id = str(registry.info(model_id).params["variant_id"])
        path = registry.download(model_id, tmp_path / model_id.replace("/", "_"))
        [expected] = score_model(path, variant_id, data, runs.config.features.scale)
        assert 0.0 <= printed <= 1.0
        assert printed == pytest.approx(expected.average_precision, abs=5e-5)
        assert variant_id in row and str(expected.rows) in row and "out-of-sample" in row


def test_benchmark_on_the_training_bars_warns_and_splits_in_and_out_of_sample(
    env: str, registry: ModelRegistry, runs: TinyRuns
) -> None:
    model_id = "alphafactory.BTC_w3_high/1"
    info = registry.info(model_id)
    code, output = invoke("models", "benchmark", "--models", model_id, runs.data_uri, "--env", env)
    assert code == 0, output
    assert f"warning: {model_id}:" in output and "before its test period" in output
    assert info.tags["test_start"] in output.replace("\n", "")
    rows = {
        period: line
        for line in output.splitlines()
        if model_id in line
        for period in ("in-sample", "out-of-sample")
        if f" {period} " in line
    }
    assert set(rows) == {"in-sample", "out-of-sample"}
    # the out-of-sample events are the model's own test events: same count, same AP
    out_of_sample = rows["out-of-sample"]
    assert f" {int(info.metrics['n_test'])} " in out_of_sample
    printed = float(re.findall(r"\b[01]\.\d{4}\b", out_of_sample)[0])
    assert printed == pytest.approx(info.metrics["ap"], abs=2e-3)


def test_benchmark_unknown_model_is_one_line(env: str, tmp_path: Path) -> None:
    code, output = invoke(
        "models", "benchmark", "--models", "nope", str(tmp_path / "x.parquet"), "--env", env
    )
    assert code == 2 and "no registered model matches 'nope'" in output
    assert "Traceback" not in output


def test_cache_list_and_clear(runs: TinyRuns, env: str, tmp_path: Path) -> None:
    # a private copy of the cache: clearing must not disturb the other tests
    local = clone_runs(runs, tmp_path)
    cache = ModelCache(local.runs_dir / "cache")
    assert len(cache.list()) == 8
    runs_dir = str(local.runs_dir)
    code, output = invoke("cache", "list", "--env", env, "--runs-dir", runs_dir)
    assert code == 0 and "8 cached models" in output
    code, output = invoke("cache", "list", "--symbol", "ETH", "--env", env, "--runs-dir", runs_dir)
    assert code == 0 and "4 cached models" in output
    code, output = invoke(
        "cache", "list", "--older-than", "1d", "--env", env, "--runs-dir", runs_dir
    )
    assert code == 0 and "0 cached models" in output
    clear = ("cache", "clear", "--symbol", "BTC", "--older-than", "0s", "--yes")
    code, output = invoke(*clear, "--env", env, "--runs-dir", runs_dir)
    assert code == 0 and "removed 4 cached models" in output
    assert sorted(entry.symbol for entry in cache.list()) == ["ETH"] * 4
    code, output = invoke("cache", "clear", "--yes", "--env", env, "--runs-dir", runs_dir)
    assert code == 0 and "removed 4 cached models" in output and cache.list() == []


def test_cache_bad_age_is_one_line(env: str) -> None:
    code, output = invoke("cache", "clear", "--older-than", "soon", "--env", env)
    assert code == 2 and "age 'soon' is not valid" in output and "Traceback" not in output


def test_an_unknown_grade_is_refused_in_one_line(env: str) -> None:
    code, output = invoke("models", "list", "--grade", "Z", "--env", env)
    assert code == 2 and "Traceback" not in output
    [line] = [line for line in output.splitlines() if line.strip()]
    assert line == "error: grade 'Z' is unknown: use one of S, A+, A, A-, B+, B, B-, C, D, F"


def test_info_shows_counts_as_integers(env: str, registry: ModelRegistry) -> None:
    model_id = "alphafactory.BTC_w3_low/1"
    metrics = registry.info(model_id).metrics
    code, output = invoke("models", "info", model_id, "--env", env)
    assert code == 0, output
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in output.splitlines()
        if line.count("│") == 3 and line.split("│")[1].strip().startswith("metric ")
    }
    assert len(rows) == len(metrics) > 10
    for key in ("n_test", "n_train", "n_valid", "best_iteration", "backtest_trades"):
        assert metrics[key] == int(metrics[key]) >= 0
        assert rows[f"metric {key}"] == str(int(metrics[key]))  # 27, not 27.0000
    assert rows["metric ap"] == f"{metrics['ap']:.4f}" and "." in rows["metric ap"]


def _cache_copy(runs: TinyRuns, tmp_path: Path) -> tuple[ModelCache, str]:
    local = clone_runs(runs, tmp_path)
    cache = ModelCache(local.runs_dir / "cache")
    assert len(cache.list()) == 8
    return cache, str(local.runs_dir)


def test_cache_clear_dry_run_lists_exactly_what_clear_deletes(
    runs: TinyRuns, env: str, tmp_path: Path
) -> None:
    cache, runs_dir = _cache_copy(runs, tmp_path)
    before = {entry.path.parent for entry in cache.list()}
    options = ("--symbol", "ETH", "--env", env, "--runs-dir", runs_dir)
    code, output = invoke("cache", "clear", "--dry-run", *options)
    assert code == 0 and "would remove 4 cached models" in output
    listed = {Path(line.strip()) for line in output.splitlines() if line.strip().startswith("/")}
    assert len(listed) == 4 and len(cache.list()) == 8  # listed, nothing deleted
    code, output = invoke("cache", "clear", "--yes", *options)
    assert code == 0 and "removed 4 cached models" in output
    remaining = {entry.path.parent for entry in cache.list()}
    assert before - remaining == listed and all(not path.exists() for path in listed)
    assert {entry.symbol for entry in cache.list()} == {"BTC"}


def test_cache_clear_asks_first_and_no_keeps_every_entry(
    runs: TinyRuns, env: str, tmp_path: Path
) -> None:
    cache, runs_dir = _cache_copy(runs, tmp_path)
    options = ("--env", env, "--runs-dir", runs_dir)
    for answer in ("n\n", "", "\n"):  # no, no answer at all, the default
        code, output = invoke("cache", "clear", *options, answer=answer)
        assert code == 1, (answer, output)
        assert "Delete 8 cached models from" in output and "nothing deleted" in output
        assert len(cache.list()) == 8
    code, output = invoke("cache", "clear", *options, answer="y\n")
    assert code == 0 and "removed 8 cached models" in output and cache.list() == []


def test_boolean_options_are_plain_flags_in_help() -> None:
    shown = {}
    for command in (("models", "list"), ("cache", "clear"), ("infer",)):
        code, output = invoke(*command, "--help")
        assert code == 0, output
        assert "<bool>" not in output and "BOOLEAN" not in output
        assert "<str>" in output or "<path>" in output  # other options keep their type
        shown[command] = output
    assert "--champions" in shown["models", "list"]
    assert "--no-champions" not in shown["models", "list"]
    assert "--dry-run" in shown["cache", "clear"] and "--yes" in shown["cache", "clear"]
    [flag] = [line for line in shown["cache", "clear"].splitlines() if "--dry-run" in line]
    assert "<" not in flag

"""The CLI end to end: a real kfp.local run of a tiny environment, and clean one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from alphafactory.cli import app
from alphafactory.data.synthetic import generate_bars
from alphafactory.models import load_model
from alphafactory.models.lightgbm import LightGBMModel

TINY_ENV = {
    "name": "tiny",
    "runner": "local",
    "pipeline_root": "runs",
    "data": {"source": "synthetic", "symbols": ["BTC", "ETH"], "n_bars": 1500, "seed": 3},
    "features": {"scale": "small"},
    "grid": {
        "windows": [3, 10],
        "swing_types": ["high", "low"],
        "std_thresholds": [1.0],
        "move_thresholds": [1.0],
        "horizons": [6, 12],
    },
    "screen": {
        "num_rounds": 20,
        "subsample_rows": 5000,
        "select_min": 20,
        "select_max": 40,
        "variants_per_group": 1,
    },
    "tune": {"num_rounds": 30, "min_rows": 30},
    "train": {"num_rounds": 40},
    "lightgbm": {"max_bin": 31},
    "parallelism": {"shards": 2},
}

runner = CliRunner()


def _write_env(tmp_path: Path, changes: dict | None = None) -> Path:
    settings = json.loads(json.dumps(TINY_ENV))
    for key, value in (changes or {}).items():
        section, _, field = key.partition(".")
        if field:
            settings[section][field] = value
        else:
            settings[section] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.mark.slow
def test_kfp_local_run_writes_a_complete_run_folder(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    env = _write_env(tmp_path)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", "--env", str(env), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    shared = {".kfp", "cache", "registry"}  # kfp.local's root, model cache, SQLite registry
    folders = [p for p in runs.iterdir() if p.name not in shared]
    assert len(folders) == 1 and folders[0].suffix == ""
    run_dir = folders[0]
    assert f"run folder: {run_dir}" in result.output.replace("\n", "")
    _assert_console(result.output, capfd.readouterr(), run_dir)

    plan = json.loads((run_dir / "prepare" / "plan.json").read_text())
    assert plan["n_variants"] == 2 * 2 * 2 * 2  # symbols x windows x swing types x horizons
    assert len(plan["groups"]) == 8
    winners = json.loads((run_dir / "tune" / "stage1" / "winners.json").read_text())["winners"]
    assert set(winners) <= set(plan["groups"]) and len(winners) >= 6
    for gid, row in winners.items():
        assert row["group_id"] == gid and 0.0 <= row["average_precision"] <= 1.0
        model = load_model(run_dir / "train" / "models" / f"{gid}.zip")
        assert isinstance(model, LightGBMModel)
        assert model.booster.num_trees() % 3 == 0 and model.booster.num_trees() > 0

    predictions = pl.read_parquet(run_dir / "infer" / "predictions.parquet")
    assert predictions["group_id"].n_unique() == len(list((run_dir / "train/models").iterdir()))
    sums = predictions.select(pl.col("p_neither") + pl.col("p_breakout") + pl.col("p_reversion"))
    assert sums.to_series().is_between(0.999, 1.001).all()
    report = (run_dir / "report.md").read_text()
    assert all(gid in report for gid in plan["groups"])
    assert json.loads((run_dir / "run.json").read_text())["status"] == "succeeded"
    _assert_kfp_artifacts(runs / ".kfp", run_dir, len(plan["shards"]))


def _assert_kfp_artifacts(kfp_root: Path, run_dir: Path, shards: int) -> None:
    """The KFP-visible artifacts, as kfp.local left them in its pipeline root: per shard one
    ClassificationMetrics per class over its champions' pooled test-period events and Markdown
    summaries, and the report as HTML."""
    from alphafactory.stages.train import ROC_THRESHOLDS
    from alphafactory.targets.swing import CLASS_NAMES

    (kfp_run,) = kfp_root.glob("alphafactory-*")

    def outputs(task: str) -> dict[int, dict]:
        found = {}
        for path in kfp_run.glob(f"for-loop-*-iteration-*/{task}/executor_output.json"):
            output = json.loads(path.read_text())
            found[int(output["parameterValues"]["Output"].rsplit(" ", 1)[1])] = output
        assert sorted(found) == list(range(shards)), task
        return found

    for shard, output in outputs("train-shard").items():
        results = json.loads((run_dir / f"train/shards/shard-{shard:03d}.json").read_text())
        tested = [r["test"] for r in results.values() if r["status"] == "ok"]
        events = sum(test["n_events"] for test in tested)
        curves = {name for test in tested for name in test.get("roc_curves", {})}
        assert {"breakout", "reversion"} <= curves  # a curve is drawn where the class has one
        for name in CLASS_NAMES:
            (roc,) = output["artifacts"][f"roc_{name}"]["artifacts"]
            rows = [r["row"] for r in roc["metadata"]["confusionMatrix"]["rows"]]
            assert [len(row) for row in rows] == [3, 3, 3]
            assert sum(map(sum, rows)) == events > 0
            points = roc["metadata"].get("confidenceMetrics", [])
            assert len(points) == (len(ROC_THRESHOLDS) if name in curves else 0), name
        (summary,) = output["artifacts"]["summary"]["artifacts"]
        assert all(f"| {gid} |" in Path(summary["uri"]).read_text() for gid in results)
    for shard, output in outputs("backtest-shard").items():
        champions = json.loads((run_dir / f"backtest/shards/shard-{shard:03d}.json").read_text())
        (summary,) = output["artifacts"]["summary"]["artifacts"]
        text = Path(summary["uri"]).read_text()
        assert champions and all(f"| {gid} |" in text for gid in champions)
    infer = json.loads((kfp_run / "infer-predictions" / "executor_output.json").read_text())
    (report,) = infer["artifacts"]["report"]["artifacts"]
    assert Path(report["uri"]).read_bytes() == (run_dir / "report.html").read_bytes()


def test_unknown_config_key_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    env = _write_env(tmp_path, {"grid.windowz": [3]})
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", "--env", str(env), "--runs-dir", str(runs)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert str(env) in result.output and "grid.windowz" in result.output
    assert "windows" in result.output  # names what is allowed
    assert not runs.exists()


def test_bad_literal_names_allowed_values(tmp_path: Path) -> None:
    env = _write_env(tmp_path, {"runner": "docker"})
    result = runner.invoke(app, ["run", "--env", str(env), "--runs-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "runner" in result.output and "'local'" in result.output and "'vertex'" in result.output


def test_impossible_bar_in_user_data_fails_before_any_run_folder(tmp_path: Path) -> None:
    bars = generate_bars(["AAA"], n_bars=600, seed=1)
    broken = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 42)
        .then(pl.col("low") * 0.5)
        .otherwise(pl.col("high"))
        .alias("high")
    )
    data = tmp_path / "bars.csv"
    broken.write_csv(data)
    runs = tmp_path / "runs"
    result = runner.invoke(
        app,
        ["run", "--env", str(_write_env(tmp_path)), "--data", str(data), "--runs-dir", str(runs)],
    )
    assert result.exit_code == 2
    assert str(data) in result.output and "high" in result.output
    assert "Traceback" not in result.output
    assert not runs.exists()


def test_too_short_user_data_names_the_symbol(tmp_path: Path) -> None:
    data = tmp_path / "short.parquet"
    generate_bars(["XYZ"], n_bars=100, seed=1).write_parquet(data)
    result = runner.invoke(
        app,
        [
            "run",
            "--env",
            str(_write_env(tmp_path)),
            "--data",
            str(data),
            "--runs-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "XYZ" in result.output and "100 bars" in result.output


def test_unknown_grid_switch_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--env", str(_write_env(tmp_path)), "--grid", "huge"])
    assert result.exit_code == 2 and "--grid" in result.output


def test_unknown_environment_lists_available_ones() -> None:
    result = runner.invoke(app, ["run", "--env", "nowhere"])
    assert result.exit_code == 2
    assert "unknown environment 'nowhere'" in result.output and "local-dev" in result.output


def test_failed_task_names_its_exception_and_keeps_the_traceback(tmp_path: Path) -> None:
    """A task that raises: the run folder ends `.failed`, ERROR.txt and the CLI line name the
    task and its exception, and `errors/<task>.txt` holds the whole traceback."""
    from pipelines.local import prepare_local_run, run_locally

    data = tmp_path / "bars.parquet"
    generate_bars(["AAA", "BBB"], n_bars=1500, seed=1).write_parquet(data)
    plan = prepare_local_run(str(_write_env(tmp_path)), data=str(data), runs_dir=tmp_path / "runs")
    data.unlink()  # the data vanishes after validation: prepare-data fails inside kfp.local
    outcome = run_locally(plan)
    assert not outcome.ok and outcome.run_dir.name == f"{plan.run_id}.failed"
    assert not (tmp_path / "runs" / plan.run_id).exists()
    traceback_file = outcome.run_dir / "errors" / "prepare-data.txt"
    traceback = traceback_file.read_text()
    assert traceback.startswith("Traceback") and str(data) in traceback.splitlines()[-1]
    cause = f"prepare-data: {traceback.splitlines()[-1]} (traceback: {traceback_file})"
    assert outcome.error.splitlines()[1:] == [cause]
    assert cause in (outcome.run_dir / "ERROR.txt").read_text().splitlines()
    logs = [(task, log.relative_to(outcome.run_dir)) for task, log in outcome.failed_logs]
    assert logs == [("prepare-data", Path("logs/prepare-data.log"))]
    log = (outcome.run_dir / "logs" / "prepare-data.log").read_text()
    assert "[KFP Executor" in log and log.rstrip().endswith("-" * 20)
    assert traceback.splitlines()[-1] in log  # the task's own output, traceback included


def _assert_console(output: str, captured: pytest.CaptureResult[str], run_dir: Path) -> None:
    """The default console (not a terminal): one line per finished step and no kfp.local
    output, within the line budget; kfp.local's output is in `logs/`, one file per task."""
    from alphafactory.progress import read_progress
    from pipelines.tasklogs import read_records

    printed = (output + captured.out + captured.err).splitlines()
    assert len(printed) <= 60, "\n".join(printed)
    assert not any("[KFP Executor" in line or "Executing task" in line for line in printed)
    steps = read_records(run_dir / "logs" / "events.jsonl")[0][0]["steps"]
    assert len(steps) == 17
    for index, step in enumerate(steps, start=1):
        (line,) = [
            text for text in printed if text.startswith(f"[{index:>2}/17] {step['label']} · ")
        ]
        assert " · done · " in line
    names = [
        f"{step['key']}.{shard}.log" if step["sharded"] else f"{step['key']}.log"
        for step in steps
        for shard in ((0, 1) if step["sharded"] else (None,))
    ]
    logs = run_dir / "logs"
    assert sorted(p.name for p in logs.glob("*.log")) == sorted([*names, "kfp-local.log"])
    assert all("[KFP Executor" in (logs / name).read_text() for name in names)
    progress = read_progress(run_dir)
    assert sorted(progress) == [0, 1] and all(p.done == p.total > 0 for p in progress.values())

"""A killed `alphafactory run`: its tasks die with it, no `champion` moves, the folder says why,
a re-run of publish duplicates nothing, and a folder whose process is gone is marked failed and
can be pruned. Real runs in a subprocess of a tiny synthetic environment."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alphafactory.cli import app
from alphafactory.config import load_environment
from alphafactory.registry import ModelRegistry
from alphafactory.runtime import group_members, write_owner
from alphafactory.stages import run_infer

TINY_ENV = {
    "name": "tiny-interrupt",
    "runner": "local",
    "pipeline_root": "runs",
    "data": {"source": "synthetic", "symbols": ["BTC", "ETH"], "n_bars": 1500, "seed": 3},
    "features": {"scale": "small"},
    "grid": {
        "windows": [3, 10],
        "swing_types": ["high", "low"],
        "std_thresholds": [1.0],
        "move_thresholds": [1.0],
        "horizons": [6],
    },
    "screen": {"num_rounds": 20, "subsample_rows": 5000, "select_min": 20, "select_max": 40},
    "tune": {"num_rounds": 30, "min_rows": 30},
    "train": {"num_rounds": 40},
    "lightgbm": {"max_bin": 31},
    "parallelism": {"shards": 1},
}
MARKERS = {"prepare": "prepare/plan.json", "infer": "infer/predictions.parquet"}
"""What each stage writes; for infer the test also waits for the first registered version."""


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    env_file = tmp_path / "tiny.yaml"
    env_file.write_text(yaml.safe_dump(TINY_ENV))
    runs = tmp_path / "runs"
    command = [sys.executable, "-c", "from alphafactory.cli import main; main()"]
    command += ["run", "--env", str(env_file), "--runs-dir", str(runs)]
    log = (tmp_path / "run.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), runs


def _wait_for(runs: Path, marker: str, process: subprocess.Popen[bytes]) -> Path:
    """The `.incomplete` folder once `marker` exists in it (the stage wrote its output)."""
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        found = list(runs.glob(f"*.incomplete/{marker}"))
        if found:
            return found[0].parents[len(Path(marker).parts) - 1]
        assert process.poll() is None, "the run ended before the marker appeared"
        time.sleep(0.2)
    raise AssertionError(f"{marker} did not appear")


def _registered_by(runs: Path, run_id: str) -> int:
    """Versions run `run_id` registered so far, read from the SQLite file without writing."""
    database = runs / "registry" / "mlflow.db"
    if not database.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)) as db:
            query = "SELECT count(*) FROM model_version_tags WHERE key = ? AND value = ?"
            return int(db.execute(query, ("pipeline_run_id", run_id)).fetchone()[0])
    except sqlite3.OperationalError:  # the tables do not exist yet, or the file is locked
        return 0


def _wait_for_publishing(runs: Path, working: Path, process: subprocess.Popen[bytes]) -> None:
    run_id = working.name.removesuffix(".incomplete")
    deadline = time.monotonic() + 120
    while _registered_by(runs, run_id) == 0 and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before publishing"
        time.sleep(0.1)
    assert _registered_by(runs, run_id) > 0


def _champions(runs: Path) -> list[str]:
    if not (runs / "registry" / "mlflow.db").exists():
        return []
    registry = ModelRegistry(root=runs / "registry")
    names = {m.name for m in registry.list_models()}
    return sorted(name for name in names if registry.champion(name) is not None)


@pytest.mark.slow
@pytest.mark.parametrize(
    "stage, sig", [("prepare", signal.SIGINT), ("infer", signal.SIGTERM)], ids=["prepare", "infer"]
)
def test_a_signal_stops_every_task_and_moves_no_champion(
    tmp_path: Path, stage: str, sig: signal.Signals
) -> None:
    process, runs = _start(tmp_path)
    working = _wait_for(runs, MARKERS[stage], process)
    if stage == "infer":
        _wait_for_publishing(runs, working, process)  # killed while it registers versions
    owner = json.loads((working / "owner.json").read_text())
    assert owner["pid"] == process.pid
    pgid = owner["pgid"]
    assert group_members(pgid)  # the pipeline's own group is running
    process.send_signal(sig)
    assert process.wait(timeout=60) == 128 + sig
    assert group_members(pgid) == []  # no task survived its run
    run_id = working.name.removesuffix(".incomplete")
    failed = runs / f"{run_id}.failed"
    assert sorted(p.name for p in runs.iterdir() if p.name.startswith(run_id)) == [failed.name]
    error = (failed / "ERROR.txt").read_text().splitlines()
    assert (
        error[0] == f"interrupted: {sig.name} received by process {process.pid}; every task stopped"
    )
    assert _champions(runs) == []
    if stage != "infer":
        return
    # publishing the killed run again: one version per group for the run, still no champion
    registered_before = _registered_by(runs, run_id)
    config = load_environment(str(tmp_path / "tiny.yaml"))
    run_infer(config, str(failed))
    registry = ModelRegistry(root=runs / "registry")
    versions = registry.list_models(pipeline_run=run_id)
    assert sorted(m.group for m in versions) == sorted(
        p.stem for p in (failed / "train" / "models").iterdir()
    )
    assert {str(m.semver) for m in versions} == {"1.0.0"}
    assert _champions(runs) == []
    print(f"killed after {registered_before} of {len(versions)} versions were registered")


@pytest.mark.slow
def test_a_sigkilled_run_is_marked_failed_and_pruned(tmp_path: Path) -> None:
    """SIGKILL leaves the owner no chance: its tasks stop themselves when it is gone, the
    folder stays `.incomplete` until `runs prune` (or the next run) marks it failed."""
    process, runs = _start(tmp_path)
    working = _wait_for(runs, MARKERS["prepare"], process)
    pgid = json.loads((working / "owner.json").read_text())["pgid"]
    process.kill()
    process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_members(pgid) == []
    assert working.is_dir()
    runner = CliRunner()
    result = runner.invoke(app, ["runs", "prune", "--runs-dir", str(runs), "--older-than", "1d"])
    assert result.exit_code == 0, result.output
    failed = working.with_name(working.name.replace(".incomplete", ".failed"))
    assert f"marked failed: {failed}" in result.output
    assert "0 failed run folders deleted" in result.output
    assert (failed / "ERROR.txt").read_text() == (
        f"interrupted: process {process.pid} is gone; the run never finished\n"
    )
    result = runner.invoke(app, ["runs", "prune", "--runs-dir", str(runs), "--older-than", "0s"])
    assert result.exit_code == 0 and f"deleted: {failed}" in result.output
    assert not failed.exists()


def test_prune_refuses_an_age_without_unit(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["runs", "prune", "--runs-dir", str(tmp_path), "--older-than", "7"]
    )
    assert result.exit_code == 2
    assert "age '7' is not valid: use a number followed by s, m, h, d or w" in result.output


def test_a_live_owner_keeps_its_folder(tmp_path: Path) -> None:
    """An `.incomplete` folder whose owner runs (this test process) is not touched."""
    working = tmp_path / "r.incomplete"
    working.mkdir()
    write_owner(working, os.getpgid(0))
    result = CliRunner().invoke(app, ["runs", "prune", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0 and "marked failed" not in result.output
    assert working.is_dir() and not (working / "ERROR.txt").exists()

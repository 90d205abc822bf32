"""The compile/submit/schedule/promote commands, through the Typer app (no network)."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alphafactory.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_compile_check_passes_on_the_golden_specs() -> None:
    result = runner.invoke(app, ["compile", "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_compile_all_and_check_a_folder(tmp_path: Path) -> None:
    assert runner.invoke(app, ["compile", "--all", "--output", str(tmp_path)]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (REPO / "pipelines" / "compiled").glob("*.yaml")
    )
    (tmp_path / "staging.yaml").write_text("stale\n")
    result = runner.invoke(app, ["compile", "--check", "--output", str(tmp_path)])
    assert result.exit_code == 1


def test_submit_dry_run_prints_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFP_HOST", "http://localhost:8888")
    result = runner.invoke(
        app, ["submit", "--env", "local-integration", "--dry-run", "--run-name", "r-1"]
    )
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)["request"]
    assert request["host"] == "http://localhost:8888"
    assert request["parameters"] == {"run_root": "minio://mlpipeline/alphafactory"}


def test_schedule_dry_run_on_vertex() -> None:
    result = runner.invoke(
        app,
        [
            "schedule",
            "--env",
            "staging",
            "--cron",
            "0 2 * * *",
            "--dry-run",
            "--run-name",
            "nightly",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["request"]["cron"] == "0 2 * * *"
    assert payload["pipeline_job"]["runtime_config"]["parameter_values"]["run_root"].startswith(
        "gs://REPLACE_ME_BUCKET-staging"
    )


def test_promote_refusal_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for folder in ("manifests", "pipelines"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "pipelines/compiled/staging.yaml").write_text("stale\n")
    result = runner.invoke(
        app, ["promote", "--from", "staging", "--to", "production", "--root", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "pipelines/compiled/staging.yaml is missing or stale" in result.output

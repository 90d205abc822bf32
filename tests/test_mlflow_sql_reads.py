"""Direct SQLite reads of the registry answer exactly what the MLflow client answers, on the
tiny run's registry (with a deleted version), and `models list` imports no MLflow."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tiny_run import TinyRuns, clone_runs

from alphafactory.errors import ConfigError, ModelError
from alphafactory.registry import CHAMPION, GRADES, ModelInfo, ModelRegistry
from alphafactory.registry.sqlite_store import READS_ENV


@pytest.fixture(scope="module")
def runs(tiny_runs: TinyRuns, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    """A clone whose registry also holds a deleted version and a second alias."""
    runs = clone_runs(tiny_runs, tmp_path_factory.mktemp("sql-reads"))
    registry = ModelRegistry(root=runs.runs_dir / "registry", reads="mlflow")
    uri = registry.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model = registry.get("alphafactory.ETH_w3_low/1")
    client.delete_model_version(model.name, "1")
    registry.set_alias("alphafactory.BTC_w3_high", 1, "staging")
    return runs


def _both(runs: TinyRuns) -> tuple[ModelRegistry, ModelRegistry]:
    root = runs.runs_dir / "registry"
    return ModelRegistry(root=root, reads="sql"), ModelRegistry(root=root, reads="mlflow")


def _same_info(left: ModelInfo, right: ModelInfo) -> None:
    assert left.model == right.model and left.lineage == right.lineage
    assert left.params == right.params and left.tags == right.tags
    assert left.source == right.source
    assert sorted(left.metrics) == sorted(right.metrics) and len(left.metrics) > 10
    for key, value in left.metrics.items():  # NaN figures are NaN on both sides
        other = right.metrics[key]
        assert value == other or (math.isnan(value) and math.isnan(other)), key


def test_listing_gives_the_same_rows_as_mlflow(runs: TinyRuns) -> None:
    sql, through_mlflow = _both(runs)
    everything = sql.list_models()
    assert everything == through_mlflow.list_models()
    assert len(everything) == 7  # eight registered, one deleted
    assert "alphafactory.ETH_w3_low/1" not in {m.model_id for m in everything}
    aliased = {m.model_id: m.aliases for m in everything if m.aliases}
    assert aliased == {
        "alphafactory.BTC_w10_high/1": (CHAMPION,),
        "alphafactory.BTC_w10_low/1": (CHAMPION,),
        "alphafactory.BTC_w3_high/1": (CHAMPION, "staging"),
        "alphafactory.BTC_w3_low/1": (CHAMPION,),
    }
    filters = [
        {"symbol": "BTC"},
        {"symbol": "SOL"},
        {"model_type": "lightgbm"},
        {"group": "ETH_w10_high"},
        {"pipeline_run": "run-1"},
        {"pipeline_run": "run-9"},
        *[{"grade": grade} for grade in GRADES],
        *[{"min_grade": grade} for grade in ("A", "C", "F")],
    ]
    sizes = []
    for wanted in filters:
        rows = sql.list_models(**wanted)  # type: ignore[arg-type]
        assert rows == through_mlflow.list_models(**wanted), wanted  # type: ignore[arg-type]
        sizes.append(len(rows))
    assert sizes[:6] == [4, 0, 7, 1, 7, 0] and sum(sizes[6:16]) == 7


def test_single_versions_aliases_and_details_are_the_same(runs: TinyRuns) -> None:
    sql, through_mlflow = _both(runs)
    models = sql.list_models()
    assert len(models) == 7
    for model in models:
        assert sql.get(model.model_id) == through_mlflow.get(model.model_id) == model
        assert sql.get(model.display_name) == through_mlflow.get(model.display_name)
        _same_info(sql.info(model.model_id), through_mlflow.info(model.model_id))
        assert sql.latest_version(model.name) == through_mlflow.latest_version(model.name)
        assert sql.champion(model.name) == through_mlflow.champion(model.name)
        for alias in ("staging", "latest", "nope"):
            assert sql.alias(model.name, alias) == through_mlflow.alias(model.name, alias)
    for missing in ("alphafactory.ETH_w3_low/1", "alphafactory.BTC_w3_high/9", "no-such-name"):
        with pytest.raises(ModelError) as from_sql:
            sql.get(missing)
        with pytest.raises(ModelError) as from_mlflow:
            through_mlflow.get(missing)
        assert str(from_sql.value) == str(from_mlflow.value)
    assert "_client" not in vars(sql)  # every read above went to the tables, not to MLflow


def test_an_unknown_grade_is_refused_naming_the_grades(runs: TinyRuns) -> None:
    sql, _ = _both(runs)
    with pytest.raises(ConfigError, match=r"grade 'Z' is unknown: use one of S, A\+, A, A-"):
        sql.list_models(grade="Z")


def test_models_list_imports_no_mlflow(runs: TinyRuns, tmp_path: Path) -> None:
    env = runs.write_env(tmp_path)
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from alphafactory.cli import app\n"
        f"result = CliRunner().invoke(app, ['models', 'list', '--env', {str(env)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(result.output.splitlines()[0].strip())\n"
        "print('mlflow' in sys.modules, 'lightgbm' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines()[-2:] == ["7 registered models", "False False"]
    forced = subprocess.run(
        [sys.executable, "-c", probe.replace("'lightgbm' in", "'sqlalchemy' in")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, READS_ENV: "mlflow"},
    )
    assert forced.stdout.splitlines()[-2:] == ["7 registered models", "True True"]

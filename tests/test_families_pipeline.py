"""Model families as a pipeline axis, on a tiny run: stage 1 fits the LightGBM finalists with
every configured family and picks the best (variant, family); the winner's family is what
train fits, saves, registers (`model_type`) and the report compares."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from tiny_run import TINY_STAGE_SETTINGS, run_stages
from typer.testing import CliRunner

from alphafactory.cli import app
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import ConfigError
from alphafactory.models import load_model
from alphafactory.registry import ModelRegistry
from pipelines.local import with_families

# ftrl is linear; reward and quantile_lightgbm need each event's realised move from targets
FAMILIES = ["lightgbm", "ftrl", "reward", "quantile_lightgbm"]


def families_config(root: Path) -> EnvironmentConfig:
    settings: dict[str, Any] = {
        **TINY_STAGE_SETTINGS,
        "name": "test-families",
        "pipeline_root": str(root),
        "data": {"source": "synthetic", "symbols": ["BTC", "ETH"], "n_bars": 3000, "seed": 5,
                 "planted": {"symbols": ["BTC"]}},
        "grid": {**TINY_STAGE_SETTINGS["grid"], "horizons": [6, 12]},  # 2 variants per group
        "models": {"families": FAMILIES, "finalists_per_group": 1},
    }  # fmt: skip
    return EnvironmentConfig.model_validate(settings)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[EnvironmentConfig, Path]:
    root = tmp_path_factory.mktemp("families")
    config = families_config(root)
    run_stages(config, str(root / "run"))
    return config, root / "run"


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.slow
def test_stage1_fits_the_lightgbm_finalist_with_every_family(
    finished: tuple[EnvironmentConfig, Path],
) -> None:
    _, run_dir = finished
    rows = _read(run_dir / "tune" / "stage1" / "variants.json")
    winners = _read(run_dir / "tune" / "stage1" / "winners.json")["winners"]
    groups = {row["group_id"] for row in rows}
    assert len(groups) == 8
    checked = 0
    for gid in groups:
        mine = [r for r in rows if r["group_id"] == gid]
        lightgbm = [r for r in mine if r["family"] == "lightgbm" and r["status"] == "ok"]
        others = [r for r in mine if r["family"] != "lightgbm"]
        if not lightgbm:
            continue
        assert len([r for r in mine if r["family"] == "lightgbm"]) == 2  # every variant
        finalist = max(lightgbm, key=lambda r: (r["average_precision"], r["variant_id"]))
        assert [(r["family"], r["variant_id"]) for r in others] == [
            (name, finalist["variant_id"]) for name in FAMILIES[1:]
        ]
        assert all(r["status"] == "ok" for r in others), others
        # the oracle: the best finite selection AP over every family's rows
        ok = [r for r in mine if r["status"] == "ok" and math.isfinite(r["average_precision"])]
        best = max(ok, key=lambda r: r["average_precision"])
        assert winners[gid]["average_precision"] == best["average_precision"]
        assert winners[gid]["family"] in FAMILIES
        checked += 1
    assert checked >= 6


@pytest.mark.slow
def test_the_winner_family_is_trained_saved_and_registered(
    finished: tuple[EnvironmentConfig, Path],
) -> None:
    _, run_dir = finished
    winners = _read(run_dir / "tune" / "stage1" / "winners.json")["winners"]
    trained: dict[str, Any] = {}
    for shard in sorted((run_dir / "train" / "shards").glob("*.json")):
        trained.update(_read(shard))
    registry = ModelRegistry(root=run_dir.parent / "registry")
    registered = {m.group: m for m in registry.list_models()}
    assert trained and set(registered) == {g for g, t in trained.items() if t["status"] == "ok"}
    for gid, fitted in trained.items():
        assert fitted["family"] == winners[gid]["family"]
        bundle = load_model(run_dir / "train" / "models" / f"{gid}.zip", fitted["sha256"])
        assert bundle.family == fitted["family"]
        assert registered[gid].model_type == fitted["family"]
    by_type = {name: len(registry.list_models(model_type=name)) for name in FAMILIES}
    assert sum(by_type.values()) == len(registered)


@pytest.mark.slow
def test_models_list_filters_by_family(finished: tuple[EnvironmentConfig, Path]) -> None:
    _, run_dir = finished
    registry = ModelRegistry(root=run_dir.parent / "registry")
    for name in FAMILIES:
        expected = sorted(m.model_id for m in registry.list_models(model_type=name))
        result = CliRunner().invoke(
            app,
            ["models", "list", "--model-type", name, "--runs-dir", str(run_dir.parent)],
            env={"COLUMNS": "300"},
        )
        assert result.exit_code == 0, result.output
        listed = sorted(re.findall(r"alphafactory\.\S+/\d+", result.output))
        assert listed == expected


@pytest.mark.slow
def test_report_compares_families_per_group(finished: tuple[EnvironmentConfig, Path]) -> None:
    _, run_dir = finished
    report = (run_dir / "report.md").read_text()
    section = report.split("## Families per group")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert table[0] == "| group | " + " | ".join(sorted(FAMILIES)) + " |"
    assert len(table) == 1 + 8
    assert sum(line.count(" *") for line in table[1:]) >= 6  # one winner marked per group


def test_families_option_names_the_unknown_family() -> None:
    config = families_config(Path("runs"))
    assert with_families(config, "all").models.families[0] == "lightgbm"
    assert with_families(config, "xgboost, ftrl").models.families == ["xgboost", "ftrl"]
    with pytest.raises(ConfigError, match=r"--families 'lgbm': unknown family 'lgbm'; use 'all'"):
        with_families(config, "lgbm")


@pytest.mark.slow
def test_models_benchmark_scores_a_non_lightgbm_model_as_its_test_period(
    finished: tuple[EnvironmentConfig, Path], tmp_path: Path
) -> None:
    """`models benchmark` on the run's own bars: the out-of-sample AP it prints for each
    non-LightGBM model is the test AP the registry recorded (same events, same model)."""
    from alphafactory.data.bars import write_bars
    from alphafactory.stages.prepare import load_source_bars

    config, run_dir = finished
    bars_file = tmp_path / "bars.parquet"
    write_bars(load_source_bars(config)[0], str(bars_file))
    registry = ModelRegistry(root=run_dir.parent / "registry")
    others = [m for m in registry.list_models() if m.model_type != "lightgbm"]
    assert others, "the tiny run registered no model of another family"
    for model in others:
        result = CliRunner().invoke(
            app,
            ["models", "benchmark", "--models", model.model_id, str(bars_file),
             "--runs-dir", str(run_dir.parent)],
            env={"COLUMNS": "300"},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        row = next(line for line in result.output.splitlines() if "out-of-sample" in line)
        cells = [cell.strip() for cell in row.split("│")]  # model .. to, AP, grade
        printed = float(cells[7])
        assert printed == pytest.approx(registry.info(model.model_id).metrics["ap"], abs=6e-5)

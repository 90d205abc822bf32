"""End-to-end run of the stage functions (no kfp) on a tiny synthetic environment."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tiny_run import TINY_STAGE_SETTINGS

from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import DataError
from alphafactory.features import target_derived_columns
from alphafactory.models import load_model
from alphafactory.models.lightgbm import LightGBMModel
from alphafactory.stages import (
    run_infer,
    run_prepare,
    run_screen_aggregate,
    run_screen_shard,
    run_select_winners,
    run_train_shard,
    run_tune_shard,
)

SYMBOLS = ["BTC", "ETH"]


def tiny_config(n_bars: int = 1500) -> EnvironmentConfig:
    return EnvironmentConfig.model_validate(
        {
            "name": "test-tiny",
            "runner": "local",
            "data": {"source": "synthetic", "symbols": SYMBOLS, "n_bars": n_bars, "seed": 7},
            **TINY_STAGE_SETTINGS,
        }
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every stage once, in pipeline order; returns the run folder and each stage's metrics.

    Local runs keep their model cache and registry beside the run folder, so the run folder
    is nested in a private parent. A stage that raises is recorded, not raised here, so that
    the checks of earlier stages still report; `stage()` re-raises it where it is needed.
    """
    config = tiny_config()
    run_dir = tmp_path_factory.mktemp("stages") / "run-1"
    root = str(run_dir)
    metrics: dict[str, Any] = {"prepare": run_prepare(config, root)}
    plan = json.loads((run_dir / "prepare" / "plan.json").read_text())
    shards = range(len(plan["shards"]))
    steps = [
        ("screen", lambda: [run_screen_shard(config, root, s) for s in shards]),
        ("aggregate", lambda: run_screen_aggregate(config, root)),
        ("tune", lambda: [run_tune_shard(config, root, s) for s in shards]),
        ("winners", lambda: run_select_winners(config, root)),
        ("train", lambda: [run_train_shard(config, root, s) for s in shards]),
        ("infer", lambda: run_infer(config, root)),
    ]
    errors: dict[str, BaseException] = {}
    for name, step in steps:
        try:
            metrics[name] = step()
        except Exception as error:  # noqa: BLE001 - re-raised by the tests that need it
            errors[name] = error
            break
    return {"dir": run_dir, "plan": plan, "metrics": metrics, "errors": errors}


def stage(run: dict[str, Any], name: str) -> Any:
    """The metrics of one stage; raises what the first failing stage raised if it never ran."""
    if name not in run["metrics"]:
        failed, error = next(iter(run["errors"].items()))
        raise AssertionError(f"stage {failed!r} raised, so {name!r} has no results") from error
    return run["metrics"][name]


def _models(run_dir: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted((run_dir / "train" / "models").glob("*.zip"))}


def test_plan_has_eight_groups_of_one_variant(finished_run: dict[str, Any]) -> None:
    plan = finished_run["plan"]
    assert plan["symbols"] == SYMBOLS
    assert len(plan["groups"]) == 8
    assert plan["n_variants"] == 8
    assert all(len(variants) == 1 for variants in plan["groups"].values())
    assert sorted(plan["groups"]) == sorted(
        f"{s}_w{w}_{t}" for s in SYMBOLS for w in (3, 10) for t in ("high", "low")
    )
    assert len(plan["shards"]) == 2
    assert sorted(g for shard in plan["shards"] for g in shard) == sorted(plan["groups"])
    assert finished_run["metrics"]["prepare"]["variants"] == 8


def test_features_are_float32(finished_run: dict[str, Any]) -> None:
    frame = pl.read_parquet(finished_run["dir"] / "prepare" / "features.parquet")
    features = [c for c in frame.columns if c != "timestamp"]
    assert len(features) == finished_run["metrics"]["prepare"]["features_kept"] > 0
    assert all(frame.schema[c] == pl.Float32 for c in features)
    assert frame.height == 1500


def test_selected_features_within_bounds(finished_run: dict[str, Any]) -> None:
    assert stage(finished_run, "aggregate")["features_selected"] > 0
    selected = json.loads((finished_run["dir"] / "screen" / "selected_features.json").read_text())
    assert 20 <= len(selected) <= 40
    assert len(set(selected)) == len(selected)


def test_no_model_uses_its_own_target_derived_features(finished_run: dict[str, Any]) -> None:
    stage(finished_run, "train")
    plan = finished_run["plan"]
    all_features = pl.read_parquet_schema(finished_run["dir"] / "prepare" / "features.parquet")
    models = _models(finished_run["dir"])
    assert models
    checked_leaky_candidates = 0
    for gid, path in models.items():
        variant = plan["groups"][gid][0]
        names = load_model(path).feature_names
        leaking = target_derived_columns(
            list(all_features), variant["symbol"], variant["window"], variant["swing_type"]
        )
        checked_leaky_candidates += len(leaking)
        assert not set(names) & set(leaking), gid
    # The check is only meaningful if the matrix contains target-derived columns at all.
    assert checked_leaky_candidates > 0


def test_winners_one_per_group_with_valid_ap(finished_run: dict[str, Any]) -> None:
    assert stage(finished_run, "winners")["groups_with_winner"] == 8
    plan = finished_run["plan"]
    winners = json.loads((finished_run["dir"] / "tune" / "stage1" / "winners.json").read_text())
    assert set(winners["winners"]) == set(plan["groups"])
    for gid, row in winners["winners"].items():
        assert row["group_id"] == gid
        assert row["status"] == "ok"
        assert math.isfinite(row["average_precision"])
        assert 0.0 <= row["average_precision"] <= 1.0
        assert row["variant_id"] in {v_id(v) for v in plan["groups"][gid]}


def v_id(variant: dict[str, Any]) -> str:
    return (
        f"{variant['symbol']}_w{variant['window']}_{variant['swing_type']}"
        f"_s{variant['std_threshold']:g}_m{variant['move_threshold']:g}_h{variant['horizon']}"
    )


def test_every_model_file_loads(finished_run: dict[str, Any]) -> None:
    trained = stage(finished_run, "train")
    assert sum(shard["models_trained"] for shard in trained) == 8
    models = _models(finished_run["dir"])
    assert set(models) == set(finished_run["plan"]["groups"])
    selected = set(
        json.loads((finished_run["dir"] / "screen" / "selected_features.json").read_text())
    )
    for path in models.values():
        model = load_model(path)
        assert isinstance(model, LightGBMModel)
        assert model.booster.num_trees() >= 3  # multiclass: 3 trees per round
        assert set(model.feature_names) <= selected


def test_predictions_cover_timeline_times_models(finished_run: dict[str, Any]) -> None:
    stage(finished_run, "infer")
    run_dir = finished_run["dir"]
    predictions = pl.read_parquet(run_dir / "infer" / "predictions.parquet")
    timeline = pl.read_parquet(run_dir / "prepare" / "features.parquet", columns=["timestamp"])
    n_models = len(_models(run_dir))
    assert predictions.height == timeline.height * n_models
    assert finished_run["metrics"]["infer"]["models"] == n_models
    assert predictions["group_id"].n_unique() == n_models
    sums = predictions.select(
        pl.col("p_neither") + pl.col("p_breakout") + pl.col("p_reversion")
    ).to_series()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-5)
    for column in ("p_neither", "p_breakout", "p_reversion"):
        values = predictions[column].to_numpy()
        assert np.all((values >= 0) & (values <= 1))


def test_reports_list_every_group(finished_run: dict[str, Any]) -> None:
    stage(finished_run, "infer")
    run_dir = finished_run["dir"]
    html = (run_dir / "report.html").read_text()
    markdown = (run_dir / "report.md").read_text()
    for gid in finished_run["plan"]["groups"]:
        assert gid in html
        assert gid in markdown


def test_prepare_refuses_too_short_data(tmp_path: Path) -> None:
    raw = tiny_config().model_dump()
    raw["data"].update(symbols=["ETH"], n_bars=500)
    raw["grid"]["windows"] = [3, 200]  # needs 2 * 200 + 6 + 200 = 606 bars per symbol
    config = EnvironmentConfig.model_validate(raw)
    with pytest.raises(DataError, match=r"symbol ETH has 500 bars.*at least 606"):
        run_prepare(config, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "prepare" / "plan.json").exists()


def test_tune_shard_with_elimination_gives_the_same_stage1_rows(
    finished_run: dict[str, Any], tmp_path: Path
) -> None:
    """tune.elimination runs stage 1 through halve_groups; with one variant per group every
    variant is trained to the end, so each row equals the plain executor's."""
    import shutil

    stage(finished_run, "tune")
    run_dir = tmp_path / "run-2"
    shutil.copytree(finished_run["dir"], run_dir)
    settings = tiny_config().model_dump()
    settings["tune"]["elimination"] = True
    config = EnvironmentConfig.model_validate(settings)
    for shard in range(len(finished_run["plan"]["shards"])):
        name = Path("tune", "stage1", "shards", f"shard-{shard:03d}.json")
        plain = json.loads((finished_run["dir"] / name).read_text())
        (run_dir / name).unlink()
        run_tune_shard(config, str(run_dir), shard)
        halved = json.loads((run_dir / name).read_text())
        keys = ("variant_id", "group_id", "status", "average_precision", "best_iteration")
        assert [[r[k] for k in keys] for r in halved] == [[r[k] for k in keys] for r in plain]
        assert all(r["status"] == "ok" for r in halved)

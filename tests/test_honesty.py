"""Honest selection, end to end on tiny runs: the test period influences no choice, planted
signals are found and noise is not, and on pure noise nothing is promoted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tiny_run import TINY_STAGE_SETTINGS, run_stages

from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.bars import write_bars
from alphafactory.data.synthetic import generate_bars
from alphafactory.layout import RunLayout, read_plan
from alphafactory.registry import ModelRegistry
from alphafactory.stages import (
    run_prepare,
    run_screen_aggregate,
    run_screen_shard,
    run_search_shard,
    run_select_search,
    run_select_winners,
    run_train_shard,
    run_tune_shard,
)

SYMBOLS = ["BTC", "ETH"]
PLANTED_BARS = 4000


def honest_config(n_bars: int, planted: list[str], **overrides: Any) -> EnvironmentConfig:
    settings: dict[str, Any] = {
        "name": "test-honesty",
        "runner": "local",
        "data": {
            "source": "synthetic",
            "symbols": SYMBOLS,
            "n_bars": n_bars,
            "seed": 7,
            "planted": {"symbols": planted},
        },
        **TINY_STAGE_SETTINGS,
    }
    settings.update(overrides)
    return EnvironmentConfig.model_validate(settings)


def run_choices(config: EnvironmentConfig, run_dir: str) -> None:
    """Every stage that chooses something, after prepare: screen, tune 1-4, train."""
    shards = range(len(read_plan(RunLayout(run_dir)).shards))
    for shard in shards:
        run_screen_shard(config, run_dir, shard)
    run_screen_aggregate(config, run_dir)
    for shard in shards:
        run_tune_shard(config, run_dir, shard)
    run_select_winners(config, run_dir)
    for stage in (2, 3, 4):
        for shard in shards:
            run_search_shard(config, run_dir, shard, stage)
        run_select_search(config, run_dir, stage)
    for shard in shards:
        run_train_shard(config, run_dir, shard)


def shuffle_test_labels(run_dir: Path, seed: int) -> int:
    """Permute every variant's labels among its test-period rows; returns rows changed."""
    layout = RunLayout(str(run_dir))
    plan = read_plan(layout)
    rng = np.random.default_rng(seed)
    changed = 0
    for gid, variants in plan.groups.items():
        path = Path(layout.targets(gid))
        frame = pl.read_parquet(path)
        test = frame["timestamp"].cast(pl.Datetime("us")).to_numpy() >= plan.periods.test_start
        for variant in variants:
            labels = frame[variant.variant_id].to_numpy().astype(float)  # NaN for no event
            rows = np.flatnonzero(test & ~np.isnan(labels))
            shuffled = labels.copy()
            shuffled[rows] = rng.permutation(labels[rows])
            changed += int((shuffled[rows] != labels[rows]).sum())
            column = pl.Series(variant.variant_id, shuffled).fill_nan(None).cast(pl.Int8)
            frame = frame.with_columns(column)
        frame.write_parquet(path)
    return changed


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def chosen(run_dir: Path) -> dict[str, Any]:
    """Every choice a run made: features, winners, tuned points and adoption, model files."""
    tune = run_dir / "tune"
    searched = {
        stage: {
            unit: {k: v for k, v in row.items() if k in ("best_params", "best_value", "adoption")}
            for unit, row in read(tune / f"stage{stage}" / "winners.json")["units"].items()
        }
        for stage in (2, 3, 4)
    }
    models = sorted((run_dir / "train" / "models").glob("*.zip"))
    return {
        "features": read(run_dir / "screen" / "selected_features.json"),
        "winners": {  # everything but the fit's wall time
            gid: {k: v for k, v in row.items() if k != "seconds"}
            for gid, row in read(tune / "stage1" / "winners.json")["winners"].items()
        },
        "searched": searched,
        "models": {m.name: m.read_bytes() for m in models},
    }


def period_scores(run_dir: Path) -> dict[str, Any]:
    trained: dict[str, Any] = {}
    for shard in sorted((run_dir / "train" / "shards").glob("*.json")):
        trained.update(read(shard))
    return {gid: fitted["test"] for gid, fitted in trained.items() if "test" in fitted}


@pytest.mark.slow
@pytest.mark.parametrize(
    "families",
    [["lightgbm"], ["ftrl", "xgboost"]],
    ids=["lightgbm", "ftrl+xgboost"],  # the shard executor's path; the protocol's path
)
def test_shuffling_test_period_labels_changes_no_choice(
    tmp_path: Path, families: list[str]
) -> None:
    config = honest_config(
        PLANTED_BARS,
        ["BTC"],
        tune={"num_rounds": 30, "min_rows": 30, "stage_trials": {2: 2, 3: 2, 4: 2}},
        models={"families": families},
    )
    original = tmp_path / "a" / "run"
    run_prepare(config, str(original))
    shuffled = tmp_path / "b" / "run"  # its own runs folder: its own model cache
    shutil.copytree(original, shuffled)
    assert shuffle_test_labels(shuffled, seed=1) > 100

    run_choices(config, str(original))
    run_choices(config, str(shuffled))
    first, second = chosen(original), chosen(shuffled)
    assert len(first["models"]) == 8 and first["features"]
    assert {w["family"] for w in first["winners"].values()} <= set(families)
    assert first["searched"][4] and all("adoption" in u for u in first["searched"][4].values())
    assert first == second  # features, winners, tuned points, adoption, model bytes
    # ... while the test-period scores did see the shuffle
    before, after = period_scores(original), period_scores(shuffled)
    assert len(before) == 8
    assert any(before[g]["test_ap"] != after[g]["test_ap"] for g in before)


def test_hygiene_never_sees_the_test_period(tmp_path: Path) -> None:
    config = honest_config(1500, [])
    data = tmp_path / "bars.parquet"
    bars = generate_bars(SYMBOLS, n_bars=1500, seed=7)
    write_bars(bars, str(data))
    as_file = config.model_copy(update={"data": config.data.model_copy(
        update={"source": "uri", "uri": str(data)})})  # fmt: skip
    run_prepare(as_file, str(tmp_path / "clean"))
    test_start = read_plan(RunLayout(str(tmp_path / "clean"))).periods.test_start

    # Wreck every bar of the test period: constant prices and volume
    after = pl.col("timestamp").cast(pl.Datetime("us")) >= pl.lit(test_start)
    wrecked = bars.with_columns(
        [pl.when(after).then(pl.lit(1.0)).otherwise(pl.col(c)).alias(c)
         for c in ("open", "high", "low", "close", "volume")]
    )  # fmt: skip
    write_bars(wrecked, str(data))
    run_prepare(as_file, str(tmp_path / "wrecked"))

    clean = read(tmp_path / "clean" / "prepare" / "report.json")
    other = read(tmp_path / "wrecked" / "prepare" / "report.json")
    assert clean["kept"] > 100 and clean == other
    kept_clean = pl.read_parquet(tmp_path / "clean" / "prepare" / "features.parquet")
    kept_other = pl.read_parquet(tmp_path / "wrecked" / "prepare" / "features.parquet")
    assert kept_clean.columns == kept_other.columns
    before = pl.col("timestamp").cast(pl.Datetime("us")) < pl.lit(test_start)
    assert kept_clean.filter(before).equals(kept_other.filter(before))
    assert not kept_clean.equals(kept_other)  # the wreck did reach the test rows


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("planted") / "run-1"
    run_stages(honest_config(PLANTED_BARS, ["BTC"]), str(run_dir))
    return run_dir


@pytest.mark.slow
def test_planted_groups_have_skill_and_noise_groups_do_not(planted_run: Path) -> None:
    truth = read(planted_run / "prepare" / "ground_truth.json")["groups"]
    published = read(planted_run / "infer" / "registry.json")
    planted = [g for g, kind in truth.items() if kind == "planted"]
    noise = [g for g, kind in truth.items() if kind == "noise"]
    assert sorted(planted) == sorted(g for g in published if g.startswith("BTC"))
    assert len(planted) == 4 and len(noise) == 4
    found = sum(published[g]["skill"]["skill"] for g in planted)
    false = sum(published[g]["skill"]["skill"] for g in noise)
    # Stated rates: at least 90 % of planted groups found, at least 90 % of noise groups not
    # (with 4 + 4 groups: all of them); seed and data are fixed.
    assert found / len(planted) >= 0.9 and (len(noise) - false) / len(noise) >= 0.9
    for gid in noise:
        assert published[gid]["grade"] == "F" and not published[gid]["champion"]
    for gid in planted:
        skill = published[gid]["skill"]
        assert skill["test_ap"] > skill["baseline_ap"] and skill["p_adjusted"] < 0.05
        assert published[gid]["champion"] and published[gid]["grade"] != "F"
    report = (planted_run / "report.md").read_text()
    headline = report.splitlines()[2]
    assert headline.startswith("**Skill on the untouched test period: 4 of 8 models")
    assert "4 of 4 planted groups have skill; 0 of 4 groups without a planted signal do" in report


@pytest.mark.slow
def test_registry_carries_the_skill_test(planted_run: Path) -> None:
    registry = ModelRegistry(root=planted_run.parent / "registry")
    published = read(planted_run / "infer" / "registry.json")
    plan = read(planted_run / "prepare" / "plan.json")
    for entry in published.values():
        info = registry.info(entry["model_id"])
        assert info.tags["skill"] == ("yes" if entry["skill"]["skill"] else "no")
        assert info.tags["test_start"] == plan["periods"]["test_start"]
        assert info.metrics["ap"] == pytest.approx(entry["skill"]["test_ap"])
        assert info.metrics["n_test"] == entry["skill"]["n_events"] > 30
        assert float(info.tags["skill_p_adjusted"]) == pytest.approx(
            entry["skill"]["p_adjusted"], rel=1e-5
        )


@pytest.mark.slow
def test_on_pure_noise_no_model_is_promoted(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-1"
    run_stages(honest_config(PLANTED_BARS, []), str(run_dir))
    published = read(run_dir / "infer" / "registry.json")
    assert len(published) == 8
    assert not any(entry["champion"] for entry in published.values())
    assert {entry["grade"] for entry in published.values()} == {"F"}
    registry = ModelRegistry(root=tmp_path / "registry")
    names = {registry.info(e["model_id"]).model.name for e in published.values()}
    assert all(registry.champion(name) is None for name in names)
    assert read(run_dir / "prepare" / "ground_truth.json")["planted_symbols"] == []

"""Publishing is idempotent per (run, group) and `champion` moves only for a finalised run:
a re-run of the same run's publish reuses its versions, a tie keeps the champion, an
unfinished run records its candidates and a finished one applies them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tiny_run import TinyRuns, clone_runs

from alphafactory.errors import ConfigError, ModelError
from alphafactory.registry import Lineage, ModelRegistry, SemVer, registered_model_name
from alphafactory.stages import run_infer
from alphafactory.stages.publish import apply_promotions

GROUPS_WITH_SKILL = ["BTC_w10_high", "BTC_w10_low", "BTC_w3_high", "BTC_w3_low"]


def _registry(runs: TinyRuns) -> ModelRegistry:
    return ModelRegistry(root=runs.runs_dir / "registry")


def _champions(registry: ModelRegistry, groups: list[str]) -> dict[str, str | None]:
    champions = {gid: registry.champion(registered_model_name(gid)) for gid in groups}
    return {gid: None if c is None else str(c.semver) for gid, c in champions.items()}


def _published(run_dir: Path) -> dict[str, dict]:
    return dict(json.loads((run_dir / "infer" / "registry.json").read_text()))


def _copy_run(runs: TinyRuns, name: str) -> Path:
    """run-1's folder under a new name: the same models published by another run id."""
    target = runs.runs_dir / name
    shutil.copytree(runs.run_dir, target)
    return target


def _raise_test_ap(run_dir: Path, gid: str, by: float) -> None:
    for shard in (run_dir / "train" / "shards").glob("*.json"):
        fitted = json.loads(shard.read_text())
        if gid in fitted:
            fitted[gid]["test"]["test_ap"] += by
            shard.write_text(json.dumps(fitted))


def test_publishing_the_same_run_again_reuses_its_versions(
    tiny_runs: TinyRuns, tmp_path: Path
) -> None:
    runs = clone_runs(tiny_runs, tmp_path)
    before = {m.model_id for m in _registry(runs).list_models()}
    run_infer(runs.config, str(runs.run_dir))  # a retried or re-run infer task
    run_infer(runs.config, str(runs.run_dir))
    registry = _registry(runs)
    models = registry.list_models()
    assert {m.model_id for m in models} == before and len(models) == 8
    assert {str(m.semver) for m in models} == {"1.0.0"}
    assert {g: p["semver"] for g, p in _published(runs.run_dir).items()} == dict.fromkeys(
        _published(runs.run_dir), "1.0.0"
    )
    assert len(registry.list_models(pipeline_run="run-1")) == 8
    assert _champions(registry, GROUPS_WITH_SKILL) == dict.fromkeys(GROUPS_WITH_SKILL, "1.0.0")
    published = _published(runs.run_dir)
    assert sorted(g for g, p in published.items() if p["champion"]) == GROUPS_WITH_SKILL


def test_an_unfinished_run_moves_no_champion_until_it_is_finalised(
    tiny_runs: TinyRuns, tmp_path: Path
) -> None:
    """Run 2 republishes run 1's models; BTC_w3_high's test AP is strictly better, the other
    three tie. Nothing moves while the folder is `.incomplete`; after the rename the better
    one takes `champion` and the ties keep 1.0.0."""
    runs = clone_runs(tiny_runs, tmp_path)
    working = _copy_run(runs, "run-2.incomplete")
    _raise_test_ap(working, "BTC_w3_high", 0.01)
    run_infer(runs.config, str(working))
    registry = _registry(runs)
    assert len(registry.list_models(pipeline_run="run-2")) == 8
    assert {str(m.semver) for m in registry.list_models(pipeline_run="run-2")} == {"1.0.1"}
    assert _champions(registry, GROUPS_WITH_SKILL) == dict.fromkeys(GROUPS_WITH_SKILL, "1.0.0")
    record = json.loads((working / "infer" / "promotions.json").read_text())
    assert record["run_id"] == "run-2" and "applied" not in record
    assert sorted(record["candidates"]) == GROUPS_WITH_SKILL
    # the pending champion is announced only for the strictly better model
    published = _published(working)
    assert sorted(g for g, p in published.items() if p["champion"]) == ["BTC_w3_high"]
    with pytest.raises(ConfigError, match=r"run-2.incomplete is not finalised"):
        apply_promotions(runs.config, str(working))

    finished = working.rename(runs.runs_dir / "run-2")
    moved = apply_promotions(runs.config, str(finished))
    assert moved == {"BTC_w10_high": False, "BTC_w10_low": False, "BTC_w3_high": True,
                     "BTC_w3_low": False}  # fmt: skip
    expected = {**dict.fromkeys(GROUPS_WITH_SKILL, "1.0.0"), "BTC_w3_high": "1.0.1"}
    assert _champions(registry, GROUPS_WITH_SKILL) == expected
    assert apply_promotions(runs.config, str(finished)) == moved  # idempotent
    assert _champions(registry, GROUPS_WITH_SKILL) == expected
    assert sorted(g for g, p in _published(finished).items() if p["champion"]) == ["BTC_w3_high"]


def test_a_failed_run_never_moves_a_champion(tiny_runs: TinyRuns, tmp_path: Path) -> None:
    runs = clone_runs(tiny_runs, tmp_path)
    failed = _copy_run(runs, "run-3.failed")
    _raise_test_ap(failed, "BTC_w3_high", 0.01)
    run_infer(runs.config, str(failed))
    registry = _registry(runs)
    assert len(registry.list_models(pipeline_run="run-3")) == 8
    assert _champions(registry, GROUPS_WITH_SKILL) == dict.fromkeys(GROUPS_WITH_SKILL, "1.0.0")
    with pytest.raises(ConfigError, match=r"run-3.failed is not finalised"):
        apply_promotions(runs.config, str(failed))


def _register(registry: ModelRegistry, model_file: Path, run_id: str, version: str) -> str:
    registered = registry.register(
        "alphafactory.G_w3_high",
        model_file,
        model_type="lightgbm",
        metrics={"ap": 0.5},
        params={},
        lineage=Lineage(data_hash="d" * 64, feature_list=("f1",), pipeline_run_id=run_id),
        grade="B",
        version=SemVer.parse(version),
        symbol="G",
        group="G_w3_high",
    )
    return f"{registered.model_id} {registered.semver}"


def test_register_returns_the_version_its_run_registered(tmp_path: Path) -> None:
    registry = ModelRegistry(root=tmp_path / "registry")
    model_file = tmp_path / "model.txt"
    model_file.write_text("a model")
    assert _register(registry, model_file, "run-a", "1.0.0") == "alphafactory.G_w3_high/1 1.0.0"
    assert _register(registry, model_file, "run-a", "1.0.1") == "alphafactory.G_w3_high/1 1.0.0"
    assert _register(registry, model_file, "run-b", "1.0.1") == "alphafactory.G_w3_high/2 1.0.1"
    assert len(registry.list_models()) == 2
    model_file.write_text("another model")
    with pytest.raises(ModelError, match=r"pipeline run run-a registered alphafactory.G_w3_high/1"):
        _register(registry, model_file, "run-a", "1.0.2")
    assert len(registry.list_models()) == 2

"""The publish step of the infer stage: registry versions, grades, checksums, lineage and
champions after a tiny run, and what a new run on identical inputs does (cache hits, patch
bump, a tie keeps the champion)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from tiny_run import TinyRuns, clone_runs

from alphafactory.errors import ModelError
from alphafactory.layout import RunLayout
from alphafactory.models import load_model
from alphafactory.registry import (
    CHAMPION,
    GRADES,
    ModelRegistry,
    RegisteredModel,
    SemVer,
    registered_model_name,
    sha256_file,
)
from alphafactory.stages import run_infer, run_train_shard
from alphafactory.stages.infer import trained_models


@dataclass(frozen=True)
class Rerun:
    runs: TinyRuns
    registry: ModelRegistry
    shard_seconds: list[float]
    shard_files: list[dict[str, Any]]
    published: dict[str, dict[str, Any]]


def _registry(runs: TinyRuns) -> ModelRegistry:
    return ModelRegistry(root=runs.runs_dir / "registry")


def _published(runs: TinyRuns) -> dict[str, dict[str, Any]]:
    return dict(json.loads((runs.run_dir / "infer" / "registry.json").read_text()))


def _production_models(runs: TinyRuns) -> dict[str, dict[str, Any]]:
    return trained_models(RunLayout(str(runs.run_dir)), len(runs.plan["shards"]))


@pytest.fixture(scope="module")
def first(tiny_runs: TinyRuns) -> TinyRuns:
    return tiny_runs


@pytest.fixture(scope="module")
def rerun(tiny_runs: TinyRuns, tmp_path_factory: pytest.TempPathFactory) -> Rerun:
    """train + infer once more as a new run (`run-2`, a copy of the finished run): identical
    inputs."""
    runs = clone_runs(tiny_runs, tmp_path_factory.mktemp("publish-rerun"))
    second = runs.runs_dir / "run-2"
    shutil.copytree(runs.run_dir, second)
    config, root = runs.config, str(second)
    seconds, files = [], []
    for shard in range(len(runs.plan["shards"])):
        started = time.perf_counter()
        run_train_shard(config, root, shard)
        seconds.append(time.perf_counter() - started)
        path = second / "train" / "shards" / f"shard-{shard:03d}.json"
        files.append(json.loads(path.read_text()))
    run_infer(config, root)
    published = dict(json.loads((second / "infer" / "registry.json").read_text()))
    return Rerun(runs, _registry(runs), seconds, files, published)


def _version(registry: ModelRegistry, gid: str, semver: str) -> RegisteredModel:
    name = registered_model_name(gid)
    found = [m for m in registry.list_models(group=gid) if str(m.semver) == semver]
    assert len(found) == 1, (name, semver, found)
    return found[0]


def test_every_production_model_is_registered_as_1_0_0(first: TinyRuns) -> None:
    models = _production_models(first)
    registry = _registry(first)
    registered = registry.list_models()
    assert len(models) == 8
    assert sorted(m.group for m in registered) == sorted(models)
    assert {str(m.semver) for m in registered} == {"1.0.0"}
    assert {m.name for m in registered} == {registered_model_name(g) for g in models}
    assert all(m.model_type == "lightgbm" for m in registered)
    published = _published(first)
    assert {gid: {k: v for k, v in p.items() if k != "skill"} for gid, p in published.items()} == {
        m.group: {
            "model_id": m.model_id,
            "display_name": m.display_name,
            "semver": "1.0.0",
            "grade": m.grade,
            "champion": published[m.group]["skill"]["skill"],
        }
        for m in registered
    }


def test_only_the_planted_symbols_models_have_skill(first: TinyRuns) -> None:
    published = _published(first)
    skilled = sorted(gid for gid, p in published.items() if p["skill"]["skill"])
    assert skilled == sorted(gid for gid in published if gid.startswith("BTC"))
    assert len(skilled) == 4


def test_grades_checksums_and_lineage(first: TinyRuns) -> None:
    registry = _registry(first)
    plan = first.plan
    for gid, fitted in _production_models(first).items():
        model = _version(registry, gid, "1.0.0")
        model_file = first.run_dir / "train" / "models" / f"{gid}.zip"
        assert model.grade in GRADES
        assert model.symbol == fitted["variant"]["symbol"]
        assert model.sha256 == sha256_file(model_file)
        info = registry.info(model.model_id)
        assert info.tags["sha256"] == sha256_file(model_file)
        assert info.lineage.data_hash == plan["data_hash"]
        assert info.lineage.feature_list == load_model(model_file, model.sha256).feature_names
        assert info.lineage.parent_model_ids == ()
        assert info.lineage.pipeline_run_id == "run-1"
        assert info.params["variant_id"] == fitted["variant_id"]
        # the registered, graded AP is the untouched test period's; selection AP is beside it
        assert info.metrics["ap"] == pytest.approx(fitted["test"]["test_ap"])
        assert info.metrics["selection_ap"] == pytest.approx(fitted["average_precision"])
        assert info.metrics["n_test"] == fitted["test"]["n_events"]
        skill = info.tags["skill"] == "yes"
        assert skill == (model.grade != "F")  # without skill: F whatever the cohort rank


def test_champion_alias_points_at_each_group_model_with_skill(first: TinyRuns) -> None:
    registry = _registry(first)
    published = _published(first)
    assert len(published) == 8
    for gid in _production_models(first):
        champion = registry.champion(registered_model_name(gid))
        if not published[gid]["skill"]["skill"]:
            assert champion is None  # no skill on the test period: never a champion
            continue
        assert champion is not None
        assert champion.semver == SemVer(1, 0, 0)
        assert CHAMPION in champion.aliases


def test_rerun_takes_every_production_fit_from_the_cache(rerun: Rerun) -> None:
    entries = [entry for shard in rerun.shard_files for entry in shard.values()]
    assert len(entries) == 8
    assert all(entry["cache_hit"] is True for entry in entries)
    assert all(seconds < 1.0 for seconds in rerun.shard_seconds), rerun.shard_seconds
    print(f"cached train shards took {[round(s, 3) for s in rerun.shard_seconds]} s")


def test_rerun_on_same_data_bumps_the_patch_version(rerun: Rerun) -> None:
    """Same variant, same features, same data: a 'params' change, so 1.0.0 -> 1.0.1."""
    registry = rerun.registry
    assert {g: p["semver"] for g, p in rerun.published.items()} == {
        g: "1.0.1" for g in rerun.published
    }
    for gid in rerun.published:
        earlier, later = _version(registry, gid, "1.0.0"), _version(registry, gid, "1.0.1")
        assert later.sha256 == earlier.sha256  # the cached file is the same model
        champion = registry.champion(registered_model_name(gid))
        parents = registry.info(later.model_id).lineage.parent_model_ids
        if not rerun.published[gid]["skill"]["skill"]:
            assert champion is None and parents == ()
            continue
        assert parents == (earlier.model_id,)
        # equal test AP: a tie keeps the current champion
        assert champion is not None and champion.model_id == earlier.model_id
        assert not rerun.published[gid]["champion"]
    assert len(registry.list_models()) == 16


def test_tampered_artifact_is_refused_by_download(rerun: Rerun, tmp_path: Path) -> None:
    registry = rerun.registry
    model = registry.list_models()[0]
    source = urlparse(registry.info(model.model_id).source).path
    stored = Path(source) / model.artifact_file
    original = stored.read_bytes()
    assert registry.download(model.model_id, tmp_path / "good").read_bytes() == original
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF  # one flipped byte inside the compressed bundle
    stored.write_bytes(bytes(tampered))
    with pytest.raises(ModelError, match=r"sha256 .* was recorded: the file was modified"):
        registry.download(model.model_id, tmp_path / "bad")
    assert not (tmp_path / "bad" / model.artifact_file).exists()


def test_a_new_version_without_skill_leaves_the_previous_champion(
    tiny_runs: TinyRuns, tmp_path: Path
) -> None:
    """The same model republished, but its skill test now fails: graded F, champion stays."""
    runs = clone_runs(tiny_runs, tmp_path)
    gid = "BTC_w3_high"
    assert _published(runs)[gid]["champion"]
    second = runs.runs_dir / "run-2"  # a new run: the same run would reuse its versions
    shutil.copytree(runs.run_dir, second)
    for shard in (second / "train" / "shards").glob("*.json"):
        fitted = json.loads(shard.read_text())
        if gid in fitted:
            fitted[gid]["test"]["p_value"] = 1.0
            fitted[gid]["test"]["test_ap"] += 0.01  # better, but without skill
        for other, entry in fitted.items():
            if other != gid and other.startswith("BTC"):
                entry["test"]["test_ap"] += 0.01  # strictly better: these take champion
        shard.write_text(json.dumps(fitted))
    run_infer(runs.config, str(second))
    republished = dict(json.loads((second / "infer" / "registry.json").read_text()))
    assert republished[gid]["semver"] == "1.0.1" and republished[gid]["grade"] == "F"
    assert not republished[gid]["champion"] and not republished[gid]["skill"]["skill"]
    registry = _registry(runs)
    champion = registry.champion(registered_model_name(gid))
    assert champion is not None and champion.semver == SemVer(1, 0, 0)
    assert registry.info(_version(registry, gid, "1.0.1").model_id).tags["skill"] == "no"
    # the other planted groups kept their skill, beat 1.0.0 and moved their champion to 1.0.1
    others = [g for g, p in republished.items() if p["skill"]["skill"]]
    assert len(others) == 3 and all(republished[g]["champion"] for g in others)
    assert all(_champion_semver(registry, g) == SemVer(1, 0, 1) for g in others)


def _champion_semver(registry: ModelRegistry, gid: str) -> SemVer | None:
    champion = registry.champion(registered_model_name(gid))
    return None if champion is None else champion.semver

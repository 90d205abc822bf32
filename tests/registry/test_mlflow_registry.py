"""The MLflow registry end to end, on a local SQLite file and on a real MLflow server backed by
a real PostgreSQL (slow)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from conftest import train_tiny_lightgbm

from alphafactory.errors import ConfigError, ModelError
from alphafactory.registry import (
    Lineage,
    ModelRegistry,
    RegisteredModel,
    SemVer,
    next_version,
    registered_model_name,
    sha256_file,
)

FEATURES = ("rsi_14", "atr_10", "body_ratio", "hour_sin", "AAPL_ret_5", "MSFT_ret_5")
GROUP_A = "AAPL_w5_breakout"
GROUP_B = "MSFT_w10_reversion"


@dataclass(frozen=True)
class Populated:
    registry: ModelRegistry
    artifacts_dir: Path
    models: tuple[RegisteredModel, ...]
    files: tuple[Path, ...]
    work_dir: Path


def _register(
    registry: ModelRegistry, path: Path, *, group: str, symbol: str, version: SemVer,
    grade: str, model_type: str = "lightgbm", parents: tuple[str, ...] = (), ap: float = 0.6,
    run: str = "run-42",
) -> RegisteredModel:  # fmt: skip
    """Register one model; a pipeline run registers each group once, so a second model of a
    group comes from another `run`."""
    return registry.register(
        registered_model_name(group),
        path,
        model_type=model_type,
        metrics={"ap": ap, "auc": 0.7},
        params={"num_leaves": 4, "learning_rate": 0.1},
        lineage=Lineage(
            data_hash="d" * 64,
            feature_list=FEATURES,
            parent_model_ids=parents,
            pipeline_run_id=run,
        ),
        grade=grade,
        version=version,
        symbol=symbol,
        group=group,
    )


def _populate(registry: ModelRegistry, artifacts_dir: Path, work_dir: Path) -> Populated:
    files = tuple(
        train_tiny_lightgbm(work_dir / f"model_{seed}.txt", seed, linear_tree=seed == 3)
        for seed in (1, 2, 3)
    )
    first = _register(registry, files[0], group=GROUP_A, symbol="AAPL", version=SemVer(1, 0, 0),
                      grade="A", ap=0.6123)  # fmt: skip
    second = _register(registry, files[1], group=GROUP_A, symbol="AAPL",
                       version=next_version(first.semver, "data"), grade="B",
                       parents=(first.model_id,), ap=0.5, run="run-43")  # fmt: skip
    third = _register(registry, files[2], group=GROUP_B, symbol="MSFT", version=SemVer(1, 0, 0),
                      grade="A", model_type="lightgbm_linear", ap=0.655)  # fmt: skip
    return Populated(registry, artifacts_dir, (first, second, third), files, work_dir)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def populated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Populated]:
    work_dir = tmp_path_factory.mktemp(f"registry-{request.param}")
    if request.param == "sqlite":
        registry = ModelRegistry(root=work_dir / "registry")
        artifacts_dir = work_dir / "registry" / "artifacts"
    else:
        uri, artifacts_dir = request.getfixturevalue("mlflow_postgres_server")
        registry = ModelRegistry(uri)
    yield _populate(registry, artifacts_dir, work_dir)


def test_register_returns_tagged_record(populated: Populated) -> None:
    first = populated.models[0]
    assert first.model_id == f"alphafactory.{GROUP_A}/1"
    assert first.display_name == "lightgbm_1.0.0_grade_A_ap_0.6123"
    assert (first.semver, first.grade, first.symbol, first.group) == (
        SemVer(1, 0, 0), "A", "AAPL", GROUP_A
    )  # fmt: skip
    assert first.sha256 == sha256_file(populated.files[0])
    assert populated.models[1].semver == SemVer(1, 1, 0)


def test_list_models_filters(populated: Populated) -> None:
    registry = populated.registry

    def ids(models: list[RegisteredModel]) -> list[str]:
        return [model.model_id for model in models]

    first, second, third = (model.model_id for model in populated.models)
    assert set(ids(registry.list_models())) >= {first, second, third}
    assert ids(registry.list_models(model_type="lightgbm_linear")) == [third]
    assert ids(registry.list_models(grade="A")) == [first, third]
    assert ids(registry.list_models(symbol="AAPL")) == [first, second]
    assert ids(registry.list_models(model_type="lightgbm", grade="B", symbol="AAPL")) == [second]
    assert ids(registry.list_models(group=GROUP_B)) == [third]
    assert ids(registry.list_models(symbol="AAPL", min_grade="B+")) == [first]
    assert registry.list_models(symbol="NOPE") == []


def test_info_shows_lineage_checksum_and_metrics(populated: Populated) -> None:
    second = populated.models[1]
    info = populated.registry.info(second.model_id)
    assert info.lineage == Lineage("d" * 64, FEATURES, (populated.models[0].model_id,), "run-43")
    assert info.sha256 == sha256_file(populated.files[1])
    assert info.metrics == {"ap": 0.5, "auc": 0.7}
    assert info.params == {"num_leaves": "4", "learning_rate": "0.1"}
    assert info.tags["feature_count"] == str(len(FEATURES))
    assert info.tags["feature_hash"] == info.lineage.feature_hash
    assert populated.registry.get(second.display_name) == second


def test_champion_alias(populated: Populated) -> None:
    name = registered_model_name(GROUP_A)
    assert populated.registry.champion(name) is None
    promoted = populated.registry.set_alias(name, SemVer(1, 1, 0), "champion")
    assert promoted.version == 2 and promoted.aliases == ("champion",)
    champion = populated.registry.champion(name)
    assert champion is not None and champion.model_id == populated.models[1].model_id
    populated.registry.set_alias(name, 1, "champion")
    moved = populated.registry.champion(name)
    assert moved is not None and moved.version == 1


def test_download_verifies_and_loads(populated: Populated, tmp_path: Path) -> None:
    third = populated.models[2]
    local = populated.registry.download(third.model_id, tmp_path / "dl")
    assert sha256_file(local) == third.sha256
    booster = lgb.Booster(model_file=str(local))
    rows = np.random.default_rng(0).normal(size=(4, 6))
    original = lgb.Booster(model_file=str(populated.files[2]))
    np.testing.assert_array_equal(booster.predict(rows), original.predict(rows))


def test_tampered_artifact_is_refused(populated: Populated, tmp_path: Path) -> None:
    path = train_tiny_lightgbm(populated.work_dir / "model_9.txt", 9)
    model = _register(populated.registry, path, group="SPY_w2_breakout", symbol="SPY",
                      version=SemVer(1, 0, 0), grade="C")  # fmt: skip
    stored = list(populated.artifacts_dir.rglob(f"{model.run_id}/artifacts/model/{path.name}"))
    assert len(stored) == 1
    content = bytearray(stored[0].read_bytes())
    content[100] ^= 0x01
    stored[0].write_bytes(bytes(content))
    with pytest.raises(ModelError, match="was modified or corrupted") as caught:
        populated.registry.download(model.model_id, tmp_path / "dl")
    assert model.sha256 in str(caught.value)
    assert not (tmp_path / "dl" / path.name).exists()


def test_duplicate_version_is_refused(populated: Populated) -> None:
    with pytest.raises(ModelError, match="already has version 1.0.0: pick the next one"):
        _register(populated.registry, populated.files[0], group=GROUP_A, symbol="AAPL",
                  version=SemVer(1, 0, 0), grade="A", run="run-44")  # fmt: skip


def test_latest_version_feeds_next_version(populated: Populated) -> None:
    latest = populated.registry.latest_version(registered_model_name(GROUP_A))
    assert latest == SemVer(1, 1, 0)
    assert next_version(latest, "params") == SemVer(1, 1, 1)
    assert populated.registry.latest_version("alphafactory.unknown") is None


def test_unknown_model_id(populated: Populated) -> None:
    with pytest.raises(ModelError, match="'alphafactory.nope/7' is not in the registry"):
        populated.registry.info("alphafactory.nope/7")
    with pytest.raises(ModelError, match="'no_such_display_name' is not in the registry"):
        populated.registry.get("no_such_display_name")


def test_register_rejects_bad_input(populated: Populated, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist: train and save the model"):
        _register(populated.registry, tmp_path / "missing.txt", group=GROUP_A, symbol="AAPL",
                  version=SemVer(9, 0, 0), grade="A", run="run-45")  # fmt: skip
    with pytest.raises(ConfigError, match="grade 'Z' is unknown"):
        _register(populated.registry, populated.files[0], group=GROUP_A, symbol="AAPL",
                  version=SemVer(9, 0, 0), grade="Z", run="run-45")  # fmt: skip
    with pytest.raises(ConfigError, match="contains a quote"):
        populated.registry.list_models(symbol="x' OR '1'='1")


def test_missing_mlflow_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(ConfigError, match=r"pip install 'alphafactory\[registry\]'"):
        ModelRegistry(root=tmp_path)

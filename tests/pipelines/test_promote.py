"""`promote` on a temporary copy of the repository, with a real SQLite MLflow registry."""

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from alphafactory.errors import ConfigError
from alphafactory.registry import Lineage, ModelRegistry, SemVer, registered_model_name
from alphafactory.registry.grades import (
    METRIC_BACKTEST_MAX_DRAWDOWN,
    METRIC_BACKTEST_TRADES,
    METRIC_DEFLATED_SHARPE,
)
from pipelines.local import compiled_text
from pipelines.promote import promote

REPO = Path(__file__).resolve().parents[2]
STAGING_CPU = "sha256:5" + "a" * 63
STAGING_GPU = "sha256:5" + "b" * 63
PROD_CPU = "sha256:9" + "c" * 63
PROD_GPU = "sha256:9" + "f" * 63
REGISTRY = "europe-west4-docker.pkg.dev/replace-me-gcp-project/alphafactory"
#: backtest figures that pass staging's backtest gates (tests/test_backtest_gates.py fails them)
PASSING_BACKTEST = {
    METRIC_DEFLATED_SHARPE: 0.99,
    METRIC_BACKTEST_MAX_DRAWDOWN: 0.1,
    METRIC_BACKTEST_TRADES: 100.0,
}


def _tiny_model(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 4, "seed": seed,
              "deterministic": True, "force_col_wise": True, "num_threads": 1,
              "verbose": -1}  # fmt: skip
    data = lgb.Dataset(rng.normal(size=(200, 4)), rng.integers(0, 3, size=200))
    lgb.train(params, data, num_boost_round=3).save_model(str(path))
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRegistry]:
    """Two groups; group BTC_w5_high has versions graded A (1) and C (2), champion -> 1;
    every version's backtest passes staging's gates."""
    folder = tmp_path_factory.mktemp("registry")
    models = ModelRegistry(
        f"sqlite:///{folder / 'mlflow.db'}", artifact_root=(folder / "artifacts").as_uri()
    )
    for index, (group, grade, version) in enumerate(
        [
            ("BTC_w5_high", "A", SemVer(1, 0, 0)),
            ("BTC_w5_high", "C", SemVer(1, 1, 0)),
            ("ETH_w10_low", "B+", SemVer(1, 0, 0)),
        ]  # fmt: skip
    ):
        models.register(
            registered_model_name(group),
            _tiny_model(folder / f"model_{index}.txt", index),
            model_type="lightgbm",
            metrics={"ap": 0.6, **PASSING_BACKTEST},
            params={"num_leaves": 4},
            lineage=Lineage(data_hash="d" * 64, feature_list=("f0", "f1", "f2", "f3")),
            grade=grade,
            version=version,
            symbol=group.split("_")[0],
            group=group,
            extra_tags={"skill": "yes"},
        )
    models.set_alias(registered_model_name("BTC_w5_high"), 1, "champion")
    models.set_alias(registered_model_name("ETH_w10_low"), 1, "champion")
    yield models


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("manifests", "pipelines"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=ignore)
    return tmp_path


def _changed(diff: str, path: str) -> list[str]:
    """The +/- lines of one file's section of a unified diff."""
    section = diff.split(f"--- a/{path}\n", 1)[1].split("\n--- a/", 1)[0]
    return [line for line in section.splitlines()[1:] if line[:1] in "+-" and line[:3] != "+++"]


def test_promote_staging_to_production_edits_the_files(repo: Path, registry: ModelRegistry) -> None:
    before = (repo / "pipelines/compiled/staging.yaml").read_bytes()
    result = promote(repo, "staging", "production", tracking_uri=registry.tracking_uri)

    assert _changed(result.diff, "manifests/overlays/production/kustomization.yaml") == [
        f"-    digest: {PROD_CPU}",
        f"+    digest: {STAGING_CPU}",
        f"-    digest: {PROD_GPU}",
        f"+    digest: {STAGING_GPU}",
    ]
    spec_sha = hashlib.sha256(before).hexdigest()
    assert _changed(result.diff, "pipelines/environments/production.yaml") == [
        f"-  cpu: {REGISTRY}/alphafactory-cpu@{PROD_CPU}",
        f"-  gpu: {REGISTRY}/alphafactory-gpu@{PROD_GPU}",
        f"+  cpu: {REGISTRY}/alphafactory-cpu@{STAGING_CPU}",
        f"+  gpu: {REGISTRY}/alphafactory-gpu@{STAGING_GPU}",
        "+  promoted_from: staging",
        f"+  source_spec_sha256: {spec_sha}",
    ]
    # the files on disk are the edited ones, and the production golden spec is fresh again
    overlay = (repo / "manifests/overlays/production/kustomization.yaml").read_text()
    assert STAGING_CPU in overlay and PROD_CPU not in overlay
    from alphafactory.config import load_environment

    production = load_environment(str(repo / "pipelines/environments/production.yaml"))
    assert production.images.cpu == f"{REGISTRY}/alphafactory-cpu@{STAGING_CPU}"
    assert production.promotion.source_spec_sha256 == spec_sha
    spec = (repo / "pipelines/compiled/production.yaml").read_text()
    assert spec == compiled_text(production)
    assert f"image: {REGISTRY}/alphafactory-gpu@{STAGING_GPU}" in spec
    assert (repo / "pipelines/compiled/staging.yaml").read_bytes() == before

    again = promote(repo, "staging", "production", tracking_uri=registry.tracking_uri)
    assert again.diff == ""  # idempotent


def test_dry_run_writes_nothing(repo: Path, registry: ModelRegistry) -> None:
    paths = [
        "manifests/overlays/production/kustomization.yaml",
        "pipelines/environments/production.yaml",
        "pipelines/compiled/production.yaml",
    ]
    before = {p: (repo / p).read_text() for p in paths}
    result = promote(repo, "staging", "production", tracking_uri=registry.tracking_uri,
                     dry_run=True)  # fmt: skip
    assert sorted(result.files) == sorted(paths)
    assert f"+    digest: {STAGING_CPU}" in result.diff
    assert {p: (repo / p).read_text() for p in paths} == before


def test_refuses_a_stale_source_spec(repo: Path, registry: ModelRegistry) -> None:
    spec = repo / "pipelines/compiled/staging.yaml"
    spec.write_text(spec.read_text().replace("cpuLimit: 8.0", "cpuLimit: 4.0", 1))
    with pytest.raises(ConfigError) as error:
        promote(repo, "staging", "production", tracking_uri=registry.tracking_uri)
    assert str(error.value) == (
        "refusing to promote 'staging': pipelines/compiled/staging.yaml is missing or stale; "
        "run `alphafactory compile --env staging`, commit, and let it run"
    )


def test_refuses_a_champion_below_the_minimum_grade(repo: Path, registry: ModelRegistry) -> None:
    name = registered_model_name("BTC_w5_high")
    registry.set_alias(name, 2, "champion")
    try:
        with pytest.raises(ConfigError) as error:
            promote(repo, "staging", "production", tracking_uri=registry.tracking_uri)
    finally:
        registry.set_alias(name, 1, "champion")
    assert str(error.value) == (
        f"refusing to promote 'staging': champions below promotion.min_grade B: {name}/2 (grade C)"
    )


def _refusal_of_an_s_champion(
    repo: Path, registry: ModelRegistry, tmp_path: Path, major: int, tags: dict[str, str]
) -> tuple[str, str]:
    """(model id, promote's refusal) with ETH_w10_low's champion alias on a new version
    graded S and passing every backtest gate, tagged `tags`; the alias is put back after."""
    name = registered_model_name("ETH_w10_low")
    model = registry.register(
        name,
        _tiny_model(tmp_path / f"v{major}.txt", 7),
        model_type="lightgbm",
        metrics={"ap": 0.9, **PASSING_BACKTEST},
        params={"num_leaves": 4},
        lineage=Lineage(data_hash="d" * 64, feature_list=("f0", "f1", "f2", "f3")),
        grade="S",
        version=SemVer(major, 0, 0),
        symbol="ETH",
        group="ETH_w10_low",
        extra_tags=tags,
    )
    registry.set_alias(name, model.version, "champion")
    try:
        with pytest.raises(ConfigError) as error:
            promote(repo, "staging", "production", tracking_uri=registry.tracking_uri)
    finally:
        registry.set_alias(name, 1, "champion")
    return model.model_id, str(error.value)


def test_refuses_a_champion_without_skill(
    repo: Path, registry: ModelRegistry, tmp_path: Path
) -> None:
    model_id, refusal = _refusal_of_an_s_champion(repo, registry, tmp_path, 2, {"skill": "no"})
    assert refusal == (
        "refusing to promote 'staging': champions without significant skill on their test "
        f"period: {model_id}; retrain them until they pass the skill test, or remove "
        "their champion alias"
    )


def test_refuses_a_champion_trained_on_fallback_bars(
    repo: Path, registry: ModelRegistry, tmp_path: Path
) -> None:
    """Skilled, graded S and passing every backtest gate, but trained on synthetic stand-in
    bars after a failed fetch (`data.fallback: synthetic`): not promotable."""
    from alphafactory.data.sources import BarsOrigin, write_bars_origin
    from alphafactory.layout import RunLayout
    from alphafactory.stages.publish import origin_tags

    layout = RunLayout(str(tmp_path / "run"))
    assert origin_tags(layout) == {}  # a run prepared before origins were recorded
    origin = BarsOrigin("exchange", "exchange binance BTC/USDT (1h)", fallback_error="timeout")
    write_bars_origin(layout, origin)
    tags = origin_tags(layout)
    assert tags == {"data_source": "synthetic (fallback after: timeout)", "data_fallback": "true"}
    model_id, refusal = _refusal_of_an_s_champion(
        repo, registry, tmp_path, 3, {"skill": "yes", **tags}
    )
    assert refusal == (
        "refusing to promote 'staging': champions trained on synthetic fallback bars, not the "
        f"configured data: {model_id} (synthetic (fallback after: timeout)); fix the "
        "data source and retrain"
    )


def test_refuses_without_champions(repo: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(ConfigError, match=r"no champion model in the registry at sqlite:///"):
        promote(repo, "staging", "production", tracking_uri=uri)


def test_refuses_when_overlay_and_environment_disagree(repo: Path, registry: ModelRegistry) -> None:
    overlay = repo / "manifests/overlays/staging/kustomization.yaml"
    overlay.write_text(overlay.read_text().replace(STAGING_GPU, "sha256:" + "0" * 64))
    with pytest.raises(ConfigError, match=r"images.gpu .* differs from manifests/overlays/staging"):
        promote(repo, "staging", "production", tracking_uri=registry.tracking_uri)


def test_refuses_environments_without_overlay(repo: Path, registry: ModelRegistry) -> None:
    with pytest.raises(ConfigError, match="'integration-test' has no promotion.overlay"):
        promote(repo, "staging", "integration-test", tracking_uri=registry.tracking_uri)
    with pytest.raises(ConfigError, match="same environment"):
        promote(repo, "staging", "staging")

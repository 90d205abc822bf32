"""The checksum chain from fit to registry: the cache manifest (metadata included), the run
folder's model files and the registry's artifacts are verified where they are consumed, and
the cache key follows the code and the model libraries."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from tiny_run import TinyRuns, clone_runs
from typer.testing import CliRunner

import alphafactory
from alphafactory.cli import app
from alphafactory.errors import ModelError
from alphafactory.layout import RunLayout
from alphafactory.registry import ModelCache, ModelRegistry, sha256_file
from alphafactory.registry.cache import (
    MANIFEST_NAME,
    code_version,
    library_versions,
    manifest_digest,
    source_hash,
)
from alphafactory.stages import run_infer, run_train_shard


@pytest.fixture
def runs(tiny_runs: TinyRuns, tmp_path: Path) -> TinyRuns:
    return clone_runs(tiny_runs, tmp_path)


def _versions(registry: ModelRegistry) -> list[str]:
    return sorted(model.model_id for model in registry.list_models())


def _second_run(runs: TinyRuns) -> str:
    """run-2: a copy of run-1's prepare/screen/tune outputs, to train and infer again."""
    second = runs.runs_dir / "run-2"
    shutil.copytree(runs.run_dir, second)
    for stage in ("train", "infer"):
        shutil.rmtree(second / stage)
    return str(second)


def test_tampered_cache_manifest_is_refused_and_registers_nothing(runs: TinyRuns) -> None:
    """The probe: the cached model edited, its digests in manifest.json updated and its
    average precision set to 0.99. The next run's cache hit refuses it."""
    registry = ModelRegistry(root=runs.runs_dir / "registry")
    before = _versions(registry)
    entry = ModelCache(runs.runs_dir / "cache").list(symbol="BTC")[0]
    model_file = entry.path / "model.zip"
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    manifest_path = entry.path.parent / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["model.zip"] = sha256_file(model_file)
    manifest["metadata"]["sha256"] = sha256_file(model_file)
    manifest["metadata"]["average_precision"] = 0.99
    manifest_path.write_text(json.dumps(manifest))
    run_dir = _second_run(runs)
    with pytest.raises(ModelError) as raised:
        for shard in range(len(runs.plan["shards"])):
            run_train_shard(runs.config, run_dir, shard)
    message = str(raised.value)
    assert message.startswith(f"cache manifest {manifest_path} has digest ")
    assert f"but {manifest['digest'][:12]}… was recorded: the entry was edited" in message
    assert "\n" not in message
    assert _versions(registry) == before
    assert not Path(RunLayout(run_dir).path("infer", "registry.json")).exists()


def test_manifest_edited_with_its_digest_recomputed_is_still_refused(runs: TinyRuns) -> None:
    """Editing only the model file's digest in the files list (and the manifest digest) leaves
    the metadata's model sha256 behind: the two must agree."""
    entry = ModelCache(runs.runs_dir / "cache").list(symbol="BTC")[0]
    model_file = entry.path / "model.zip"
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    manifest_path = entry.path.parent / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["model.zip"] = sha256_file(model_file)
    manifest["digest"] = manifest_digest(manifest)
    manifest_path.write_text(json.dumps(manifest))
    run_dir = _second_run(runs)
    with pytest.raises(ModelError, match=r"its metadata records model sha256 .* was edited"):
        for shard in range(len(runs.plan["shards"])):
            run_train_shard(runs.config, run_dir, shard)


def test_tampered_run_folder_model_is_refused_by_infer(runs: TinyRuns) -> None:
    registry = ModelRegistry(root=runs.runs_dir / "registry")
    before = _versions(registry)
    layout = RunLayout(str(runs.run_dir))
    target = Path(layout.model("BTC_w10_low"))
    target.write_bytes(target.read_bytes() + b"\n")
    with pytest.raises(ModelError, match=r"BTC_w10_low\.zip has sha256 .* was recorded"):
        run_infer(runs.config, str(runs.run_dir))
    assert _versions(registry) == before


def test_missing_run_folder_model_is_one_line(runs: TinyRuns) -> None:
    layout = RunLayout(str(runs.run_dir))
    target = Path(layout.model("ETH_w3_high"))
    target.unlink()
    with pytest.raises(ModelError) as raised:
        run_infer(runs.config, str(runs.run_dir))
    assert str(raised.value) == f"model file {target} is missing: rerun the train stage"


def _delete_champion_artifact(runs: TinyRuns) -> str:
    registry = ModelRegistry(root=runs.runs_dir / "registry")
    champion = registry.champion("alphafactory.BTC_w10_low")
    assert champion is not None
    stored = Path(urlparse(registry.info(champion.model_id).source).path) / champion.artifact_file
    stored.unlink()
    return champion.model_id


def test_deleted_registry_artifact_is_one_line_in_infer_live(
    runs: TinyRuns, tmp_path: Path
) -> None:
    model_id = _delete_champion_artifact(runs)
    env = runs.write_env(tmp_path)
    result = CliRunner().invoke(app, ["infer", "--live", "--env", str(env)], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: model {model_id}: its file cannot be downloaded")
    assert lines[0].endswith("the artifact is missing: re-register it with `alphafactory run`")


def test_deleted_registry_artifact_is_one_line_in_benchmark(runs: TinyRuns, tmp_path: Path) -> None:
    model_id = _delete_champion_artifact(runs)
    env = runs.write_env(tmp_path)
    command = ["models", "benchmark", runs.data_uri, "--models", model_id, "--env", str(env)]
    result = CliRunner().invoke(app, command, env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"error: model {model_id}: its file cannot be downloaded" in result.output


def test_source_hash_changes_with_a_source_file(tmp_path: Path) -> None:
    package = tmp_path / "alphafactory"
    shutil.copytree(Path(alphafactory.__file__).parent, package)
    original = source_hash(package)
    assert original == source_hash(Path(alphafactory.__file__).parent)
    fit_code = package / "stages" / "train.py"
    fit_code.write_text(fit_code.read_text() + "\n# a change to the fit code\n")
    changed = source_hash(package)
    assert changed != original
    (package / "README.txt").write_text("not source")  # only .py files count
    assert source_hash(package) == changed


def test_cache_key_follows_source_hash_and_library_versions(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    current = code_version()
    assert current["package"] == alphafactory.__version__
    # computed once per process (the tree may be edited while tests run): the same object
    assert code_version() is current and len(current["source"]) == 64
    assert current["libraries"]["lightgbm"] == importlib.metadata.version("lightgbm")
    assert current["libraries"]["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert set(current["libraries"]) == {"lightgbm", "xgboost", "ngboost", "scikit-learn", "torch"}
    assert library_versions(("no-such-distribution-xyz",)) == {"no-such-distribution-xyz": None}
    key = cache.entry_key({"code_version": current}, "BTC")
    edited = {**current, "source": "0" * 64}
    upgraded = {**current, "libraries": {**current["libraries"], "lightgbm": "0.0.1"}}
    assert cache.entry_key({"code_version": edited}, "BTC") != key
    assert cache.entry_key({"code_version": upgraded}, "BTC") != key


def test_train_stage_keys_its_cache_entries_by_code_version(tiny_runs: TinyRuns) -> None:
    entries = ModelCache(tiny_runs.runs_dir / "cache").list()
    assert len(entries) == len(tiny_runs.plan["groups"])
    for entry in entries:
        manifest = json.loads((entry.path.parent / MANIFEST_NAME).read_text())
        assert manifest["key_parts"]["code_version"] == code_version()

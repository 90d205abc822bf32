"""minio:// run folders on a real S3-compatible HTTP server (moto's server mode).

KFP on kind keeps artifacts in MinIO and the local-integration environment puts its run
folders there (`minio://mlpipeline/alphafactory`). MinIO's own binary cannot be downloaded
on this machine, so these tests talk to moto's S3 server over HTTP instead: the same s3fs /
botocore client code, the same wire protocol, endpoint and credentials from the same
environment variables that the compiled spec sets in each pod.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import polars as pl
import pytest
from s3fs import S3FileSystem
from tiny_run import run_stages, tiny_bars, tiny_settings

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.bars import load_bars, write_bars
from alphafactory.errors import ConfigError
from alphafactory.objectstore import MinioFileSystem

BUCKET = "mlpipeline"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture()
def store(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3FileSystem]:
    """A fresh bucket; the pod-like environment: endpoint and keys in AWS_* variables."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "minio")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "minio123")
    for variable in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    MinioFileSystem.clear_instance_cache()
    # an independent client, to check what really landed on the server
    raw = S3FileSystem(endpoint_url=s3_endpoint, key="minio", secret="minio123")
    raw.mkdir(BUCKET)
    yield raw
    raw.rm(BUCKET, recursive=True)
    MinioFileSystem.clear_instance_cache()


def test_minio_uris_resolve_to_s3fs_with_the_endpoint(
    store: S3FileSystem, s3_endpoint: str
) -> None:
    fs, path = fsspec.core.url_to_fs(f"minio://{BUCKET}/alphafactory/run-1/plan.json")
    assert isinstance(fs, MinioFileSystem)
    assert path == f"{BUCKET}/alphafactory/run-1/plan.json"
    assert fs.client_kwargs.get("endpoint_url", fs.endpoint_url) == s3_endpoint


def test_io_round_trip_lands_on_the_server(store: S3FileSystem) -> None:
    root = f"minio://{BUCKET}/alphafactory/run-1"
    io.write_json(io.join(root, "prepare", "plan.json"), {"shards": 3, "groups": ["a", "b"]})
    frame = pl.DataFrame({"x": np.arange(5, dtype=np.int64), "y": ["a", "b", "c", "d", "e"]})
    io.write_parquet(io.join(root, "prepare", "rows.parquet"), frame)

    assert io.read_json(io.join(root, "prepare", "plan.json")) == {
        "shards": 3,
        "groups": ["a", "b"],
    }
    assert io.read_parquet(io.join(root, "prepare", "rows.parquet")).equals(frame)
    assert io.exists(io.join(root, "prepare", "plan.json"))
    assert not io.exists(io.join(root, "prepare", "missing.json"))
    assert io.list_files(io.join(root, "prepare"), ".json") == [
        f"minio://{BUCKET}/alphafactory/run-1/prepare/plan.json"
    ]
    # the objects are on the server, and no temporary sibling is left behind
    assert sorted(store.ls(f"{BUCKET}/alphafactory/run-1/prepare")) == [
        f"{BUCKET}/alphafactory/run-1/prepare/plan.json",
        f"{BUCKET}/alphafactory/run-1/prepare/rows.parquet",
    ]
    stored = json.loads(store.cat(f"{BUCKET}/alphafactory/run-1/prepare/plan.json"))
    assert stored == {"groups": ["a", "b"], "shards": 3}


def test_bars_load_from_minio(store: S3FileSystem) -> None:
    bars = tiny_bars(200)
    write_bars(bars, f"minio://{BUCKET}/data/bars.parquet")
    loaded = load_bars(f"minio://{BUCKET}/data/bars.parquet")
    assert loaded.height == bars.height
    assert loaded["close"].to_list() == bars["close"].to_list()


def test_missing_endpoint_is_a_clear_error(
    store: S3FileSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    MinioFileSystem.clear_instance_cache()
    with pytest.raises(ConfigError, match="minio:// paths need the object store's endpoint"):
        io.exists(f"minio://{BUCKET}/anything")


def test_keys_from_a_shared_credentials_file(
    store: S3FileSystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live-inference CronJob gets its keys as a mounted AWS credentials file."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing"))
    MinioFileSystem.clear_instance_cache()
    with pytest.raises(Exception, match="credentials"):  # botocore: Unable to locate credentials
        io.write_json(f"minio://{BUCKET}/live/state.json", {"n": 1})

    keys = tmp_path / "credentials"
    keys.write_text("[default]\naws_access_key_id = minio\naws_secret_access_key = minio123\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(keys))
    MinioFileSystem.clear_instance_cache()
    io.write_json(f"minio://{BUCKET}/live/state.json", {"n": 1})
    assert json.loads(store.cat(f"{BUCKET}/live/state.json")) == {"n": 1}


@pytest.mark.slow
def test_every_stage_runs_on_a_minio_run_folder(
    store: S3FileSystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare → infer with data and run folder on the object store, as on a kind cluster."""
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder is relative to the cwd
    data_uri = f"minio://{BUCKET}/data/bars.parquet"
    write_bars(tiny_bars(), data_uri)
    settings = tiny_settings(data_uri, f"minio://{BUCKET}/alphafactory")
    settings["registry"] = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    settings["object_store"] = {"endpoint_url": store.endpoint_url}
    config = EnvironmentConfig.model_validate(settings)
    run_dir = f"minio://{BUCKET}/alphafactory/run-1"

    metrics = run_stages(config, run_dir)

    plan = io.read_json(io.join(run_dir, "prepare", "plan.json"))
    assert metrics["prepare"]["shards"] == len(plan["shards"]) == 2
    stored = set(store.find(f"{BUCKET}/alphafactory/run-1"))
    prefix = f"{BUCKET}/alphafactory/run-1/"
    assert prefix + "prepare/plan.json" in stored
    assert any(p.startswith(prefix + "tune/") for p in stored)
    assert any(p.startswith(prefix + "train/") for p in stored)
    assert not [p for p in stored if ".tmp-" in p]
    assert not list(Path.cwd().glob("run-1*"))  # nothing was written to the local disk instead
    assert metrics["infer"]["models"] == metrics["infer"]["models_registered"] == 8
    assert prefix + "infer/registry.json" in stored

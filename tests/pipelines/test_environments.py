"""Environment validation: digests outside local envs, runner-specific accelerators, pools."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from alphafactory.config import load_environment, validate_environment
from alphafactory.errors import ConfigError

ENV_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "environments"


def _raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ENV_DIR / f"{name}.yaml").read_text())
    return data


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        validate_environment(raw, source="env.yaml")
    return str(error.value)


@pytest.mark.parametrize(
    "name, runner",
    [
        ("local-dev", "local"),
        ("local-integration", "kfp"),
        ("central-dev", "vertex"),
        ("integration-test", "vertex"),
        ("staging", "vertex"),
        ("production", "kfp"),
    ],  # fmt: skip
)
def test_every_environment_validates(name: str, runner: str) -> None:
    config = load_environment(name, use_env_vars=False)
    assert config.runner == runner
    if config.scope == "cloud":
        assert config.pipeline_root.startswith("gs://")
        assert "@sha256:" in config.images.cpu and "@sha256:" in config.images.gpu
        assert config.tune.budget_core_seconds


def test_cloud_image_must_be_pinned_by_digest() -> None:
    raw = _raw("staging")
    raw["images"]["gpu"] = "europe-west4-docker.pkg.dev/p/alphafactory/alphafactory-gpu:1.2.3"
    assert _error(raw) == (
        "env.yaml: key 'images.gpu' = "
        "'europe-west4-docker.pkg.dev/p/alphafactory/alphafactory-gpu:1.2.3': "
        "a cloud environment must pin images by digest: <name>@sha256:<64 hex digits>"
    )


def test_local_environment_may_use_tags() -> None:
    assert load_environment("local-integration").images.cpu == "alphafactory-cpu:kind"


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda r: r.update(pipeline_root="runs"), "pipeline_root"),
        (lambda r: r["registry"].update(tracking_uri="sqlite:///x.db"), "registry.tracking_uri"),
        (
            lambda r: r["resources"]["tune"].update(accelerator_type="nvidia.com/gpu"),
            "resources.tune.accelerator_type",
        ),
        (lambda r: r["resources"]["tune"].update(node_pool="gpu"), "resources.tune.node_pool"),
        (lambda r: r.pop("vertex"), "vertex"),
        (lambda r: r["resources"]["train"].update(memory="32GB"), "resources.train.memory"),
        (lambda r: r["resources"]["train"].update(accelerator_count=0), "resources.train"),
        (lambda r: r["promotion"].update(min_grade="Z"), "promotion.min_grade"),
        (lambda r: r["vertex"].update(zone="x"), "vertex.zone"),
    ],  # fmt: skip
)
def test_vertex_errors_name_the_key(edit: Any, key: str) -> None:
    raw = _raw("staging")
    edit(raw)
    assert f"'{key}'" in _error(raw)


def test_kfp_accelerator_and_pool_checks() -> None:
    raw = _raw("production")
    raw["resources"]["train"]["accelerator_type"] = "NVIDIA_L4"
    assert "key 'resources.train.accelerator_type'" in _error(raw)
    raw = _raw("production")
    raw["resources"]["train"]["node_pool"] = "tpu"
    assert "key 'resources.train.node_pool' = 'tpu': not a key of node_pools (gpu)" in _error(raw)


def test_minio_root_needs_the_store_endpoint() -> None:
    raw = _raw("local-integration")
    raw["object_store"]["endpoint_url"] = ""
    assert _error(raw) == (
        "env.yaml: key 'object_store.endpoint_url' = '': a minio:// pipeline root needs "
        "the store's endpoint, e.g. http://minio-service.kubeflow:9000"
    )


def test_credentials_secret_only_on_kubernetes() -> None:
    raw = _raw("staging")
    raw["object_store"] = {"credentials_secret": "mlpipeline-minio-artifact"}
    assert "key 'object_store.credentials_secret'" in _error(raw)
    assert "only on runner 'kfp'" in _error(raw)


def test_object_store_endpoint_must_be_a_url() -> None:
    raw = _raw("local-integration")
    raw["object_store"]["endpoint_url"] = "minio-service:9000"
    assert "key 'object_store.endpoint_url'" in _error(raw)

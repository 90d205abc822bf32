"""helm/alphafactory renders per environment, lints strictly, validates, is hardened."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

# Only in the tools venv (make test-cluster); skipped, not failed, under the project venv.
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from .conftest import (  # noqa: E402
    CHART,
    DIGEST_RE,
    KUBE_VERSION,
    VALUES_FILES,
    helm_template,
    image_refs,
    pod_spec,
    run,
    tool,
)
from .hardening import assert_hardened  # noqa: E402

Charts = dict[str, list[dict[str, Any]]]
ENVIRONMENTS = {
    "values.yaml": "local-integration",
    "values-dev.yaml": "central-dev",
    "values-staging.yaml": "staging",
    "values-production.yaml": "production",
}


def find(objs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (kind, suffix)
    return found[0]


@pytest.mark.parametrize("values", VALUES_FILES)
def test_chart_lints_strictly(values: str) -> None:
    proc = run(
        [
            tool("helm"),
            "lint",
            str(CHART),
            "--strict",
            "--kube-version",
            f"v{KUBE_VERSION}",
            "-f",
            str(CHART / values),
        ]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("values", VALUES_FILES)
def test_chart_renders_valid_objects(charts: Charts, values: str) -> None:
    objs = charts[values]
    kinds = {o["kind"] for o in objs}
    expected = {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob", "NetworkPolicy"}
    assert expected <= kinds
    for obj in objs:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        assert obj["metadata"]["namespace"] == "alphafactory-test", obj["metadata"]["name"]


@pytest.mark.parametrize("values", VALUES_FILES)
def test_chart_pods_hardened_and_pinned(charts: Charts, values: str) -> None:
    pods = [o for o in charts[values] if pod_spec(o) is not None]
    assert len(pods) >= 2
    for obj in pods:
        assert_hardened(obj)
    for ref in image_refs(charts[values]):
        assert re.match(DIGEST_RE, ref), ref


@pytest.mark.parametrize("values", VALUES_FILES)
def test_chart_environment_and_commands(charts: Charts, values: str) -> None:
    objs = charts[values]
    env = ENVIRONMENTS[values]
    assert find(objs, "ConfigMap", "-env")["data"]["ALPHAFACTORY_ENV"] == env
    infer = pod_spec(find(objs, "CronJob", "-infer-live"))
    retrain = pod_spec(find(objs, "CronJob", "-retrain"))
    assert infer and retrain
    c = infer["containers"][0]
    assert c["command"] + c["args"] == ["alphafactory", "infer", "--live", "--env", env]
    c = retrain["containers"][0]
    assert c["command"] + c["args"] == ["alphafactory", "submit", "--env", env]


def test_chart_environments_differ(charts: Charts) -> None:
    def sig(objs: list[dict[str, Any]]) -> tuple[Any, ...]:
        sa = find(objs, "ServiceAccount", "alphafactory")
        return (tuple(sorted(image_refs(objs))), json.dumps(sa["metadata"].get("annotations")))

    envs = ["values-dev.yaml", "values-staging.yaml", "values-production.yaml"]
    sigs = [sig(charts[v]) for v in envs]
    assert len({s[0] for s in sigs}) == 3 and len({s[1] for s in sigs}) == 3
    for v in envs:
        sa = find(charts[v], "ServiceAccount", "alphafactory")
        assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
            ".iam.gserviceaccount.com"
        )


def test_production_gpu_and_external_db(charts: Charts) -> None:
    objs = charts["values-production.yaml"]
    infer = pod_spec(find(objs, "CronJob", "-infer-live"))
    assert infer is not None
    assert "alphafactory-gpu@sha256:" in infer["containers"][0]["image"]
    assert infer["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert infer["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert not [o for o in objs if o["kind"] == "StatefulSet"]
    mlflow = pod_spec(find(objs, "Deployment", "-mlflow"))
    assert mlflow is not None
    secret_vols = [v["secret"]["secretName"] for v in mlflow["volumes"] if "secret" in v]
    assert secret_vols == ["alphafactory-mlflow-db", "alphafactory-mlflow-auth"]
    assert not any("valueFrom" in e for e in mlflow["containers"][0].get("env", []))


def test_staging_bundled_postgresql(charts: Charts) -> None:
    objs = charts["values-staging.yaml"]
    sts = find(objs, "StatefulSet", "-postgresql")
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "20Gi"
    find(objs, "Service", "-postgresql")
    find(objs, "Service", "-mlflow")
    cm = find(objs, "ConfigMap", "-env")
    assert cm["data"]["MLFLOW_TRACKING_URI"].startswith("http://af-alphafactory-mlflow.")


def test_default_values_disable_mlflow(charts: Charts) -> None:
    kinds = [o["kind"] for o in charts["values.yaml"]]
    assert "Deployment" not in kinds and "StatefulSet" not in kinds


def _bad_values(tmp_path: Path, values: dict[str, Any]) -> str:
    proc = helm_template(_write(tmp_path, values))
    assert proc.returncode != 0, "helm accepted invalid values"
    return proc.stderr


def _write(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "bad-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_schema_rejects_wrong_type(tmp_path: Path) -> None:
    err = _bad_values(tmp_path, {"mlflow": {"enabled": "yes"}})
    assert "values don't meet the specifications of the schema" in err
    assert "/mlflow/enabled" in err
    assert "boolean" in err


def test_schema_rejects_unknown_key(tmp_path: Path) -> None:
    err = _bad_values(tmp_path, {"inferLive": {"replicas": 3}})
    assert "/inferLive" in err
    assert "replicas" in err


def test_schema_rejects_tag_instead_of_digest(tmp_path: Path) -> None:
    err = _bad_values(tmp_path, {"image": {"digest": "latest"}})
    assert "/image/digest" in err


def test_schema_rejects_unknown_environment(tmp_path: Path) -> None:
    err = _bad_values(tmp_path, {"environment": "prod"})
    assert "/environment" in err


def test_schema_requires_external_secret_name(tmp_path: Path) -> None:
    err = _bad_values(tmp_path, {"mlflow": {"enabled": True, "backend": {"type": "external"}}})
    assert "/mlflow/backend" in err


def test_notes_render() -> None:
    # `helm template` does not render NOTES.txt; a client-side dry-run install does.
    proc = run(
        [
            tool("helm"),
            "install",
            "af",
            str(CHART),
            "--dry-run=client",
            "--namespace",
            "ns",
            "-f",
            str(CHART / "values-staging.yaml"),
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert "alphafactory infer --live --env staging" in proc.stdout
    assert "MLflow tracking server" in proc.stdout


@pytest.mark.parametrize("values", VALUES_FILES)
def test_chart_object_store_follows_the_run_root(charts: Charts, values: str) -> None:
    """A minio:// root brings the store endpoint and its mounted keys file; GCS neither."""
    objs = charts[values]
    config = find(objs, "ConfigMap", "-env")["data"]
    infer = pod_spec(find(objs, "CronJob", "-infer-live"))
    volumes = {v["name"]: v for v in infer["volumes"]}
    mounts = {m["name"]: m for m in infer["containers"][0]["volumeMounts"]}
    if config["ALPHAFACTORY_PIPELINE_ROOT"].startswith("minio://"):
        assert config["AWS_ENDPOINT_URL"] == "http://minio-service.kubeflow:9000"
        secret = volumes["object-store-keys"]["secret"]
        assert secret == {"secretName": "alphafactory-object-store", "optional": True}
        mount = mounts["object-store-keys"]
        assert config["AWS_SHARED_CREDENTIALS_FILE"] == mount["mountPath"] + "/credentials"
    else:
        assert config["ALPHAFACTORY_PIPELINE_ROOT"].startswith("gs://")
        assert "object-store-keys" not in volumes and "object-store-keys" not in mounts

"""kustomize overlays render, validate strictly, differ per environment, are hardened."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

# Only in the tools venv (make test-cluster); skipped, not failed, under the project venv.
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from .conftest import (  # noqa: E402
    DIGEST_RE,
    KUBE_VERSION,
    MANIFESTS,
    OVERLAYS,
    image_refs,
    pod_spec,
)
from .hardening import assert_hardened  # noqa: E402

Objs = dict[str, list[dict[str, Any]]]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, name_part: str = "") -> dict[str, Any]:
    found = [o for o in by_kind(objs, kind) if name_part in o["metadata"]["name"]]
    assert len(found) == 1, f"{kind} {name_part}: {[o['metadata']['name'] for o in found]}"
    return found[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_strictly(overlays: Objs, overlay: str) -> None:
    objs = overlays[overlay]
    kinds = {o["kind"] for o in objs}
    assert {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "CronJob",
    } <= kinds
    for obj in objs:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_strict_validation_catches_a_typo(overlays: Objs) -> None:
    cron = yaml.safe_load(yaml.safe_dump(one(overlays["dev"], "CronJob", "infer-live")))
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cron, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_namespace_and_images(overlays: Objs, overlay: str) -> None:
    objs = overlays[overlay]
    ns = f"alphafactory-{overlay}"
    assert one(objs, "Namespace")["metadata"]["name"] == ns
    for obj in objs:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == ns, obj["metadata"]["name"]
    refs = image_refs(objs)
    assert refs
    for ref in refs:
        assert re.match(DIGEST_RE, ref), ref


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_pods_are_hardened(overlays: Objs, overlay: str) -> None:
    pods = [o for o in overlays[overlay] if pod_spec(o) is not None]
    assert len(pods) == 2
    for obj in pods:
        assert_hardened(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_account_has_workload_identity(overlays: Objs, overlay: str) -> None:
    sa = one(overlays[overlay], "ServiceAccount")
    gsa = sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert re.fullmatch(r"[a-z][a-z0-9-]+@[A-Za-z0-9_-]+\.iam\.gserviceaccount\.com", gsa)
    binding = one(overlays[overlay], "RoleBinding")
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"]


def test_overlays_differ_where_they_must(overlays: Objs) -> None:
    def summary(objs: list[dict[str, Any]]) -> dict[str, Any]:
        infer = pod_spec(one(objs, "CronJob", "infer-live"))
        assert infer is not None
        return {
            "namespace": one(objs, "Namespace")["metadata"]["name"],
            "images": tuple(sorted(image_refs(objs))),
            "gsa": one(objs, "ServiceAccount")["metadata"]["annotations"],
            "quota": one(objs, "ResourceQuota")["spec"]["hard"],
            "resources": infer["containers"][0]["resources"],
            "env": one(objs, "ConfigMap")["data"]["ALPHAFACTORY_ENV"],
        }

    summaries = {name: summary(overlays[name]) for name in OVERLAYS}
    for key in ("namespace", "images", "gsa", "quota", "resources", "env"):
        values = [repr(s[key]) for s in summaries.values()]
        assert len(set(values)) == len(OVERLAYS), f"overlays share {key}"
    digests = [set(ref.split("@")[1] for ref in s["images"]) for s in summaries.values()]
    assert not (digests[0] & digests[1] or digests[1] & digests[2] or digests[0] & digests[2])
    assert summaries["production"]["env"] == "production"
    assert summaries["staging"]["env"] == "staging"


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_gpu_pool_settings(overlays: Objs, overlay: str) -> None:
    spec = pod_spec(one(overlays[overlay], "CronJob", "infer-live"))
    assert spec is not None
    assert spec["nodeSelector"]["cloud.google.com/gke-accelerator"]
    gpu_toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert gpu_toleration in spec["tolerations"]
    c = spec["containers"][0]
    assert "alphafactory-gpu@sha256:" in c["image"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    quota = one(overlays[overlay], "ResourceQuota")["spec"]["hard"]
    assert int(quota["requests.nvidia.com/gpu"]) >= 1


def test_dev_targets_the_kind_fake_gpu_pool(overlays: Objs) -> None:
    kind = yaml.safe_load((MANIFESTS / "kind" / "cluster.yaml").read_text())
    worker_labels = [n for n in kind["nodes"] if n["role"] == "worker"][0]["labels"]
    spec = pod_spec(one(overlays["dev"], "CronJob", "infer-live"))
    assert spec is not None
    for key, value in spec["nodeSelector"].items():
        assert worker_labels.get(key) == value
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]


def test_commands(overlays: Objs) -> None:
    for overlay in OVERLAYS:
        infer = pod_spec(one(overlays[overlay], "CronJob", "infer-live"))
        retrain = pod_spec(one(overlays[overlay], "CronJob", "retrain"))
        assert infer and retrain
        assert infer["containers"][0]["command"] + infer["containers"][0]["args"] == [
            "alphafactory",
            "infer",
            "--live",
            "--env",
            "$(ALPHAFACTORY_ENV)",
        ]
        assert retrain["containers"][0]["command"] + retrain["containers"][0]["args"] == [
            "alphafactory",
            "submit",
            "--env",
            "$(ALPHAFACTORY_ENV)",
        ]


def test_live_inference_mounts_optional_object_store_keys(overlays: Objs) -> None:
    """Keys for a minio:// root: an optional Secret mounted as an AWS credentials file."""
    for overlay in OVERLAYS:
        spec = pod_spec(one(overlays[overlay], "CronJob", "infer-live"))
        secret = {"secretName": "alphafactory-object-store", "optional": True}
        assert {"name": "object-store-keys", "secret": secret} in spec["volumes"]
        mounts = spec["containers"][0]["volumeMounts"]
        mount = next(m for m in mounts if m["name"] == "object-store-keys")
        config = one(overlays[overlay], "ConfigMap", "alphafactory-env")["data"]
        assert config["AWS_SHARED_CREDENTIALS_FILE"] == mount["mountPath"] + "/credentials"
        assert mount["readOnly"] is True
        retrain = pod_spec(one(overlays[overlay], "CronJob", "retrain"))
        assert "object-store-keys" not in [v["name"] for v in retrain["volumes"]]


def test_network_policy_denies_ingress(overlays: Objs) -> None:
    for overlay in OVERLAYS:
        np_ = one(overlays[overlay], "NetworkPolicy")
        assert set(np_["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        assert not np_["spec"].get("ingress")


def test_argocd_applications() -> None:
    apps = {}
    for path in sorted((MANIFESTS / "argocd").glob("alphafactory-*.yaml")):
        app = yaml.safe_load(path.read_text())
        assert app["kind"] == "Application" and app["apiVersion"] == "argoproj.io/v1alpha1"
        apps[app["metadata"]["name"]] = app
    assert set(apps) == {f"alphafactory-{o}" for o in OVERLAYS}
    for overlay in OVERLAYS:
        app = apps[f"alphafactory-{overlay}"]
        src = app["spec"]["source"]
        assert src["path"] == f"manifests/overlays/{overlay}"
        assert (MANIFESTS.parent / src["path"] / "kustomization.yaml").is_file()
        assert "REPLACE_ME" in src["repoURL"]
        assert app["spec"]["destination"]["namespace"] == f"alphafactory-{overlay}"
    assert "automated" not in apps["alphafactory-production"]["spec"]["syncPolicy"]


def test_kind_config() -> None:
    cfg = yaml.safe_load((MANIFESTS / "kind" / "cluster.yaml").read_text())
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = sorted(n["role"] for n in cfg["nodes"])
    assert roles == ["control-plane", "worker"]
    worker = [n for n in cfg["nodes"] if n["role"] == "worker"][0]
    assert worker["labels"]["alphafactory.io/pool"] == "gpu"
    for node in cfg["nodes"]:
        assert re.fullmatch(r"kindest/node:v1\.30\.\d+@sha256:[a-f0-9]{64}", node["image"])

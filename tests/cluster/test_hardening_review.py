"""What a security review of the cluster artefacts flags (issue 19): secrets by name, egress
allow-listed per workload, MLflow authenticated with its own identity, no password in argv,
an Argo CD project per environment, a database secret that no render regenerates, and a GPU
image whose Python wheels are hash-checked."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .conftest import (
    CHART,
    IMAGES,
    MANIFESTS,
    OVERLAYS,
    REPO,
    VALUES_FILES,
    containers,
    helm_template,
    pod_spec,
)

Objs = list[dict[str, Any]]
GOOGLE_API_CIDRS = {"199.36.153.8/30", "199.36.153.4/30"}
METADATA_SERVER = {("169.254.169.254/32", 80), ("169.254.169.252/32", 988)}
MLFLOW_VALUES = ("values-dev.yaml", "values-staging.yaml", "values-production.yaml")


def of_kind(objs: Objs, kind: str) -> Objs:
    return [o for o in objs if o["kind"] == kind]


def named(objs: Objs, kind: str, suffix: str) -> dict[str, Any]:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (kind, suffix, [o["metadata"]["name"] for o in found])
    return found[0]


def all_renders(overlays: dict[str, Objs], charts: dict[str, Objs]) -> dict[str, Objs]:
    return {**{f"overlay {k}": v for k, v in overlays.items()}, **charts}


def ip_ports(policy: dict[str, Any]) -> set[tuple[str, int]]:
    """(cidr, port) pairs that a policy's ipBlock egress rules allow."""
    pairs = set()
    for rule in policy["spec"].get("egress", []):
        for peer in rule.get("to", []):
            if "ipBlock" in peer:
                pairs |= {(peer["ipBlock"]["cidr"], p["port"]) for p in rule.get("ports", [])}
    return pairs


def staging_registry_db() -> tuple[str, int]:
    env = yaml.safe_load((REPO / "pipelines" / "environments" / "staging.yaml").read_text())
    uri = urlsplit(env["registry"]["tracking_uri"])
    assert uri.hostname and uri.port, uri
    return f"{uri.hostname}/32", uri.port


# --- RBAC ---------------------------------------------------------------------------------


def test_secret_rules_name_their_secrets(
    overlays: dict[str, Objs], charts: dict[str, Objs]
) -> None:
    for where, objs in all_renders(overlays, charts).items():
        rules = [r for role in of_kind(objs, "Role") for r in role["rules"]]
        secret_rules = [r for r in rules if "secrets" in r["resources"]]
        assert secret_rules, where
        for rule in secret_rules:
            assert rule["verbs"] == ["get"], where
            assert rule.get("resourceNames"), f"{where}: secrets rule without resourceNames"
            assert "postgresql" not in " ".join(rule["resourceNames"]), where
    names = [
        r["resourceNames"]
        for r in of_kind(overlays["dev"], "Role")[0]["rules"]
        if "secrets" in r["resources"]
    ]
    assert names == [["mlpipeline-minio-artifact", "alphafactory-object-store"]]


# --- NetworkPolicy ------------------------------------------------------------------------


def test_no_egress_rule_goes_anywhere(overlays: dict[str, Objs], charts: dict[str, Objs]) -> None:
    for where, objs in all_renders(overlays, charts).items():
        policies = of_kind(objs, "NetworkPolicy")
        assert policies, where
        for policy in policies:
            name = f"{where}: {policy['metadata']['name']}"
            assert "Egress" in policy["spec"]["policyTypes"], name
            for rule in policy["spec"].get("egress", []):
                assert rule.get("to"), f"{name}: egress rule without `to` {rule}"
                for peer in rule["to"]:
                    assert peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0", name
                    assert peer != {}, name


def _job_policies(overlays: dict[str, Objs], charts: dict[str, Objs]) -> dict[str, dict[str, Any]]:
    found = {f"overlay {o}": named(overlays[o], "NetworkPolicy", "-pipeline") for o in OVERLAYS}
    found |= {v: named(charts[v], "NetworkPolicy", "-jobs") for v in VALUES_FILES}
    return found


def test_jobs_reach_google_apis_and_the_metadata_server(
    overlays: dict[str, Objs], charts: dict[str, Objs]
) -> None:
    for where, policy in _job_policies(overlays, charts).items():
        pairs = ip_ports(policy)
        assert pairs >= METADATA_SERVER, where
        assert {(cidr, 443) for cidr in GOOGLE_API_CIDRS} <= pairs, where
        assert {port for cidr, port in pairs if cidr in GOOGLE_API_CIDRS} == {443}, where


def test_staging_jobs_reach_the_registry_database(
    overlays: dict[str, Objs], charts: dict[str, Objs]
) -> None:
    db = staging_registry_db()
    assert db == ("10.20.0.5/32", 5432)
    policies = _job_policies(overlays, charts)
    assert db in ip_ports(policies["overlay staging"])
    assert db in ip_ports(policies["values-staging.yaml"])
    assert db not in ip_ports(policies["overlay production"])


# pipelines/platform.py POD_LABELS (this suite runs in .venv-tools, without the package;
# tests/pipelines/test_registry_access.py checks the two agree)
PIPELINE_POD_LABELS = {
    "app.kubernetes.io/name": "alphafactory",
    "app.kubernetes.io/component": "pipeline",
}


@pytest.mark.parametrize("values", MLFLOW_VALUES)
def test_mlflow_and_postgresql_traffic_is_fenced(charts: dict[str, Objs], values: str) -> None:
    objs = charts[values]
    mlflow = named(objs, "NetworkPolicy", "-mlflow")["spec"]
    [ingress] = mlflow["ingress"]
    [jobs, pipeline] = ingress["from"]
    assert set(jobs) == {"podSelector"}, "the jobs' peer must not open other namespaces"
    assert jobs["podSelector"]["matchExpressions"] == [
        {
            "key": "app.kubernetes.io/component",
            "operator": "In",
            "values": ["infer-live", "retrain"],
        }
    ]
    # from `kubeflow`, only the pipeline's own task pods (the labels platform.py sets)
    assert pipeline == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}},
        "podSelector": {"matchLabels": PIPELINE_POD_LABELS},
    }
    egress_pairs = ip_ports({"spec": mlflow})
    assert egress_pairs >= {(c, 443) for c in GOOGLE_API_CIDRS}
    bundled = any(o["kind"] == "StatefulSet" for o in objs)
    peers = [p for r in mlflow["egress"] for p in r["to"] if "podSelector" in p]
    components = [p["podSelector"]["matchLabels"].get("app.kubernetes.io/component") for p in peers]
    assert components == [None, "postgresql"] if bundled else [None]  # None: kube DNS
    if bundled:
        pg = named(objs, "NetworkPolicy", "-postgresql")["spec"]
        assert pg["policyTypes"] == ["Ingress", "Egress"] and not pg.get("egress")
        [pg_in] = pg["ingress"]
        assert pg_in["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
            "mlflow"
        )
    else:
        assert ("10.30.0.0/24", 5432) in egress_pairs


# --- MLflow: authentication, identity, no password in argv ---------------------------------


def _mlflow_container(objs: Objs) -> dict[str, Any]:
    spec = pod_spec(named(objs, "Deployment", "-mlflow"))
    assert spec is not None
    return spec["containers"][0]


@pytest.mark.parametrize("values", MLFLOW_VALUES)
def test_mlflow_requires_basic_auth(charts: dict[str, Objs], values: str) -> None:
    script = _mlflow_container(charts[values])["args"][0]
    assert "exec mlflow server --app-name basic-auth " in script
    ini = named(charts[values], "ConfigMap", "-mlflow-auth")["data"]["basic_auth.ini"]
    assert "default_permission = NO_PERMISSIONS" in ini
    assert "admin_password" not in ini
    jobs = [pod_spec(o) for o in of_kind(charts[values], "CronJob")]
    for spec in jobs:
        assert spec is not None
        creds = next(v for v in spec["volumes"] if v["name"] == "mlflow-credentials")
        assert creds["secret"]["secretName"] == "alphafactory-mlflow-auth"
        assert creds["secret"]["items"] == [{"key": "credentials", "path": "credentials"}]


def test_mlflow_without_auth_secret_does_not_render(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "values-staging.yaml").read_text())
    values["mlflow"]["auth"]["existingSecret"] = ""
    path = tmp_path / "no-auth.yaml"
    path.write_text(yaml.safe_dump(values))
    proc = helm_template(path)
    assert proc.returncode != 0
    assert "mlflow.auth.existingSecret is required when mlflow.enabled" in proc.stderr


PASSWORD_IN_URI = re.compile(r"://[^/@:\s]+:[^@\s]+@")


@pytest.mark.parametrize("values", VALUES_FILES)
def test_no_password_in_any_argv(charts: dict[str, Objs], values: str) -> None:
    for obj in charts[values]:
        spec = pod_spec(obj)
        for c in containers(spec) if spec else []:
            argv = " ".join(c.get("command", []) + c.get("args", []))
            assert not PASSWORD_IN_URI.search(argv), argv
            assert "--backend-store-uri" not in argv, f"{c['name']}: URI in argv"
            assert not re.search(r"\$\([A-Z_]*(PASSWORD|URI)[A-Z_]*\)", argv), argv
            for env in c.get("env", []):
                assert not PASSWORD_IN_URI.search(env.get("value", "")), env


@pytest.mark.parametrize("values", ["values-staging.yaml", "values-production.yaml"])
def test_mlflow_wrapper_passes_secrets_by_environment(
    charts: dict[str, Objs], values: str, tmp_path: Path
) -> None:
    """Run the rendered wrapper with a stub `mlflow` that records its argv and environment."""
    container = _mlflow_container(charts[values])
    secrets = {"admin-password": "AdminS3cret", "password": "DbS3cret", "flask-secret-key": "K3y"}
    secrets["uri"] = "postgresql://mlflow:DbS3cret@10.30.0.7:5432/mlflow"
    script = container["args"][0]
    for mount in ("/etc/mlflow-auth", "/etc/mlflow-db"):
        (tmp_path / mount.strip("/")).mkdir(parents=True)
        for key, value in secrets.items():
            (tmp_path / mount.strip("/") / key).write_text(value)
        script = script.replace(mount + "/", f"{tmp_path}{mount}/")
    stub = tmp_path / "bin" / "mlflow"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\nenv > {tmp_path}/env\n')
    stub.chmod(0o755)
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    env["PATH"] = f"{stub.parent}{os.pathsep}{os.environ['PATH']}"
    proc = subprocess.run(
        [*container["command"], script], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "argv").read_text()
    environ = dict(
        line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line
    )
    assert "S3cret" not in argv and "K3y" not in argv and "://" not in argv
    assert argv.splitlines()[:3] == ["server", "--app-name", "basic-auth"]
    assert environ["MLFLOW_AUTH_ADMIN_PASSWORD"] == "AdminS3cret"
    assert environ["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "K3y"
    if values == "values-staging.yaml":
        assert environ["PGPASSWORD"] == "DbS3cret"
        assert environ["MLFLOW_BACKEND_STORE_URI"] == (
            "postgresql://mlflow@af-alphafactory-postgresql:5432/mlflow"
        )
    else:
        assert environ["MLFLOW_BACKEND_STORE_URI"] == secrets["uri"]


@pytest.mark.parametrize("values", MLFLOW_VALUES)
def test_mlflow_and_postgresql_have_their_own_service_accounts(
    charts: dict[str, Objs], values: str
) -> None:
    objs = charts[values]
    infer = pod_spec(named(objs, "CronJob", "-infer-live"))
    assert infer is not None
    pipeline_sa = infer["serviceAccountName"]
    bound = {s["name"] for b in of_kind(objs, "RoleBinding") for s in b["subjects"]}
    assert bound == {pipeline_sa}
    sas = {o["metadata"]["name"]: o for o in of_kind(objs, "ServiceAccount")}
    servers = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
    assert servers
    for obj in servers:
        spec = pod_spec(obj)
        assert spec is not None
        name = spec["serviceAccountName"]
        assert name != pipeline_sa, obj["metadata"]["name"]
        assert "annotations" not in sas[name]["metadata"], name  # no Workload Identity GSA
        assert sas[name]["automountServiceAccountToken"] is False


# --- Argo CD ------------------------------------------------------------------------------


def test_every_application_has_its_own_project() -> None:
    docs = [yaml.safe_load(p.read_text()) for p in sorted((MANIFESTS / "argocd").glob("*.yaml"))]
    apps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Application"}
    projects = {d["metadata"]["name"]: d for d in docs if d["kind"] == "AppProject"}
    listed = yaml.safe_load((MANIFESTS / "argocd" / "kustomization.yaml").read_text())
    assert {f"project-{o}.yaml" for o in OVERLAYS} <= set(listed["resources"])
    assert len(apps) == len(OVERLAYS) == len(projects)
    for name, app in apps.items():
        project = app["spec"]["project"]
        assert project != "default", name
        spec = projects[project]["spec"]
        assert spec["sourceRepos"] == [app["spec"]["source"]["repoURL"]]
        assert spec["destinations"] == [app["spec"]["destination"]]
        assert spec["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
        assert "*" not in str(spec)
    assert len({a["spec"]["project"] for a in apps.values()}) == len(OVERLAYS)


# --- Database secret ----------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES_FILES)
def test_chart_generates_no_secret(charts: dict[str, Objs], values: str) -> None:
    assert not of_kind(charts[values], "Secret")
    text = "".join(p.read_text() for p in (CHART / "templates").iterdir())
    assert "randAlphaNum" not in text and "lookup" not in text


def test_renders_are_identical() -> None:
    first, second = (helm_template("values-staging.yaml") for _ in range(2))
    assert first.returncode == 0 and first.stdout == second.stdout


def test_bundled_postgresql_requires_an_existing_secret(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "values-staging.yaml").read_text())
    values["mlflow"]["postgresql"]["existingSecret"] = ""
    path = tmp_path / "no-db-secret.yaml"
    path.write_text(yaml.safe_dump(values))
    proc = helm_template(path)
    assert proc.returncode != 0
    assert "mlflow.postgresql.existingSecret is required with the bundled PostgreSQL" in (
        proc.stderr
    )


# --- GPU image ----------------------------------------------------------------------------

REQUIREMENT = re.compile(r"^([a-z0-9][a-z0-9._-]*)==([\w.]+) --hash=sha256:[a-f0-9]{64}$")


def test_gpu_image_installs_torch_from_hashed_pins_only() -> None:
    text = (IMAGES / "gpu.Dockerfile").read_text()
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert "--extra-index-url" not in code and "--index-url" not in code
    pins = re.findall(r"^\s+'([^']+)' \\$", code, re.M)
    parsed = [REQUIREMENT.match(pin) for pin in pins]
    assert all(parsed), [p for p, m in zip(pins, parsed, strict=True) if not m]
    names = {m.group(1): m.group(2) for m in parsed if m}
    assert names["torch"] == "2.5.1"
    assert {"triton", "nvidia-cudnn-cu12", "nvidia-cublas-cu12", "sympy"} <= set(names)
    # torch only through the hashed file (the later `[torch]` extra finds it installed)
    unhashed = [
        ln
        for ln in code.splitlines()
        if "torch==" in ln and "--hash=" not in ln and "grep -v '^torch=='" not in ln
    ]
    assert unhashed == [], unhashed
    assert "pip install --no-cache-dir --require-hashes --only-binary=:all:" in code
    assert "-r /tmp/torch-cu124-requirements.txt" in code
    # the venv's CPU torch pin is dropped before the wheel's extras, which keep the CUDA build
    wheel_step = next(step for step in code.split("RUN ") if '"${wheel}[' in step)
    assert "grep -v '^torch==' constraints.txt > /tmp/gpu-constraints.txt" in wheel_step
    assert "-c /tmp/gpu-constraints.txt" in wheel_step and "-c constraints.txt" not in wheel_step

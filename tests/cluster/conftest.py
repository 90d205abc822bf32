"""Shared helpers for the cluster-artefact tests (images, manifests, chart, kind).

Run with the tools virtualenv (make test-cluster), never the project's: these tests need
kubectl (kustomize), helm, checkov, hadolint and kubernetes-validate, and must not import
alphafactory. Tools are looked up next to the running interpreter first, then on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CHART = REPO / "helm" / "alphafactory"
IMAGES = REPO / "images"
OVERLAYS = ("dev", "staging", "production")
VALUES_FILES = ("values.yaml", "values-dev.yaml", "values-staging.yaml", "values-production.yaml")
KUBE_VERSION = "1.30.0"
TOOLS_BIN = Path(sys.executable).parent

DIGEST_RE = r"^[a-z0-9][a-z0-9._/:-]*@sha256:[a-f0-9]{64}$"

POD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


def tool(name: str) -> str:
    """Path of a CLI tool: the tools venv's bin first, then PATH; skip the test if absent."""
    candidate = TOOLS_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} not installed (run `make cluster-tools`)")
    return found


def tool_env(tmp: Path | None = None) -> dict[str, str]:
    """Environment for helm/checkov: tools bin first on PATH, helm homes in a temp dir."""
    env = dict(os.environ)
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    home = tmp or Path(os.environ.get("TMPDIR", "/tmp")) / "alphafactory-helm-home"
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(home / var.lower())
    env["BC_SKIP_MAPPING"] = "TRUE"
    env["CHECKOV_RUN_SCA_PACKAGE_SCAN_V2"] = "false"
    return env


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("env", tool_env())
    kw.setdefault("cwd", REPO)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, **kw)


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def kustomize(path: Path) -> list[dict[str, Any]]:
    proc = run([tool("kubectl"), "kustomize", str(path)])
    assert proc.returncode == 0, proc.stderr
    return load_all(proc.stdout)


def helm_template(
    values_file: str | Path | None, *extra: str, namespace: str = "alphafactory-test"
) -> subprocess.CompletedProcess[str]:
    cmd = [
        tool("helm"),
        "template",
        "af",
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        f"v{KUBE_VERSION}",
    ]
    if values_file is not None:
        cmd += ["-f", str(values_file if Path(values_file).is_absolute() else CHART / values_file)]
    return run(cmd + list(extra))


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return obj["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in POD_KINDS:
        return obj["spec"]["template"]["spec"]
    return None


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def image_refs(objs: list[dict[str, Any]]) -> list[str]:
    refs = []
    for obj in objs:
        spec = pod_spec(obj)
        if spec is not None:
            refs += [c["image"] for c in containers(spec)]
    return refs


@pytest.fixture(scope="session")
def overlays() -> dict[str, list[dict[str, Any]]]:
    return {name: kustomize(MANIFESTS / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def charts() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for values in VALUES_FILES:
        proc = helm_template(values)
        assert proc.returncode == 0, proc.stderr
        out[values] = load_all(proc.stdout)
    return out

"""scripts/kind-up.sh: syntax, shellcheck, clear errors without docker/kind; mk/cluster.mk."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, tool

SCRIPT = REPO / "scripts" / "kind-up.sh"
MK = REPO / "mk" / "cluster.mk"


def test_bash_syntax() -> None:
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    text = SCRIPT.read_text()
    assert "set -euo pipefail" in text
    assert os.access(SCRIPT, os.X_OK)


def test_shellcheck() -> None:
    proc = subprocess.run(
        [tool("shellcheck"), "--severity=style", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


def test_script_does_what_the_issue_asks() -> None:
    text = SCRIPT.read_text()
    assert "manifests/kind/cluster.yaml" in text
    assert re.search(r'KFP_VERSION="\$\{KFP_VERSION:-\d+\.\d+\.\d+\}"', text)
    assert "cluster-scoped-resources?ref=${KFP_VERSION}" in text
    assert "kind load docker-image" in text
    assert "manifests/overlays/dev" in text
    assert "port-forward svc/ml-pipeline" in text
    assert "submit --env local-integration" in text


def _fake_path(tmp_path: Path, present: list[str]) -> str:
    """A PATH holding only the tools the script needs before its prerequisite checks."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ["dirname", "cat", *present]:
        real = shutil.which(name)
        if real:
            (bin_dir / name).symlink_to(real)
        else:
            stub = bin_dir / name
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
    return str(bin_dir)


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        (["curl"], "docker"),
        (["curl", "docker"], "kind"),
    ],
)
def test_clear_error_when_a_tool_is_missing(
    tmp_path: Path, present: list[str], missing: str
) -> None:
    env = {"PATH": _fake_path(tmp_path, present), "HOME": str(tmp_path)}
    bash = shutil.which("bash")
    assert bash
    proc = subprocess.run(
        [bash, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30, check=False
    )
    assert proc.returncode == 1
    assert f"'{missing}' is not installed or not on PATH" in proc.stderr


def test_makefile_fragment_targets_have_help() -> None:
    text = MK.read_text()
    targets = dict(re.findall(r"^([a-z][a-z-]+):[^=\n]*?## (.+)$", text, re.M))
    assert {"cluster-tools", "test-cluster", "images", "kind-up"} <= set(targets)
    assert re.search(r"^test-cluster: cluster-tools ", text, re.M)
    assert "$(TOOLS_BIN)/python -m pytest tests/cluster -q" in text
    assert "$(VENV)" not in text.replace("$(TOOLS_VENV)", "")  # never installs into .venv


def test_make_images_without_docker(tmp_path: Path) -> None:
    make = shutil.which("make")
    if not make:
        pytest.skip("make not installed")
    env = {"PATH": _fake_path(tmp_path, ["sh", "git"]), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [make, "-f", str(MK), "images"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert "docker is not installed" in proc.stderr


def test_script_gives_the_app_namespace_the_minio_keys() -> None:
    text = SCRIPT.read_text()
    assert "get secret mlpipeline-minio-artifact" in text
    assert "create secret generic alphafactory-object-store" in text
    assert "aws_access_key_id = %s" in text and "--from-file=credentials=" in text

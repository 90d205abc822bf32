"""checkov passes on the kustomize overlays, the chart (per values file) and the Dockerfiles,
with only the skips listed (each with a reason) in .checkov.yaml."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART, REPO, run, tool

CONFIG = REPO / ".checkov.yaml"


def checkov(*args: str, cwd: Path = REPO) -> tuple[int, list[dict[str, Any]], str]:
    proc = run(
        [
            tool("checkov"),
            "--config-file",
            str(CONFIG),
            "--skip-download",
            "--output",
            "json",
            *args,
        ],
        cwd=cwd,
    )
    out = proc.stdout.strip()
    reports = json.loads(out) if out.startswith(("[", "{")) else []
    if isinstance(reports, dict):
        reports = [reports]
    return proc.returncode, reports, proc.stdout + proc.stderr


def failed(reports: list[dict[str, Any]]) -> list[str]:
    return [
        f"{r.get('check_type')}: {c['check_id']} {c['resource']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]


def passed_count(reports: list[dict[str, Any]]) -> int:
    return sum(r.get("summary", {}).get("passed", 0) for r in reports)


def test_skips_have_reasons() -> None:
    text = CONFIG.read_text()
    cfg = yaml.safe_load(text)
    skips = list(cfg.get("skip-check", [])) + list(cfg.get("skip-path", []))
    for skip in skips:
        line = next(ln for ln in text.splitlines() if re.match(rf"\s*-\s*{re.escape(skip)}\b", ln))
        assert re.search(r"#\s*\S.{15,}", line), f"skip {skip} has no one-line reason"
    for path in cfg.get("skip-path", []):
        assert (REPO / path).exists(), path


@pytest.mark.parametrize(
    ("target", "framework", "extra"),
    [
        ("manifests", "kustomize", ()),
        ("images", "dockerfile", ()),
        ("helm", "helm", ()),
        ("helm", "helm", ("--var-file", str(CHART / "values-dev.yaml"))),
        ("helm", "helm", ("--var-file", str(CHART / "values-production.yaml"))),
    ],
    ids=["kustomize", "dockerfile", "helm-default", "helm-dev", "helm-production"],
)
def test_checkov_passes(target: str, framework: str, extra: tuple[str, ...]) -> None:
    code, reports, output = checkov("-d", target, "--framework", framework, *extra)
    assert reports, f"checkov produced no report (is helm/kubectl on PATH?)\n{output[-3000:]}"
    assert not failed(reports), "\n".join(failed(reports))
    assert code == 0, output[-3000:]
    assert passed_count(reports) > 50


def test_checkov_catches_a_privileged_container(tmp_path: Path) -> None:
    """Guard against a silently disabled framework: a broken copy of the chart must fail."""
    chart = tmp_path / "helm" / "alphafactory"
    shutil.copytree(CHART, chart)
    helpers = chart / "templates" / "_helpers.tpl"
    helpers.write_text(
        helpers.read_text().replace(
            "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"
        )
    )
    shutil.copy(REPO / ".checkov.yaml", tmp_path / ".checkov.yaml")
    code, reports, output = checkov("-d", "helm", "--framework", "helm", cwd=tmp_path)
    assert code != 0
    assert any("CKV_K8S_20" in f for f in failed(reports)), output[-2000:]

"""KFP task pods reach a basic-auth MLflow: every executor carries the pod labels the Helm
chart's MLflow NetworkPolicy admits and, with registry.credentials_secret, the client
credentials as MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (golden specs)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from alphafactory.config import load_environment
from pipelines.platform import POD_LABELS

ROOT = Path(__file__).resolve().parents[2]


def _executors(env: str) -> dict[str, Any]:
    documents = list(
        yaml.safe_load_all((ROOT / "pipelines" / "compiled" / f"{env}.yaml").read_text())
    )
    [platform] = [d for d in documents if d and "platforms" in d]
    executors: dict[str, Any] = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return executors


@pytest.mark.parametrize("env", ["local-integration", "production"])
def test_every_kfp_task_is_labelled_and_gets_the_mlflow_credentials(env: str) -> None:
    secret = load_environment(env).registry.credentials_secret
    assert secret == "alphafactory-mlflow-client"
    executors = _executors(env)
    assert len(executors) >= 10  # every task of the pipeline, not only the GPU ones
    for name, executor in executors.items():
        assert executor["podMetadata"]["labels"] == POD_LABELS, name
        [mlflow] = [s for s in executor["secretAsEnv"] if s["secretName"] == secret]
        assert {(k["secretKey"], k["envVar"]) for k in mlflow["keyToEnv"]} == {
            ("tracking-username", "MLFLOW_TRACKING_USERNAME"),
            ("tracking-password", "MLFLOW_TRACKING_PASSWORD"),
        }, name


def test_the_cluster_suite_and_the_chart_expect_the_same_pod_labels() -> None:
    suite = (ROOT / "tests" / "cluster" / "test_hardening_review.py").read_text()
    literal = suite.split("PIPELINE_POD_LABELS = ", 1)[1].split("}", 1)[0] + "}"
    assert ast.literal_eval(literal) == POD_LABELS
    policy = (ROOT / "helm" / "alphafactory" / "templates" / "networkpolicy.yaml").read_text()
    for key, value in POD_LABELS.items():
        assert f"{key}: {value}\n" in policy

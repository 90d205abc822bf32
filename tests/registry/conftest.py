"""Fixtures for the registry tests: tiny real LightGBM models, and a real PostgreSQL server with
an MLflow tracking server in front of it (session-scoped, started only by slow tests)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from postgres_server import free_port, running_postgres

SERVER_START_TIMEOUT_S = 120.0


def train_tiny_lightgbm(path: Path, seed: int, *, linear_tree: bool = False) -> Path:
    """Train a 3-class LightGBM on seeded random data and save it as LightGBM text."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(300, 6))
    labels = rng.integers(0, 3, size=300)
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "num_leaves": 4,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 1,
        "verbose": -1,
        "linear_tree": linear_tree,
    }
    booster = lgb.train(params, lgb.Dataset(features, labels), num_boost_round=5)
    booster.save_model(str(path))
    return path


@contextlib.contextmanager
def running_mlflow_server(backend_store_uri: str, artifacts_dir: Path) -> Iterator[str]:
    """Start ``mlflow server`` on a free loopback port; yield its http URI once /health is OK."""
    port = free_port()
    log_path = artifacts_dir.parent / "mlflow-server.log"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(artifacts_dir),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(uri, server, log_path)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_for_health(uri: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"mlflow server exited with {server.returncode}:\n{tail}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{uri}/health", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server at {uri} did not become healthy; see {log_path}")


@pytest.fixture(scope="session")
def mlflow_postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real MLflow tracking server backed by a real PostgreSQL: (http URI, artifacts folder)."""
    pytest.importorskip("psycopg2", reason="psycopg2 is needed for the PostgreSQL backend")
    artifacts_dir = tmp_path_factory.mktemp("mlflow-server") / "artifacts"
    artifacts_dir.mkdir()
    with (
        running_postgres("mlflow") as backend,
        running_mlflow_server(backend, artifacts_dir) as uri,
    ):
        yield uri, artifacts_dir

"""Thin helpers over the MLflow client for the registry: lazy client creation, safe filter
values, and logging or reading a registration run's artifacts."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphafactory.errors import ConfigError, ModelError
from alphafactory.registry.grades import check_grade
from alphafactory.registry.pyfunc import PyfuncSpec, save_pyfunc_folder
from alphafactory.registry.records import MANAGED_BY, TAG_MANAGED_BY

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

MODEL_ARTIFACT_DIR = "model"
FEATURES_ARTIFACT = "feature_list.json"
INSTALL_HINT = "pip install 'alphafactory[registry]'"
_MAX_PARAMS_PER_BATCH = 100
_SAFE_VALUE = re.compile(r"^[^'\"\\]*$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def require_mlflow() -> None:
    """ConfigError naming the extra when MLflow is not installed (found, not imported)."""
    try:
        found = importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            f"the model registry needs MLflow, which is not installed: {INSTALL_HINT}"
        )


def new_client(tracking_uri: str) -> MlflowClient:
    """An MlflowClient for tracking and registry on one URI; ConfigError without mlflow."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        raise ConfigError(
            f"the model registry needs MLflow, which is not installed: {INSTALL_HINT}"
        ) from error
    # Artifact downloads would otherwise draw tqdm bars on stderr; a user's setting wins.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def error_code(error: Exception) -> str:
    """The MLflow error code of an exception ('' for other exceptions)."""
    return str(getattr(error, "error_code", ""))


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a safe registered model name, else raise ConfigError."""
    if not _SAFE_NAME.match(value):
        raise ConfigError(
            f"{kind} {value!r} is not valid: use letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_register_args(
    name: str, model_path: Path, grade: str, metrics: Mapping[str, float], key_metric: str
) -> None:
    """Refuse a registration whose name, grade, file or key metric is unusable."""
    check_name("registered model name", name)
    check_grade(grade)
    if not model_path.is_file():
        raise ModelError(
            f"model file {model_path} does not exist: train and save the model "
            "before registering it"
        )
    if key_metric not in metrics:
        raise ConfigError(
            f"key metric {key_metric!r} is not among the metrics "
            f"{sorted(metrics)}: pass it in metrics or choose key_metric"
        )


def quoted(kind: str, value: str) -> str:
    """``value`` in single quotes for a search filter; refuses quotes and backslashes."""
    if not _SAFE_VALUE.match(value):
        raise ConfigError(f"{kind} filter {value!r} contains a quote or backslash: remove it")
    return f"'{value}'"


def ensure_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """The id of experiment ``name``, created (with ``artifact_root``) when missing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_root))
    except Exception:
        # Another process created it between our lookup and our create.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create registered model ``name`` unless it exists (tolerating a concurrent create)."""
    try:
        client.get_registered_model(name)
        return
    except Exception as error:
        if error_code(error) != "RESOURCE_DOES_NOT_EXIST":
            raise
    try:
        client.create_registered_model(name, tags={TAG_MANAGED_BY: MANAGED_BY})
    except Exception as error:
        if error_code(error) != "RESOURCE_ALREADY_EXISTS":
            raise


def log_model_run(
    client: MlflowClient,
    experiment_id: str,
    model_path: Path,
    *,
    run_name: str,
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
    feature_list: tuple[str, ...],
    sha256: str,
    pyfunc: PyfuncSpec | None = None,
) -> tuple[str, str]:
    """Log one finished run holding the model file, metrics, params and feature list.

    The file goes to `model/<its name>`; with `pyfunc`, the same folder also holds the MLflow
    pyfunc flavor that loads it (`alphafactory.registry.pyfunc`).

    Returns:
        The run id and the run's artifact URI.
    """
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id, run_name=run_name)
    run_id = run.info.run_id
    try:
        now_ms = int(time.time() * 1000)
        metric_rows = [Metric(key, float(value), now_ms, 0) for key, value in metrics.items()]
        client.log_batch(run_id, metrics=metric_rows)
        param_rows = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(param_rows), _MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=param_rows[start : start + _MAX_PARAMS_PER_BATCH])
        if pyfunc is None:
            client.log_artifact(run_id, str(model_path), MODEL_ARTIFACT_DIR)
        else:
            with tempfile.TemporaryDirectory(prefix="alphafactory-pyfunc-") as tmp:
                folder = Path(tmp) / MODEL_ARTIFACT_DIR
                save_pyfunc_folder(folder, model_path, sha256, feature_list, pyfunc)
                client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT_DIR)
        _log_feature_list(client, run_id, feature_list)
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id)
    return run_id, str(run.info.artifact_uri)


def _log_feature_list(client: MlflowClient, run_id: str, features: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory(prefix="alphafactory-features-") as tmp:
        path = Path(tmp) / FEATURES_ARTIFACT
        path.write_text(json.dumps(list(features), indent=1), encoding="utf-8")
        client.log_artifact(run_id, str(path))


def read_feature_list(client: MlflowClient, run_id: str) -> tuple[str, ...]:
    """The feature list stored with a registration run."""
    with tempfile.TemporaryDirectory(prefix="alphafactory-features-") as tmp:
        path = client.download_artifacts(run_id, FEATURES_ARTIFACT, tmp)
        return tuple(json.loads(Path(path).read_text(encoding="utf-8")))

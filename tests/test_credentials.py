"""Credentials in URIs are refused when the config loads, and never printed: not in the error,
not by `show-config`, not in a compiled spec."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from alphafactory.cli import app
from alphafactory.config import (
    available_environments,
    load_environment,
    validate_environment,
    with_data_uri,
)
from alphafactory.data.bars import load_bars
from alphafactory.errors import ConfigError, DataError
from alphafactory.names import CREDENTIALS_HINT, redact_uri, uri_has_credentials
from pipelines.local import COMPILED_DIR, compile_pipeline, compiled_text

SECRET = "hunter2"
#: `scheme://user:password@` anywhere in a text.
USERINFO_WITH_PASSWORD = re.compile(r"[a-z0-9+.-]+://[^/@\s:'\"]+:[^/@\s'\"]+@", re.I)
runner = CliRunner()

#: (key, section, URI with a secret, the same URI as an error shows it)
CASES = [
    (
        "registry.tracking_uri",
        "registry",
        f"postgresql+psycopg2://mlflow:{SECRET}@10.0.0.5:5432/mlflow",
        "postgresql+psycopg2://mlflow:***@10.0.0.5:5432/mlflow",
    ),
    (
        "registry.tracking_uri",
        "registry",
        f"http://mlflow.internal:5000/?password={SECRET}",
        "http://mlflow.internal:5000/?password=***",
    ),
    (
        "tune.storage_url",
        "tune",
        f"postgresql://optuna:{SECRET}@db:5432/optuna",
        "postgresql://optuna:***@db:5432/optuna",
    ),
    (
        "data.uri",
        "data",
        f"https://user:{SECRET}@example.com/bars.csv",
        "https://user:***@example.com/bars.csv",
    ),
    (
        "data.uri",
        "data",
        f"https://example.com/bars.csv?X-Goog-Signature={SECRET}&x=1",
        "https://example.com/bars.csv?X-Goog-Signature=***&x=1",
    ),
    ("pipeline_root", None, f"s3://AKIA:{SECRET}@bucket/root", "s3://AKIA:***@bucket/root"),
    ("kfp.host", "kfp", f"http://admin:{SECRET}@kfp:8888", "http://admin:***@kfp:8888"),
    (
        "object_store.endpoint_url",
        "object_store",
        f"http://minio:{SECRET}@minio:9000",
        "http://minio:***@minio:9000",
    ),
]


def _raw(key: str, section: str | None, value: str) -> dict[str, Any]:
    field = key.rpartition(".")[2]
    raw: dict[str, Any] = {"name": "secrets-test"}
    if section is None:
        raw[field] = value
    else:
        raw[section] = {field: value, **({"source": "uri"} if section == "data" else {})}
    return raw


@pytest.mark.parametrize(("key", "section", "uri", "shown"), CASES)
def test_uri_with_credentials_is_refused_without_showing_them(
    key: str, section: str | None, uri: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_environment(_raw(key, section, uri), source="env.yaml")
    assert str(caught.value) == f"env.yaml: key '{key}' = {shown!r}: {CREDENTIALS_HINT}"
    assert caught.value.__cause__ is None  # a chained pydantic error would print the input


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql+psycopg2://mlflow@10.20.0.5:5432/mlflow-staging",  # a user, no password
        "http://mlflow:5000",
        "gs://bucket/bars.parquet?generation=3",
        "runs",
        "sqlite:///runs/registry/mlflow.db",
    ],
)
def test_uris_without_credentials_load(uri: str) -> None:
    config = validate_environment({"name": "x", "registry": {"tracking_uri": uri}}, source="x")
    assert config.registry.tracking_uri == uri and not uri_has_credentials(uri)


def test_redaction_keeps_everything_but_the_secret() -> None:
    assert redact_uri(f"postgresql://u:{SECRET}@h:5432/db?sslmode=require&pwd={SECRET}") == (
        "postgresql://u:***@h:5432/db?sslmode=require&pwd=***"
    )
    assert redact_uri("gs://bucket/x.parquet") == "gs://bucket/x.parquet"


def test_tracking_uri_from_the_environment_variable_is_refused_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALPHAFACTORY_TRACKING_URI", f"http://u:{SECRET}@mlflow:5000")
    with pytest.raises(ConfigError) as caught:
        load_environment("local-dev")
    assert SECRET not in str(caught.value)
    assert "key 'registry.tracking_uri' = 'http://u:***@mlflow:5000'" in str(caught.value)


def test_data_option_with_credentials_is_refused() -> None:
    config = load_environment("local-dev", use_env_vars=False)
    with pytest.raises(ConfigError) as caught:
        with_data_uri(config, f"https://u:{SECRET}@example.com/bars.csv")
    assert str(caught.value) == (
        f"--data: key 'uri' = 'https://u:***@example.com/bars.csv': {CREDENTIALS_HINT}"
    )


def test_loading_bars_from_a_uri_with_credentials_is_refused() -> None:
    with pytest.raises(DataError) as caught:
        load_bars(f"https://u:{SECRET}@example.com/bars.csv")
    assert str(caught.value) == (
        f"https://u:***@example.com/bars.csv: {CREDENTIALS_HINT}, or in storage_options"
    )


# ------------------------------------------------------------------ show-config and specs


def _env_file(tmp_path: Path, **settings: Any) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump({"name": "secrets-test", **settings}))
    return path


def test_show_config_refuses_a_config_with_credentials_in_one_line(tmp_path: Path) -> None:
    env = _env_file(tmp_path, tune={"storage_url": f"postgresql://o:{SECRET}@db/optuna"})
    result = runner.invoke(app, ["show-config", "--env", str(env)])
    assert result.exit_code == 2
    assert SECRET not in result.output
    assert result.output.strip().splitlines() == [
        f"error: {env}: key 'tune.storage_url' = 'postgresql://o:***@db/optuna': {CREDENTIALS_HINT}"
    ]


@pytest.mark.parametrize("name", available_environments())
def test_show_config_prints_no_credentials(name: str) -> None:
    result = runner.invoke(app, ["show-config", "--env", name])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown == load_environment(name).model_dump(mode="json")
    assert USERINFO_WITH_PASSWORD.findall(result.output) == []


def test_a_spec_with_credentials_cannot_be_compiled(tmp_path: Path) -> None:
    env = _env_file(
        tmp_path, registry={"tracking_uri": f"postgresql://mlflow:{SECRET}@db:5432/mlflow"}
    )
    target = tmp_path / "spec.yaml"
    with pytest.raises(ConfigError) as caught:
        compile_pipeline(str(env), target)
    assert SECRET not in str(caught.value)
    assert not target.exists()


def test_compiled_specs_carry_no_credentials() -> None:
    fresh = compiled_text(load_environment("staging", use_env_vars=False))
    assert "mlflow@10.20.0.5" in fresh  # the user name is kept: only passwords are secret
    assert USERINFO_WITH_PASSWORD.findall(fresh) == []
    for spec in sorted(COMPILED_DIR.glob("*.yaml")):
        assert USERINFO_WITH_PASSWORD.findall(spec.read_text()) == [], spec.name

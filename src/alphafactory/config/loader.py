"""Load and validate environment YAML files; turn pydantic errors into one-line messages."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from alphafactory.config.schema import DataConfig, EnvironmentConfig, GridConfig
from alphafactory.errors import ConfigError
from alphafactory.names import SAFE_NAME_RULE, is_safe_name, redact_uri

ENV_DIR_VARIABLE = "ALPHAFACTORY_ENV_DIR"
#: Environment variables that override one setting each (documented in the README).
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "ALPHAFACTORY_PIPELINE_ROOT": ("pipeline_root",),
    "ALPHAFACTORY_TRACKING_URI": ("registry", "tracking_uri"),
    "ALPHAFACTORY_DATA_URI": ("data", "uri"),
}


def environments_dir() -> Path:
    """The folder holding `<name>.yaml` environment files."""
    if override := os.environ.get(ENV_DIR_VARIABLE):
        return Path(override)
    spec = importlib.util.find_spec("pipelines")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "environments"
    return Path.cwd() / "pipelines" / "environments"


def available_environments() -> list[str]:
    """Names of the environment files that exist."""
    return sorted(p.stem for p in environments_dir().glob("*.yaml"))


def environment_path(name_or_path: str) -> Path:
    """Resolve an environment name (`local-dev`) or a YAML path to a file that exists."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            raise ConfigError(f"{candidate}: environment file not found")
        return candidate
    if not is_safe_name(name_or_path):
        raise ConfigError(
            f"environment {name_or_path!r} is neither a name nor a .yaml file; "
            f"an environment name is {SAFE_NAME_RULE}"
        )
    path = environments_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(available_environments()) or "none"
        raise ConfigError(f"unknown environment '{name_or_path}'; available: {known}")
    return path


def load_environment(
    name_or_path: str = "local-dev", *, use_env_vars: bool = True
) -> EnvironmentConfig:
    """Read, override from `ALPHAFACTORY_*` variables and validate one environment."""
    path = environment_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    if use_env_vars:
        raw = apply_env_overrides(raw, os.environ)
    return validate_environment(raw, source=str(path))


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Return a copy of `raw` with the documented environment variables applied."""
    result: dict[str, Any] = {**raw}
    for variable, keys in ENV_OVERRIDES.items():
        if variable not in environ:
            continue
        target = result
        for key in keys[:-1]:
            target[key] = dict(target.get(key) or {})
            target = target[key]
        target[keys[-1]] = environ[variable]
        if keys == ("data", "uri"):
            target["source"] = "uri"
    return result


def validate_environment(raw: Mapping[str, Any], *, source: str) -> EnvironmentConfig:
    """Validate a mapping; the error names the source, the key and what is allowed."""
    try:
        return EnvironmentConfig.model_validate(raw)
    except ValidationError as exc:
        # Not chained: a pydantic error prints its inputs, which may hold a password.
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line for the first problem of a pydantic error, with the allowed values."""
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        parent = _model_at(EnvironmentConfig, first["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent else "see the README"
        return f"unknown key '{location}'; allowed keys here: {allowed}"
    value = _redacted(first.get("input"))
    message = first["msg"].removeprefix("Value error, ")
    allowed = ""
    if kind == "literal_error":
        allowed = f"; allowed: {first.get('ctx', {}).get('expected', '')}"
    return f"key '{location}' = {value!r}: {message}{allowed}"


def _redacted(value: Any) -> Any:
    """`value` with every password in URIs inside it replaced, so no message shows one."""
    if isinstance(value, str):
        return redact_uri(value)
    if isinstance(value, Mapping):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: type[BaseModel] = model
    for part in loc:
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *get_args(annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        current = nested[0]
    return current


def with_full_grid(config: EnvironmentConfig) -> EnvironmentConfig:
    """The same environment with the full default variant grid (`--grid full`)."""
    return config.model_copy(update={"grid": GridConfig()})


def with_data_uri(config: EnvironmentConfig, uri: str) -> EnvironmentConfig:
    """The same environment reading the user's bars from `uri` (`--data`)."""
    raw = {**config.data.model_dump(), "source": "uri", "uri": uri}
    try:
        data = DataConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"--data: {describe_validation_error(exc)}") from None
    return config.model_copy(update={"data": data})

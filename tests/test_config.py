"""Tests of the environment configuration: YAML loading, validation messages, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alphafactory.config import (
    EnvironmentConfig,
    GridConfig,
    available_environments,
    environment_path,
    load_environment,
    with_data_uri,
    with_full_grid,
)
from alphafactory.errors import ConfigError
from alphafactory.targets.variants import expand_grid

OVERRIDE_VARIABLES = (
    "ALPHAFACTORY_PIPELINE_ROOT",
    "ALPHAFACTORY_TRACKING_URI",
    "ALPHAFACTORY_DATA_URI",
    "ALPHAFACTORY_ENV_DIR",
)
GRID_KEYS = ("windows", "swing_types", "std_thresholds", "move_thresholds", "horizons")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in OVERRIDE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def write_yaml(tmp_path: Path, payload: object, name: str = "env.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(payload) if not isinstance(payload, str) else payload)
    return path


def test_local_dev_loads_from_pipelines_environments() -> None:
    config = load_environment("local-dev")
    assert isinstance(config, EnvironmentConfig)
    assert config.name == "local-dev"
    assert config.runner == "local"
    assert config.pipeline_root == "runs"
    assert config.data.source == "synthetic"
    assert config.data.symbols == ["BTC", "ETH", "SOL"]
    assert config.data.n_bars == 8760
    assert config.grid.windows == [2, 3, 5, 10, 20, 50]
    assert config.grid.horizons == [6, 24]
    assert config.lightgbm.max_bin == 63
    assert config.parallelism.shards == 6
    assert environment_path("local-dev").name == "local-dev.yaml"
    assert environment_path("local-dev").parent.name == "environments"
    assert "local-dev" in available_environments()


def test_minimal_yaml_gets_defaults(tmp_path: Path) -> None:
    config = load_environment(str(write_yaml(tmp_path, {"name": "mini"})))
    assert config.name == "mini"
    assert config.grid == GridConfig()
    assert config.prepare.max_corr == 0.90
    assert config.screen.select_min == 300


def test_unknown_key_names_file_dotted_key_and_allowed_keys(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"name": "x", "grid": {"windowz": [2, 3]}})
    with pytest.raises(ConfigError) as caught:
        load_environment(str(path))
    message = str(caught.value)
    assert str(path) in message
    assert "'grid.windowz'" in message
    for key in GRID_KEYS:
        assert key in message


def test_unknown_top_level_key_lists_top_level_keys(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"name": "x", "runnner": "local"})
    with pytest.raises(ConfigError) as caught:
        load_environment(str(path))
    message = str(caught.value)
    assert "'runnner'" in message
    for key in ("runner", "pipeline_root", "data", "grid", "parallelism"):
        assert key in message


def test_wrong_literal_names_key_and_allowed_values(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"name": "x", "runner": "docker"})
    with pytest.raises(ConfigError) as caught:
        load_environment(str(path))
    message = str(caught.value)
    assert str(path) in message
    assert "'runner'" in message
    assert "docker" in message
    for allowed in ("local", "kfp", "vertex"):
        assert allowed in message


def test_wrong_nested_literal_names_dotted_key(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"name": "x", "features": {"scale": "huge"}})
    with pytest.raises(ConfigError, match=r"'features\.scale' = 'huge'.*small.*full"):
        load_environment(str(path))


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"name": "x", "data": {"n_bars": "lots"}})
    with pytest.raises(ConfigError) as caught:
        load_environment(str(path))
    message = str(caught.value)
    assert str(path) in message
    assert "'data.n_bars'" in message
    assert "'lots'" in message


def test_value_error_from_validator_names_key(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"name": "x", "grid": {"windows": [3, 3]}})
    with pytest.raises(ConfigError, match=r"'grid\.windows'.*distinct integers >= 1"):
        load_environment(str(path))


def test_invalid_yaml_names_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "name: x\ngrid: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_environment(str(path))
    message = str(caught.value)
    assert message.startswith(str(path))
    assert "not valid YAML" in message
    assert "\n" not in message


def test_non_mapping_yaml_names_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_environment(str(path))


def test_missing_yaml_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: environment file not found"):
        load_environment(str(missing))


def test_unknown_environment_lists_available(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_environment("no-such-env")
    message = str(caught.value)
    assert "'no-such-env'" in message
    assert "local-dev" in message


def test_env_dir_variable_changes_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_yaml(tmp_path, {"name": "alpha"}, "alpha.yaml")
    write_yaml(tmp_path, {"name": "beta"}, "beta.yaml")
    monkeypatch.setenv("ALPHAFACTORY_ENV_DIR", str(tmp_path))
    assert available_environments() == ["alpha", "beta"]
    assert load_environment("beta").name == "beta"
    with pytest.raises(ConfigError, match="available: alpha, beta"):
        load_environment("gamma")


def test_pipeline_root_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFACTORY_PIPELINE_ROOT", "gs://bucket/root")
    assert load_environment("local-dev").pipeline_root == "gs://bucket/root"
    assert load_environment("local-dev", use_env_vars=False).pipeline_root == "runs"


def test_data_uri_override_switches_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFACTORY_DATA_URI", "file:///tmp/bars.parquet")
    config = load_environment("local-dev")
    assert config.data.source == "uri"
    assert config.data.uri == "file:///tmp/bars.parquet"
    # The rest of the data section is kept.
    assert config.data.symbols == ["BTC", "ETH", "SOL"]
    assert config.data.n_bars == 8760


def test_tracking_uri_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFACTORY_TRACKING_URI", "http://mlflow:5000")
    assert load_environment("local-dev").registry.tracking_uri == "http://mlflow:5000"


def test_uri_source_without_uri_is_rejected(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"name": "x", "data": {"source": "uri"}})
    with pytest.raises(ConfigError, match="data.uri"):
        load_environment(str(path))


def test_with_full_grid_gives_2160_variants() -> None:
    config = load_environment("local-dev")
    reduced = expand_grid(config.grid, config.data.symbols)
    assert len(reduced) == 3 * 6 * 2 * 2 * 1 * 2
    full = with_full_grid(config)
    assert full.grid == GridConfig()
    assert len(expand_grid(full.grid, full.data.symbols)) == 2160
    # The original is unchanged (configs are frozen and copied).
    assert config.grid.horizons == [6, 24]


def test_with_data_uri() -> None:
    config = with_data_uri(load_environment("local-dev"), "memory://bars.csv")
    assert (config.data.source, config.data.uri) == ("uri", "memory://bars.csv")


def test_grid_lists_are_sorted() -> None:
    grid = GridConfig(windows=[10, 2], horizons=[24, 6], std_thresholds=[2.0, 1.0])
    assert grid.windows == [2, 10]
    assert grid.horizons == [6, 24]
    assert grid.std_thresholds == [1.0, 2.0]

"""Configuration: pydantic models of an environment and the YAML loader."""

from __future__ import annotations

from alphafactory.config.loader import (
    available_environments,
    environment_path,
    load_environment,
    validate_environment,
    with_data_uri,
    with_full_grid,
)
from alphafactory.config.schema import (
    DataConfig,
    EnvironmentConfig,
    FeatureConfig,
    GridConfig,
    ParallelismConfig,
    PrepareConfig,
    ScreenConfig,
    SplitConfig,
    TrainConfig,
    TuneConfig,
)

__all__ = [
    "DataConfig",
    "EnvironmentConfig",
    "FeatureConfig",
    "GridConfig",
    "ParallelismConfig",
    "PrepareConfig",
    "ScreenConfig",
    "SplitConfig",
    "TrainConfig",
    "TuneConfig",
    "available_environments",
    "environment_path",
    "load_environment",
    "validate_environment",
    "with_data_uri",
    "with_full_grid",
]

"""Pydantic models for an environment: where it runs, what data, which variants, stage settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Where bars come from: the embedded synthetic generator or a user's file/URI."""

    source: Literal["synthetic", "uri"] = "synthetic"
    uri: str | None = None
    symbols: list[str] = Field(default_factory=lambda: ["BTC", "ETH", "SOL"], min_length=1)
    n_bars: int = Field(default=26_280, ge=500)
    frequency: str = "1h"
    seed: int = 7

    @model_validator(mode="after")
    def _uri_needs_value(self) -> DataConfig:
        if self.source == "uri" and not self.uri:
            raise ValueError("data.source is 'uri' but data.uri is empty; set data.uri")
        return self


class FeatureConfig(_Strict):
    """Feature generation: 'small' gives hundreds per symbol, 'full' thousands."""

    scale: Literal["small", "full"] = "full"


class GridConfig(_Strict):
    """The variant grid. Defaults are the full 2160-variant grid of the architecture."""

    windows: list[int] = Field(default_factory=lambda: [2, 3, 5, 10, 20, 50], min_length=1)
    swing_types: list[Literal["high", "low"]] = Field(default=["high", "low"], min_length=1)
    std_thresholds: list[float] = Field(default_factory=lambda: [1.0, 1.5, 2.0, 2.5], min_length=1)
    move_thresholds: list[float] = Field(default_factory=lambda: [0.5, 1.0, 1.5], min_length=1)
    horizons: list[int] = Field(default_factory=lambda: [3, 6, 12, 24, 48], min_length=1)

    @field_validator("windows", "horizons")
    @classmethod
    def _positive_ints(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values) or len(set(values)) != len(values):
            raise ValueError("must be distinct integers >= 1")
        return sorted(values)

    @field_validator("std_thresholds", "move_thresholds")
    @classmethod
    def _positive_floats(cls, values: list[float]) -> list[float]:
        if any(v <= 0 for v in values) or len(set(values)) != len(values):
            raise ValueError("must be distinct numbers > 0")
        return sorted(values)


class PrepareConfig(_Strict):
    """Hygiene filters of the prepare stage (thresholds from the source)."""

    max_missing: float = Field(default=0.70, gt=0, le=1)
    max_nan: float = Field(default=0.90, gt=0, le=1)
    max_same: float = Field(default=0.95, gt=0, le=1)
    min_variance: float = Field(default=1e-10, ge=0)
    max_corr: float = Field(default=0.90, gt=0, le=1)
    corr_sample_rows: int = Field(default=20_000, ge=100)


class ScreenConfig(_Strict):
    """Shallow LightGBM screen per variant, then aggregation across variants."""

    subsample_rows: int = Field(default=25_000, ge=100)
    num_leaves: int = Field(default=30, ge=2, le=30)
    max_depth: int = Field(default=5, ge=1, le=5)
    num_rounds: int = Field(default=100, ge=1)
    early_stopping: int = Field(default=20, ge=1)
    learning_rate: float = Field(default=0.1, gt=0)
    top_k: int = Field(default=200, ge=1)
    select_min: int = Field(default=300, ge=1)
    select_max: int = Field(default=500, ge=1)
    variants_per_group: int = Field(
        default=0, ge=0, description="0 screens every variant; n screens n per group"
    )

    @model_validator(mode="after")
    def _bounds(self) -> ScreenConfig:
        if self.select_min > self.select_max:
            raise ValueError("select_min must be <= select_max")
        return self


class SplitConfig(_Strict):
    """Chronological split: the last `validation_fraction` of time is validation."""

    validation_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    embargo_bars: int = Field(default=0, ge=0)


class TuneConfig(_Strict):
    """Tune stage 1: every variant with default parameters."""

    num_rounds: int = Field(default=300, ge=1)
    early_stopping: int = Field(default=30, ge=1)
    learning_rate: float = Field(default=0.1, gt=0)
    num_leaves: int = Field(default=31, ge=2)
    max_depth: int = Field(default=6)
    min_rows: int = Field(
        default=60, ge=10, description="variants with fewer event rows are skipped"
    )


class TrainConfig(_Strict):
    """Production training of each group winner."""

    num_rounds: int = Field(default=1000, ge=1)
    early_stopping: int = Field(default=50, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)


class LightGBMConfig(_Strict):
    """Binning shared by every fit; fewer bins make split finding cheaper on small data."""

    max_bin: int = Field(default=255, ge=15, le=1023)


class ParallelismConfig(_Strict):
    """How work is split: shards per fan-out and threads per LightGBM fit."""

    shards: int = Field(default=12, ge=1, le=100)
    lgbm_threads: int = Field(default=1, ge=1)
    concurrent_fits: int = Field(default=1, ge=1)


class RegistryConfig(_Strict):
    """MLflow tracking/registry URI; empty means a SQLite file in the run folder's parent."""

    tracking_uri: str = ""


class EnvironmentConfig(_Strict):
    """One environment: validated from pipelines/environments/<name>.yaml."""

    name: str
    runner: Literal["local", "kfp", "vertex"] = "local"
    pipeline_root: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    grid: GridConfig = Field(default_factory=GridConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    screen: ScreenConfig = Field(default_factory=ScreenConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    lightgbm: LightGBMConfig = Field(default_factory=LightGBMConfig)
    parallelism: ParallelismConfig = Field(default_factory=ParallelismConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)

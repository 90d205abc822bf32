"""Pydantic models for an environment: where it runs, what data, which variants, stage settings."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from alphafactory.config._strict import Strict as _Strict
from alphafactory.config.backtest import BacktestConfig
from alphafactory.config.families import ModelsConfig
from alphafactory.config.platform import (
    STAGES,
    ImagesConfig,
    KfpConfig,
    NodePoolConfig,
    ObjectStoreConfig,
    PromotionConfig,
    ResourcesConfig,
    StageResources,
    VertexConfig,
)
from alphafactory.config.sources import EXAMPLE_SYMBOLS, ExchangeConfig, YahooConfig
from alphafactory.names import CredentialFreeUri, SafeName, redact_uri


class PlantConfig(_Strict):
    """A learnable precursor planted in the synthetic bars of some symbols (known ground truth).

    At a share of the bars that make a new two-bar high (low), the generator marks the bar with
    a volume spike and continues the move by `drift_sigmas` bar volatilities over the next
    `drift_bars` bars (a breakout), or marks it with a volume drought and moves it back the same
    amount (a reversion). Every other symbol stays pure noise for these labels (planting also
    switches off the generator's weak lead-lag of followers on the leader).
    """

    symbols: list[SafeName] = Field(
        default_factory=list, description="symbols that carry the signal; empty: pure noise"
    )
    trigger_share: float = Field(default=1.0, gt=0, le=1)
    drift_sigmas: float = Field(default=3.0, gt=0)
    drift_bars: int = Field(default=3, ge=1)


#: The sources of the `data` section; `uri` is the older name of `file`.
DATA_SOURCE_NAMES = ("synthetic", "uri", "file", "exchange", "yahoo")
#: Keys left out of a dump while at these defaults: an environment without a network source
#: dumps (and compiles) exactly as before these keys existed.
_OMITTED_AT_DEFAULT: dict[str, Any] = {"fallback": "none", "exchange": None, "yahoo": None}


class DataConfig(_Strict):
    """Where bars come from: the embedded synthetic generator, a user's file/URI, an exchange
    (ccxt) or Yahoo Finance; `fallback: synthetic` lets a failed fetch use synthetic bars
    (marked in the run's lineage), never silently."""

    source: Literal["synthetic", "uri", "file", "exchange", "yahoo"] = "synthetic"
    uri: CredentialFreeUri | None = None
    symbols: list[SafeName] = Field(default_factory=lambda: ["BTC", "ETH", "SOL"], min_length=1)
    n_bars: int = Field(default=26_280, ge=500)
    frequency: str = "1h"
    seed: int = 7
    planted: PlantConfig = Field(default_factory=PlantConfig)
    fallback: Literal["none", "synthetic"] = "none"
    exchange: ExchangeConfig | None = None
    yahoo: YahooConfig | None = None

    @model_validator(mode="after")
    def _source_needs_settings(self) -> DataConfig:
        if self.source in ("uri", "file") and not self.uri:
            raise ValueError(f"data.source is '{self.source}' but data.uri is empty; set data.uri")
        if self.source in ("exchange", "yahoo") and self.fetch is None:
            raise ValueError(
                f"data.source is '{self.source}' but data.{self.source} is not set; add "
                f"data.{self.source}.symbols (e.g. [{', '.join(EXAMPLE_SYMBOLS[self.source])}])"
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_unused_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        for key, default in _OMITTED_AT_DEFAULT.items():
            if key in dumped and dumped[key] == default:
                del dumped[key]
        return dumped

    @property
    def fetch(self) -> ExchangeConfig | YahooConfig | None:
        """The settings of the network source in use; None for synthetic and file data."""
        if self.source == "exchange":
            return self.exchange
        return self.yahoo if self.source == "yahoo" else None

    @property
    def label(self) -> str:
        """The configured source in one phrase, for messages and lineage."""
        if self.source in ("uri", "file"):
            return redact_uri(self.uri or "")
        fetch = self.fetch
        if fetch is None:
            return "synthetic data"
        venue = f"exchange {fetch.exchange}" if isinstance(fetch, ExchangeConfig) else "yahoo"
        return f"{venue} {', '.join(fetch.symbols)} ({self.frequency})"


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
    """Three chronological periods: train, then selection, then an untouched test period.

    Every choice (hygiene, screening, winners, tuning, early stopping) sees train and selection
    only; the last `test_fraction` of time is scored once per production model. Training rows
    are purged by their label's end; `embargo_bars` more bars of each symbol are dropped before
    each boundary.
    """

    selection_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    embargo_bars: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _room_to_train(self) -> SplitConfig:
        if self.selection_fraction + self.test_fraction > 0.6:
            raise ValueError(
                "selection_fraction + test_fraction must be <= 0.6 to leave training rows"
            )
        return self


class SkillConfig(_Strict):
    """The skill test of every production model on the test period.

    A model has skill when its test average precision beats the no-skill baseline (training
    class frequencies) with a p-value below `alpha` after correcting for the number of groups.
    """

    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    correction: Literal["holm", "bh"] = Field(
        default="holm", description="holm: family-wise error; bh: Benjamini-Hochberg FDR"
    )
    permutations: int = Field(
        default=4999,
        ge=99,
        description="block permutations per p-value; the smallest p is 1/(permutations+1), "
        "which must sit well below alpha / groups for Holm to pass anything",
    )
    bootstraps: int = Field(default=500, ge=50, description="block bootstrap draws per CI")
    block_events: int = Field(
        default=0, ge=0, description="events per block; 0: about the cube root of the count"
    )


class TuneConfig(_Strict):
    """Tune stage 1: every variant with default parameters."""

    num_rounds: int = Field(default=300, ge=1)
    early_stopping: int = Field(default=30, ge=1)
    min_rows: int = Field(
        default=60, ge=10, description="variants with fewer event rows are skipped"
    )
    budget_core_seconds: float | None = Field(
        default=None,
        gt=0,
        description="compute budget of all tune stages in core-seconds; None: unbounded",
    )
    budget_shares: dict[int, float] = Field(
        default_factory=lambda: {1: 0.25, 2: 0.15, 3: 0.35, 4: 0.25},
        description="share of the budget per stage; unspent budget carries forward",
    )
    stage_trials: dict[int, int] = Field(
        default_factory=lambda: {2: 30, 3: 20, 4: 20},
        description="most trials per study in stages 2-4 (the budget may stop them earlier)",
    )
    stage_early_stopping: dict[int, int] = Field(
        default_factory=lambda: {2: 40, 3: 40, 4: 50},
        description="early-stopping patience of stages 2-4 (stage 1 uses early_stopping)",
    )
    elimination: bool = Field(
        default=False,
        description="stage 1 by successive halving: all variants briefly, the best third on",
    )
    elimination_first_rounds: int = Field(default=10, ge=1)
    elimination_eta: int = Field(default=3, ge=2)
    n_folds: int = Field(default=5, ge=2, description="rolling-window CV folds of stage 3")
    top_k: int = Field(default=5, ge=1, description="stage-2 trials that shape stage 3's space")
    adopt_margin: float = Field(
        default=0.005,
        ge=0,
        description="tuned parameters replace the stage-1 defaults only when their selection "
        "AP beats the defaults' by at least this much ...",
    )
    adopt_alpha: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="... and the gain is significant at this level (paired block sign-flip "
        "test on the selection events); 1 switches the test off",
    )
    storage_url: CredentialFreeUri = Field(
        default="", description="shared Optuna storage (PostgreSQL URL); empty: a file per study"
    )

    @field_validator("budget_shares")
    @classmethod
    def _shares(cls, shares: dict[int, float]) -> dict[int, float]:
        if set(shares) != {1, 2, 3, 4} or any(v < 0 for v in shares.values()):
            raise ValueError("needs a share >= 0 for each of the stages 1, 2, 3, 4")
        if sum(shares.values()) > 1.0001:
            raise ValueError("shares must sum to at most 1")
        return shares


class TrainConfig(_Strict):
    """Production training of each group winner."""

    num_rounds: int = Field(default=1000, ge=1)
    early_stopping: int = Field(default=50, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    force_retrain: bool = Field(
        default=False, description="retrain even when the model cache holds an identical fit"
    )


class LightGBMConfig(_Strict):
    """Binning shared by every fit; fewer bins make split finding cheaper on small data."""

    max_bin: int = Field(default=255, ge=15, le=1023)


class ParallelismConfig(_Strict):
    """How work is split: shards per fan-out and threads per LightGBM fit."""

    shards: int = Field(default=12, ge=1, le=100)
    lgbm_threads: int = Field(default=1, ge=1)
    concurrent_fits: int = Field(default=1, ge=1)
    parallel_tasks: int | None = Field(
        default=None,
        ge=1,
        description="tasks of one ParallelFor running at once; None: one per shard",
    )


class RegistryConfig(_Strict):
    """MLflow tracking/registry URI; empty means a SQLite file in the run folder's parent.

    `credentials_secret` (KFP on Kubernetes): the Kubernetes Secret whose `username_key` and
    `password_key` become every task's MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, for
    an MLflow server behind basic-auth (the Helm chart's `mlflow.auth.existingSecret`).
    """

    tracking_uri: CredentialFreeUri = ""
    credentials_secret: str = ""
    username_key: str = "tracking-username"
    password_key: str = "tracking-password"


_DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_VERTEX_ACCELERATOR = re.compile(r"^[A-Z][A-Z0-9_]+$")
_K8S_RESOURCE = re.compile(r"^[a-z0-9.-]+/[a-z0-9.-]+$")
_CLOUD_TRACKING_SCHEMES = ("postgresql", "mysql", "mssql", "http://", "https://", "databricks")


def _key_error(loc: tuple[str | int, ...], value: Any, message: str) -> ValidationError:
    """A validation error located at `loc`, so the loader's message names the key."""
    error = PydanticCustomError("environment", message)
    details = InitErrorDetails(type=error, loc=loc, input=value)
    return ValidationError.from_exception_data("EnvironmentConfig", [details])


class EnvironmentConfig(_Strict):
    """One environment: validated from pipelines/environments/<name>.yaml."""

    name: SafeName
    runner: Literal["local", "kfp", "vertex"] = "local"
    pipeline_root: CredentialFreeUri = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    grid: GridConfig = Field(default_factory=GridConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    screen: ScreenConfig = Field(default_factory=ScreenConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    skill: SkillConfig = Field(default_factory=SkillConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    lightgbm: LightGBMConfig = Field(default_factory=LightGBMConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    parallelism: ParallelismConfig = Field(default_factory=ParallelismConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)

    scope: Literal["local", "cloud"] = Field(
        default="local", description="cloud environments must pin images by digest"
    )
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    node_pools: dict[str, NodePoolConfig] = Field(default_factory=dict)
    kfp: KfpConfig = Field(default_factory=KfpConfig)
    vertex: VertexConfig | None = None
    object_store: ObjectStoreConfig = Field(default_factory=ObjectStoreConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)

    @model_validator(mode="after")
    def _platform(self) -> EnvironmentConfig:
        for problem in self._problems():
            raise _key_error(*problem)
        return self

    def _problems(self) -> list[tuple[tuple[str | int, ...], Any, str]]:
        found: list[tuple[tuple[str | int, ...], Any, str]] = []
        if self.runner == "vertex" and self.vertex is None:
            found.append(
                (
                    ("vertex",),
                    None,
                    "runner 'vertex' needs a vertex section (project, region, service_account)",
                )
            )
        if self.scope == "cloud":
            if self.runner == "local":
                found.append(
                    (
                        ("runner",),
                        self.runner,
                        "a cloud environment runs on 'kfp' or 'vertex', not 'local'",
                    )
                )
            for key in ("cpu", "gpu"):
                image = getattr(self.images, key)
                if not _DIGEST.match(image):
                    found.append(
                        (
                            ("images", key),
                            image,
                            "a cloud environment must pin "
                            "images by digest: <name>@sha256:<64 hex digits>",
                        )
                    )
            if not self.pipeline_root.startswith("gs://"):
                found.append(
                    (
                        ("pipeline_root",),
                        self.pipeline_root,
                        "a cloud environment needs a gs:// pipeline root",
                    )
                )
            uri = self.registry.tracking_uri
            if not uri.startswith(_CLOUD_TRACKING_SCHEMES):
                found.append(
                    (
                        ("registry", "tracking_uri"),
                        uri,
                        "a cloud environment needs "
                        "a shared tracking server: postgresql+psycopg2://... or "
                        "http(s)://<mlflow server>",
                    )
                )
        for stage in STAGES:
            resources: StageResources = getattr(self.resources, stage)
            loc: tuple[str | int, ...] = ("resources", stage)
            kind = resources.accelerator_type
            if resources.node_pool is not None and resources.node_pool not in self.node_pools:
                known = ", ".join(sorted(self.node_pools)) or "none defined"
                found.append(
                    ((*loc, "node_pool"), resources.node_pool, f"not a key of node_pools ({known})")
                )
            if self.runner == "vertex":
                if kind is not None and not _VERTEX_ACCELERATOR.match(kind):
                    found.append(
                        (
                            (*loc, "accelerator_type"),
                            kind,
                            "Vertex AI wants an "
                            "accelerator enum such as NVIDIA_L4 or NVIDIA_TESLA_T4",
                        )
                    )
                if resources.node_pool is not None:
                    found.append(
                        (
                            (*loc, "node_pool"),
                            resources.node_pool,
                            "Vertex AI has no node pools; use accelerator_type",
                        )
                    )
            elif kind is not None and not _K8S_RESOURCE.match(kind):
                found.append(
                    (
                        (*loc, "accelerator_type"),
                        kind,
                        "Kubernetes wants an extended resource name such as nvidia.com/gpu",
                    )
                )
        if self.pipeline_root.startswith("minio://") and not self.object_store.endpoint_url:
            found.append(
                (
                    ("object_store", "endpoint_url"),
                    self.object_store.endpoint_url,
                    "a minio:// pipeline root needs the store's endpoint, "
                    "e.g. http://minio-service.kubeflow:9000",
                )
            )
        if self.object_store.credentials_secret and self.runner != "kfp":
            found.append(
                (
                    ("object_store", "credentials_secret"),
                    self.object_store.credentials_secret,
                    "a Kubernetes Secret reaches tasks only on runner 'kfp'; leave it empty",
                )
            )
        if self.runner == "vertex" and self.node_pools:
            found.append(
                (
                    ("node_pools",),
                    sorted(self.node_pools),
                    "Vertex AI has no node pools; leave node_pools empty",
                )
            )
        return found

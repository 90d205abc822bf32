"""Pydantic models of where an environment runs: images, resources, node pools, KFP, Vertex,
the object store and promotion."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from alphafactory.config._strict import Strict as _Strict
from alphafactory.names import CredentialFreeUri, SafeName
from alphafactory.registry.grades import GRADES

_CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")
_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")

STAGES: tuple[str, ...] = ("default", "prepare", "screen", "tune", "train", "infer")
"""Resource stages: `default` covers the small control and fan-in tasks."""


class ImagesConfig(_Strict):
    """Runtime images; cloud environments must pin them by digest (`name@sha256:...`)."""

    cpu: str = "ghcr.io/alphafactory/alphafactory-cpu:0.1.0"
    gpu: str = "ghcr.io/alphafactory/alphafactory-gpu:0.1.0"


class StageResources(_Strict):
    """What one stage's tasks ask for. Unset values leave the backend's defaults.

    On Kubernetes KFP the accelerator is a resource name (`nvidia.com/gpu`); on Vertex AI it
    is an accelerator enum (`NVIDIA_L4`) and Vertex picks the machine shape from cpu/memory.
    """

    cpu: str | None = Field(default=None, description="CPU limit: '2', '500m'")
    memory: str | None = Field(default=None, description="memory limit: '8Gi', '512Mi'")
    image: Literal["cpu", "gpu"] = "cpu"
    accelerator_type: str | None = None
    accelerator_count: int = Field(default=0, ge=0)
    node_pool: str | None = Field(default=None, description="a name from node_pools")

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str | None) -> str | None:
        if value is not None and not _CPU.match(value):
            raise ValueError("use a number of cores such as '2', '0.5' or '500m'")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not _MEMORY.match(value):
            raise ValueError("use a quantity such as '8Gi', '512Mi' or '4G'")
        return value

    @model_validator(mode="after")
    def _accelerator(self) -> StageResources:
        if self.accelerator_count and not self.accelerator_type:
            raise ValueError("accelerator_count > 0 needs accelerator_type")
        if self.accelerator_type and not self.accelerator_count:
            raise ValueError("accelerator_type is set but accelerator_count is 0")
        return self


class ResourcesConfig(_Strict):
    """Per-stage resources; `default` applies to the control and fan-in tasks."""

    default: StageResources = Field(default_factory=StageResources)
    prepare: StageResources = Field(default_factory=StageResources)
    screen: StageResources = Field(default_factory=StageResources)
    tune: StageResources = Field(default_factory=StageResources)
    train: StageResources = Field(default_factory=StageResources)
    backtest: StageResources = Field(default_factory=StageResources)
    infer: StageResources = Field(default_factory=StageResources)


class TolerationConfig(_Strict):
    """A Kubernetes toleration for a tainted node pool (e.g. GPU nodes)."""

    key: str = Field(min_length=1)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"


class NodePoolConfig(_Strict):
    """A Kubernetes node pool: the labels that select it and the taints it carries."""

    node_selector: dict[str, str] = Field(min_length=1)
    tolerations: list[TolerationConfig] = Field(default_factory=list)


class KfpConfig(_Strict):
    """Kubeflow Pipelines submission; the `KFP_HOST` environment variable overrides `host`."""

    host: CredentialFreeUri = ""
    namespace: str = "kubeflow"
    experiment: str = "alphafactory"
    service_account: str = ""
    enable_caching: bool = False


class VertexConfig(_Strict):
    """Vertex AI Pipelines submission."""

    project: str = Field(min_length=1)
    region: str = Field(min_length=1)
    service_account: str = ""
    network: str = Field(default="", description="projects/<number>/global/networks/<name>")
    labels: dict[str, str] = Field(default_factory=dict)
    enable_caching: bool = False


class ObjectStoreConfig(_Strict):
    """The S3-compatible store behind a `minio://` pipeline root (KFP's MinIO on kind).

    Compiled specs give every task `AWS_ENDPOINT_URL` from `endpoint_url` and, on KFP, the
    access keys of the `credentials_secret` Kubernetes Secret as `AWS_ACCESS_KEY_ID` and
    `AWS_SECRET_ACCESS_KEY`.
    """

    endpoint_url: CredentialFreeUri = Field(default="", pattern=r"^(https?://\S+)?$")
    credentials_secret: str = Field(default="", pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$")
    access_key_field: str = Field(default="accesskey", min_length=1)
    secret_key_field: str = Field(default="secretkey", min_length=1)


class PromotionConfig(_Strict):
    """GitOps promotion: the overlay this environment deploys and its promotion gates.

    Promoting this environment's images needs every champion in its registry graded
    `min_grade` or better and, for each backtest gate that is set (None: no gate), a
    walk-forward backtest over the test period that passes it:

    * `min_deflated_sharpe`: the deflated Sharpe ratio's probability, in (0, 1), at least this;
    * `max_drawdown`: the backtest's maximum drawdown, a fraction in (0, 1], at most this;
    * `min_trades`: the backtest's closed trades, at least this (>= 1).

    A NaN figure fails its gate; a champion without backtest metrics fails every gate.

    `promoted_from` and `source_spec_sha256` are written by `alphafactory promote`: the
    environment the images came from and the SHA-256 of that environment's compiled spec.
    """

    overlay: SafeName | None = Field(default=None, description="manifests/overlays/<overlay>")
    min_grade: str = "B"
    # strict: a gate is a number, never a string or a boolean (`min_trades: yes` is not 1)
    min_deflated_sharpe: float | None = Field(default=None, gt=0, lt=1, strict=True)
    max_drawdown: float | None = Field(default=None, gt=0, le=1, strict=True)
    min_trades: int | None = Field(default=None, ge=1, strict=True)
    promoted_from: SafeName | None = None
    source_spec_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("min_grade")
    @classmethod
    def _grade(cls, value: str) -> str:
        if value not in GRADES:
            raise ValueError(f"unknown grade; use one of {', '.join(GRADES)}")
        return value

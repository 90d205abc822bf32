"""Vertex AI Model Registry publishing, offline: the real SDK builds the request and only the
model service's network calls are faked (upload_model; get_model, which the SDK uses to look
up the parent model and to read the uploaded version back; list_model_versions with a
`labels.<key>="<value>"` filter, which finds a run's earlier upload)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import _registry as fsspec_implementations
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform
from google.cloud.aiplatform_v1.services.model_service import ModelServiceClient
from google.cloud.aiplatform_v1.types import model as gca_model
from google.cloud.aiplatform_v1.types import model_service

from alphafactory.cloud import label_value, publish_to_vertex, vertex_model_id
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import ConfigError

PROJECT, REGION = "p", "europe-west4"
IMAGE = "europe-docker.pkg.dev/p/alphafactory/cpu@sha256:" + "a" * 64
PARENT = f"projects/{PROJECT}/locations/{REGION}/models"


@dataclass
class FakeModelService:
    """Vertex's model service as far as upload needs it: existing models and uploads."""

    existing: set[str] = field(default_factory=set)
    uploads: list[dict[str, Any]] = field(default_factory=list)

    def get_model(self, request: Any = None, *, name: str = "", **_: Any) -> Any:
        name = name or request.name
        base = name.split("@", 1)[0]
        if base.rsplit("/", 1)[-1] not in self.existing:
            raise NotFound(f"{name} not found")
        return gca_model.Model(name=base, display_name="m", version_id="1")

    def list_model_versions(self, request: Any = None, **_: Any) -> list[Any]:
        key, value = request.filter.removeprefix("labels.").split("=", 1)
        model_id = request.name.rsplit("/", 1)[-1]
        return [
            gca_model.Model(name=f"{PARENT}/{model_id}", version_id=str(number))
            for number, body in enumerate(self.uploads, start=1)
            if (body["model_id"] or body["parent_model"].rsplit("/", 1)[-1]) == model_id
            and body["model"]["labels"].get(key) == value.strip('"')
        ]

    def upload_model(self, request: Any = None, **_: Any) -> Any:
        body = type(request).to_dict(request)
        self.uploads.append(body)
        model_id = body["model_id"] or body["parent_model"].rsplit("/", 1)[-1]
        self.existing.add(model_id)
        response = model_service.UploadModelResponse(
            model=f"{PARENT}/{model_id}", model_version_id=str(len(self.uploads))
        )
        return SimpleNamespace(
            operation=SimpleNamespace(name=f"{PARENT}/{model_id}/operations/1"),
            result=lambda *a, **k: response,
        )


class FakeGCS(MemoryFileSystem):
    """An in-memory stand-in for gcsfs, so `gs://` run folders work offline."""

    protocol = ("gs",)
    store: dict[str, Any] = {}  # noqa: RUF012 - fsspec's MemoryFileSystem keeps class state
    pseudo_dirs = [""]  # noqa: RUF012


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> FakeModelService:
    fake = FakeModelService()
    monkeypatch.setitem(fsspec_implementations, "gs", FakeGCS)
    monkeypatch.setattr(ModelServiceClient, "upload_model", fake.upload_model)
    monkeypatch.setattr(ModelServiceClient, "get_model", fake.get_model)
    monkeypatch.setattr(ModelServiceClient, "list_model_versions", fake.list_model_versions)
    aiplatform.init(project=PROJECT, location=REGION, credentials=AnonymousCredentials())
    return fake


def _config(vertex: bool = True) -> EnvironmentConfig:
    settings: dict[str, Any] = {"name": "vertex-test", "images": {"cpu": IMAGE}}
    if vertex:
        settings |= {
            "runner": "vertex",
            "vertex": {"project": PROJECT, "region": REGION, "labels": {"Team": "Quant.Research"}},
        }
    return EnvironmentConfig.model_validate(settings)


def _run_dir(groups: list[str]) -> str:
    run_dir = f"gs://vertex-{uuid.uuid4().hex[:8]}/run-1"
    for group in groups:
        with fsspec.open(f"{run_dir}/train/models/{group}.zip", "w") as handle:
            handle.write(f"tree for {group}\n")
    return run_dir


def _record(group: str, semver: str, grade: str, champion: bool = True) -> dict[str, Any]:
    return {
        "model_id": f"alphafactory.{group}/1",
        "display_name": f"lightgbm_v{semver}_grade_{grade}_ap_0.55",
        "semver": semver,
        "grade": grade,
        "champion": champion,
    }


def test_first_champion_creates_the_group_model(service: FakeModelService) -> None:
    run_dir = _run_dir(["BTC_w3_high"])
    names = publish_to_vertex(
        _config(),
        {"BTC_w3_high": _record("BTC_w3_high", "1.0.0", "A+")},
        run_dir=run_dir,
        credentials=AnonymousCredentials(),
    )
    assert names == {"BTC_w3_high": f"{PARENT}/alphafactory-btc_w3_high"}
    [body] = service.uploads
    assert body["parent"] == f"projects/{PROJECT}/locations/{REGION}"
    assert body["model_id"] == "alphafactory-btc_w3_high"
    assert body["parent_model"] == ""
    model = body["model"]
    assert model["display_name"] == "lightgbm_v1.0.0_grade_A+_ap_0.55"
    assert model["artifact_uri"] == f"{run_dir}/infer/vertex/BTC_w3_high"
    assert model["container_spec"]["image_uri"] == IMAGE
    assert model["labels"] == {
        "team": "quant-research",
        "managed_by": "alphafactory",
        "grade": "a_plus",
        "semver": "1-0-0",
        "group": "btc_w3_high",
        "pipeline_run": "run-1",
    }
    assert set(model["version_aliases"]) == {"champion", "default"}
    staged = f"{run_dir}/infer/vertex/BTC_w3_high/model.zip"
    with fsspec.open(staged, "r") as handle:
        assert handle.read() == "tree for BTC_w3_high\n"


def test_new_champion_of_a_known_group_is_a_new_version(service: FakeModelService) -> None:
    service.existing.add("alphafactory-eth_w10_low")
    published = {
        "ETH_w10_low": _record("ETH_w10_low", "1.0.1", "B-"),
        "BTC_w3_low": _record("BTC_w3_low", "1.0.1", "C", champion=False),
    }
    publish_to_vertex(_config(), published, run_dir=_run_dir(["ETH_w10_low", "BTC_w3_low"]))
    [body] = service.uploads  # the non-champion is not published
    assert body["parent_model"] == f"{PARENT}/alphafactory-eth_w10_low"
    assert body["model_id"] == ""
    assert body["model"]["labels"]["grade"] == "b_minus"
    assert body["model"]["labels"]["semver"] == "1-0-1"


def test_publishing_a_run_again_uploads_nothing_twice(service: FakeModelService) -> None:
    run_dir = _run_dir(["ETH_w10_low"])
    published = {"ETH_w10_low": _record("ETH_w10_low", "1.0.0", "A")}
    first = publish_to_vertex(_config(), published, run_dir=run_dir)
    again = publish_to_vertex(_config(), published, run_dir=run_dir)
    assert len(service.uploads) == 1
    assert again == {"ETH_w10_low": f"{PARENT}/alphafactory-eth_w10_low@1"}
    assert first["ETH_w10_low"] == f"{PARENT}/alphafactory-eth_w10_low"
    other_run = run_dir.rsplit("/", 1)[0] + "/run-2"
    with fsspec.open(f"{other_run}/train/models/ETH_w10_low.zip", "w") as handle:
        handle.write("tree\n")
    publish_to_vertex(_config(), published, run_dir=other_run)
    assert len(service.uploads) == 2
    assert service.uploads[1]["parent_model"] == f"{PARENT}/alphafactory-eth_w10_low"
    assert service.uploads[1]["model"]["labels"]["pipeline_run"] == "run-2"


def test_project_and_region_as_arguments_without_a_vertex_section(
    service: FakeModelService,
) -> None:
    publish_to_vertex(
        _config(vertex=False),
        {"SOL_w5_high": _record("SOL_w5_high", "2.0.0", "S")},
        run_dir=_run_dir(["SOL_w5_high"]),
        project=PROJECT,
        region=REGION,
        serving_image="europe-docker.pkg.dev/p/serve:1",
    )
    [body] = service.uploads
    assert body["model"]["container_spec"]["image_uri"] == "europe-docker.pkg.dev/p/serve:1"
    assert body["model"]["labels"]["grade"] == "s"


def test_run_folder_must_be_on_gcs(service: FakeModelService) -> None:
    with pytest.raises(ConfigError, match=r"run folder memory://x/r is not on GCS"):
        publish_to_vertex(_config(), {"G": _record("G", "1.0.0", "A")}, run_dir="memory://x/r")
    assert service.uploads == []


def test_missing_project_names_the_fix(service: FakeModelService) -> None:
    with pytest.raises(ConfigError, match=r"no vertex.project / vertex.region: add a vertex"):
        publish_to_vertex(
            _config(vertex=False), {"G": _record("G", "1.0.0", "A")}, run_dir=_run_dir(["G"])
        )
    assert service.uploads == []


def test_nothing_to_publish_contacts_nothing(service: FakeModelService) -> None:
    published = {"G": _record("G", "1.0.0", "A", champion=False)}
    assert publish_to_vertex(_config(vertex=False), published, run_dir="gs://nowhere/r") == {}
    assert service.uploads == []


@pytest.mark.parametrize(
    ("text", "label"),
    [("A+", "a_plus"), ("B-", "b_minus"), ("1.10.0", "1-10-0"), ("BTC_w3_high", "btc_w3_high")],
)
def test_label_values_are_label_safe(text: str, label: str) -> None:
    assert label_value(text) == label


def test_vertex_model_id_is_stable_and_valid() -> None:
    assert vertex_model_id("BTC_w50_low") == "alphafactory-btc_w50_low"
    assert len(vertex_model_id("X" * 100)) == 63

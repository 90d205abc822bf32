"""Submission requests built for real, offline: only the final HTTP/API call is faked."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from alphafactory.errors import ConfigError
from pipelines import submit as submission

RUN = "alphafactory-test-run"


class FakeKfpServer:
    """Stands in for the KFP REST API under kfp_server_api's one HTTP entry point."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.host = ""

    def request(self, method: str, url: str, query_params: Any = None, headers: Any = None,
                body: Any = None, **_: Any) -> Any:  # fmt: skip
        path = url.split("/apis/v2beta1", 1)[1]
        self.calls.append((method, path, body))
        payload: dict[str, Any] = {}
        if path == "/healthz":
            payload = {"multi_user": False}
        elif (method, path) == ("POST", "/experiments"):
            payload = {"experiment_id": "exp-1", "display_name": body["display_name"]}
        elif (method, path) == ("POST", "/runs"):
            payload = {"run_id": "run-1", "display_name": body["display_name"]}
        elif (method, path) == ("POST", "/recurringruns"):
            payload = {"recurring_run_id": "rr-1", "display_name": body["display_name"]}
        response = mock.Mock(status=200, reason="OK", data=json.dumps(payload).encode())
        response.getheader.return_value = "application/json"
        response.getheaders.return_value = {"Content-Type": "application/json"}
        return response

    def body(self, method: str, path: str) -> Any:
        return next(b for m, p, b in self.calls if (m, p) == (method, path))


PRODUCTION_ROOT = "gs://acme-production/pipeline-root"


@pytest.fixture
def kfp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKfpServer]:
    """The fake API behind a real listening socket (submit probes the host first), with a
    real bucket for production's placeholder pipeline_root."""
    import socket

    import kfp_server_api.rest

    server = FakeKfpServer()
    monkeypatch.setattr(kfp_server_api.rest.RESTClientObject, "request",
                        lambda self, *a, **k: server.request(*a, **k))  # fmt: skip
    monkeypatch.delenv("KFP_HOST", raising=False)
    monkeypatch.setenv("ALPHAFACTORY_PIPELINE_ROOT", PRODUCTION_ROOT)
    with socket.create_server(("127.0.0.1", 0)) as listening:
        server.host = f"http://127.0.0.1:{listening.getsockname()[1]}"
        yield server


def _spec(path: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(Path(path).read_text()))


def _caching(spec: dict[str, Any]) -> set[bool]:
    """The enableCache values of every task (the SDK rewrites them from enable_caching)."""
    found: set[bool] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "cachingOptions" in node:
                found.add(bool(node.pop("cachingOptions").get("enableCache")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found


def test_kfp_submit_sends_the_compiled_spec_with_run_root(
    kfp_server: FakeKfpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = submission.build_request("production", run_name=RUN)
    assert request.host == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    monkeypatch.setenv("KFP_HOST", kfp_server.host)
    request = submission.build_request("production", run_name=RUN)

    assert submission.submit(request) == "run-1"

    assert [(m, p) for m, p, _ in kfp_server.calls] == [
        ("GET", "/healthz"),  # kfp.Client's constructor (single-user detection)
        ("GET", "/experiments"),  # create_experiment looks the name up first
        ("POST", "/experiments"),
        ("POST", "/runs"),
    ]
    assert kfp_server.body("POST", "/experiments")["display_name"] == "alphafactory-production"
    run = kfp_server.body("POST", "/runs")
    assert run["display_name"] == RUN
    assert run["experiment_id"] == "exp-1"
    assert run["service_account"] == "pipeline-runner"
    assert run["runtime_config"]["parameters"] == {"run_root": PRODUCTION_ROOT}
    spec, platform = _spec(request.spec_path)
    sent_spec = run["pipeline_spec"]["pipeline_spec"]
    assert _caching(sent_spec) == {False}  # the env's kfp.enable_caching: false
    _caching(spec)
    assert sent_spec == spec
    assert run["pipeline_spec"]["platform_spec"] == platform
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    selectors = [name for name, settings in executors.items() if "nodeSelector" in settings]
    tune_stages = ["exec-tune-stage", "exec-tune-stage-2", "exec-tune-stage-3"]
    assert sorted(selectors) == ["exec-train-shard", *tune_stages, "exec-tune-stage-4"]


def test_kfp_host_comes_from_the_environment_variable(
    kfp_server: FakeKfpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_HOST", kfp_server.host)
    monkeypatch.delenv("ALPHAFACTORY_PIPELINE_ROOT")
    request = submission.build_request("local-integration", run_name=RUN)
    assert request.host == kfp_server.host
    assert request.parameters == {"run_root": "minio://mlpipeline/alphafactory"}
    assert submission.submit(request) == "run-1"
    assert kfp_server.body("POST", "/runs")["display_name"] == RUN


def test_kfp_host_with_credentials_is_refused_without_printing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KFP_HOST", "http://admin:hunter2@localhost:8888")
    with pytest.raises(ConfigError) as raised:
        submission.build_request("local-integration", run_name=RUN)
    message = str(raised.value)
    assert message.startswith("KFP_HOST=http://admin:***@localhost:8888: ")
    assert "hunter2" not in message and "\n" not in message


def test_kfp_schedule_creates_a_cron_recurring_run(
    kfp_server: FakeKfpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_HOST", kfp_server.host)
    request = submission.build_request("production", run_name=RUN, cron="0 0 2 * * *")
    assert submission.schedule(request) == "rr-1"
    body = kfp_server.body("POST", "/recurringruns")
    assert body["display_name"] == RUN
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert int(body["max_concurrency"]) == 1
    assert body["mode"] == "ENABLE"
    assert body["runtime_config"]["parameters"]["run_root"] == PRODUCTION_ROOT


@pytest.fixture
def vertex_api() -> Iterator[list[Any]]:
    """Patch only the bucket check and the create call of the Vertex API client."""
    from google.cloud.aiplatform import pipeline_jobs

    sent: list[Any] = []

    def create_pipeline_job(*, parent: str, pipeline_job: Any, pipeline_job_id: str,
                            timeout: Any = None) -> Any:  # fmt: skip
        sent.append((parent, pipeline_job, pipeline_job_id))
        pipeline_job.name = f"{parent}/pipelineJobs/{pipeline_job_id}"
        return pipeline_job

    with mock.patch.object(
        pipeline_jobs.gcs_utils, "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist"
    ):
        yield sent, create_pipeline_job  # type: ignore[misc]


def test_vertex_submit_builds_the_pipeline_job(vertex_api: Any) -> None:
    from google.auth.credentials import AnonymousCredentials

    sent, create = vertex_api
    request = submission.build_request("staging", run_name=RUN)
    job = submission.vertex_job(request, credentials=AnonymousCredentials())
    body = submission.vertex_job_body(job)
    assert body["display_name"] == RUN
    assert body["labels"] == {"app": "alphafactory", "env": "staging", "team": "quant-research"}
    assert body["runtime_config"]["gcs_output_directory"] == request.pipeline_root
    assert body["runtime_config"]["parameter_values"] == {"run_root": request.pipeline_root}
    assert _caching(body["pipeline_spec"]) == {False}

    with mock.patch.object(job.api_client, "create_pipeline_job", side_effect=create):
        name = submission.submit_vertex(request, job)
    parent, sent_job, job_id = sent[0]
    assert parent == "projects/replace-me-gcp-project/locations/europe-west4"
    assert job_id == RUN
    assert name == f"{parent}/pipelineJobs/{RUN}"
    assert sent_job.service_account.startswith("alphafactory-staging@")
    assert sent_job.network == "projects/000000000000/global/networks/alphafactory-vpc"


def test_vertex_loads_every_vertex_spec_offline() -> None:
    from google.auth.credentials import AnonymousCredentials

    for env in ("central-dev", "integration-test", "staging"):
        request = submission.build_request(env, run_name=RUN)
        job = submission.vertex_job(request, credentials=AnonymousCredentials())
        spec = submission.vertex_job_body(job)["pipeline_spec"]
        executors = spec["deploymentSpec"]["executors"]
        accelerators = {e["container"]["resources"].get("accelerator", {}).get("type")
                        for e in executors.values()}  # fmt: skip
        assert accelerators - {None} <= {"NVIDIA_L4", "NVIDIA_TESLA_T4"}


def test_vertex_schedule_sends_cron_and_job(vertex_api: Any) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import pipeline_job_schedules

    request = submission.build_request("central-dev", run_name=RUN, cron="0 3 * * 1")
    job = submission.vertex_job(request, credentials=AnonymousCredentials())
    captured: dict[str, Any] = {}

    def create_schedule(self: Any, *, parent: str, schedule: Any, timeout: Any = None) -> Any:
        captured.update(parent=parent, schedule=schedule)
        schedule.name = f"{parent}/schedules/1"
        return schedule

    client_type = type(pipeline_job_schedules.PipelineJobSchedule._instantiate_client(
        location="europe-west4", credentials=AnonymousCredentials()))  # fmt: skip
    with mock.patch.object(client_type, "create_schedule", create_schedule, create=True):
        name = submission.schedule_vertex(request, job)
    schedule = captured["schedule"]
    assert name.endswith("/schedules/1")
    assert schedule.cron == "0 3 * * 1"
    assert schedule.max_concurrent_run_count == 1
    pipeline_job = schedule.create_pipeline_job_request.pipeline_job
    assert pipeline_job.service_account.startswith("alphafactory-dev@")
    assert pipeline_job.runtime_config.gcs_output_directory == request.pipeline_root


def test_refusals() -> None:
    with pytest.raises(ConfigError, match="runs locally"):
        submission.build_request("local-dev")
    with pytest.raises(ConfigError, match="needs --cron"):
        submission.schedule(submission.build_request("staging", run_name=RUN))
    with pytest.raises(ConfigError, match="run name"):
        submission.build_request("staging", run_name="Bad_Name")


def test_stale_or_missing_spec_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines" / "compiled"
    with pytest.raises(ConfigError, match="does not exist"):
        submission.build_request("staging", root=tmp_path)
    folder.mkdir(parents=True)
    (folder / "staging.yaml").write_text("# stale\n")
    with pytest.raises(ConfigError, match="is stale"):
        submission.build_request("staging", root=tmp_path)

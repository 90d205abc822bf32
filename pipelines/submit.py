"""Submit the compiled pipeline of an environment: kfp.Client for KFP, PipelineJob for Vertex.

A request is built first (`kfp_request` / `vertex_request`, plain data that `--dry-run`
prints as JSON); `submit`/`schedule` then turn it into the SDK call. The spec submitted is
the golden file `pipelines/compiled/<env>.yaml`, refused when it is missing or stale.
"""

import hashlib
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from alphafactory.config import environment_path, load_environment
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import ConfigError, first_line
from alphafactory.names import CREDENTIALS_HINT, redact_uri, uri_has_credentials
from pipelines.local import compiled_path, compiled_text

KFP_HOST_VARIABLE = "KFP_HOST"
#: placeholders the packaged environments ship with (`replace-me-gcp-project`,
#: `gs://REPLACE_ME_BUCKET-…`, project number `000000000000`)
PLACEHOLDER = re.compile(r"replace[-_]me|\b0{12}\b", re.IGNORECASE)
#: seconds a TCP probe of an endpoint waits before the call is refused as unreachable
CONNECT_TIMEOUT_S = 3.0
CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,#-]+")
CRON_FORMATS = {
    "kfp": (6, "KFP needs 6 fields with seconds, e.g. '0 0 2 * * *' (02:00 daily)"),
    "vertex": (
        5,
        "Vertex AI needs 5 standard fields, e.g. '0 2 * * *' or 'TZ=Europe/Berlin 0 2 * * *'",
    ),
}
GOOGLE_CREDENTIALS_FIX = (
    "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS "
    "to a service-account key file"
)
T = TypeVar("T")


@dataclass(frozen=True)
class SubmitRequest:
    """Everything one submission sends, independent of the SDK (printed by --dry-run)."""

    env: str
    env_file: str
    runner: str
    run_name: str
    spec_path: str
    spec_sha256: str
    pipeline_root: str
    parameters: dict[str, str]
    enable_caching: bool
    service_account: str
    # KFP only
    host: str = ""
    experiment: str = ""
    namespace: str = ""
    # Vertex only
    project: str = ""
    region: str = ""
    network: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    # schedule only
    cron: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def default_run_name(env: str, now: datetime | None = None) -> str:
    """`alphafactory-<env>-<UTC stamp>`: a valid KFP run name and Vertex job id."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"alphafactory-{env}-{stamp}"


def build_request(
    env: str,
    *,
    run_name: str | None = None,
    cron: str = "",
    root: Path | None = None,
    check_fresh: bool = True,
) -> SubmitRequest:
    """Validate the environment and its compiled spec, and describe the submission."""
    config = load_environment(env)
    env_file = str(environment_path(env))
    if config.runner == "local":
        raise ConfigError(
            f"environment '{config.name}' runs locally (runner: local); use `alphafactory run`"
        )
    spec = compiled_path(config.name, root)
    if not spec.is_file():
        raise ConfigError(
            f"{spec} does not exist: run `alphafactory compile --env {config.name}` first"
        )
    text = spec.read_text()
    if check_fresh and text != compiled_text(load_environment(env, use_env_vars=False)):
        raise ConfigError(
            f"{spec} is stale (the environment or the pipeline changed since it was compiled): "
            f"run `alphafactory compile --env {config.name}` and commit the result"
        )
    name = run_name or default_run_name(config.name)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", name):
        raise ConfigError(f"run name {name!r}: use lowercase letters, digits and '-' (≤128)")
    if cron:
        check_cron(config.runner, cron)
    common: dict[str, Any] = {
        "env": config.name,
        "env_file": env_file,
        "runner": config.runner,
        "run_name": name,
        "spec_path": str(spec),
        "spec_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "pipeline_root": config.pipeline_root,
        "parameters": {"run_root": config.pipeline_root},
        "cron": cron,
    }
    if config.runner == "kfp":
        return _kfp_request(config, common)
    return _vertex_request(config, common)


def _kfp_request(config: EnvironmentConfig, common: dict[str, Any]) -> SubmitRequest:
    host = os.environ.get(KFP_HOST_VARIABLE) or config.kfp.host
    if not host:
        raise ConfigError(
            f"no KFP host for '{config.name}': set {KFP_HOST_VARIABLE} or kfp.host in its YAML"
        )
    if uri_has_credentials(host):
        raise ConfigError(f"{KFP_HOST_VARIABLE}={redact_uri(host)}: {CREDENTIALS_HINT}")
    return SubmitRequest(
        **common,
        enable_caching=config.kfp.enable_caching,
        service_account=config.kfp.service_account,
        host=host,
        experiment=config.kfp.experiment,
        namespace=config.kfp.namespace,
    )


def _vertex_request(config: EnvironmentConfig, common: dict[str, Any]) -> SubmitRequest:
    vertex = config.vertex
    assert vertex is not None  # the model validator requires it for runner 'vertex'
    return SubmitRequest(
        **common,
        enable_caching=vertex.enable_caching,
        service_account=vertex.service_account,
        project=vertex.project,
        region=vertex.region,
        network=vertex.network,
        labels=dict(vertex.labels),
    )


# --- KFP ---------------------------------------------------------------------------------


def kfp_client(request: SubmitRequest) -> Any:
    """A kfp.Client for the request's host.

    kfp.Client calls the server's healthz endpoint while it is constructed (to detect a
    multi-user deployment) unless a namespace other than 'kubeflow' is given.
    """
    import warnings

    import kfp

    with warnings.catch_warnings():  # "only works with KFP v2.0.0-beta.2 and later"
        warnings.simplefilter("ignore", FutureWarning)
        return kfp.Client(host=request.host, namespace=request.namespace)


def submit_kfp(request: SubmitRequest, client: Any | None = None) -> str:
    """Create a run from the compiled package; returns the run id."""
    client = client or kfp_client(request)
    result = client.create_run_from_pipeline_package(
        request.spec_path,
        arguments=request.parameters,
        run_name=request.run_name,
        experiment_name=request.experiment,
        enable_caching=request.enable_caching,
        service_account=request.service_account or None,
    )
    return str(result.run_id)


def schedule_kfp(request: SubmitRequest, client: Any | None = None) -> str:
    """Create a recurring run (cron) from the compiled package; returns its id."""
    client = client or kfp_client(request)
    experiment = client.create_experiment(request.experiment)
    recurring = client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name=request.run_name,
        cron_expression=request.cron,
        pipeline_package_path=request.spec_path,
        params=request.parameters,
        enable_caching=request.enable_caching,
        service_account=request.service_account or None,
        max_concurrency=1,
    )
    return str(recurring.recurring_run_id)


# --- Vertex AI -----------------------------------------------------------------------------


def vertex_job(request: SubmitRequest, credentials: Any | None = None) -> Any:
    """The aiplatform.PipelineJob of the request, built offline (no network call)."""
    from google.cloud import aiplatform

    aiplatform.init(project=request.project, location=request.region, credentials=credentials)
    return aiplatform.PipelineJob(
        display_name=request.run_name,
        template_path=request.spec_path,
        pipeline_root=request.pipeline_root,
        parameter_values=dict(request.parameters),
        enable_caching=request.enable_caching,
        labels=dict(request.labels),
        job_id=request.run_name,
        project=request.project,
        location=request.region,
        credentials=credentials,
    )


def vertex_job_body(job: Any) -> dict[str, Any]:
    """The PipelineJob resource that `submit` sends, as a dict."""
    resource = job._gca_resource
    body: dict[str, Any] = type(resource).to_dict(resource)
    return body


def submit_vertex(request: SubmitRequest, job: Any | None = None) -> str:
    """Submit the PipelineJob with the service account and network; returns its name."""
    job = job or vertex_job(request)
    job.submit(service_account=request.service_account or None, network=request.network or None)
    return str(job.resource_name)


def schedule_vertex(request: SubmitRequest, job: Any | None = None) -> str:
    """Create a PipelineJobSchedule (cron) for the PipelineJob; returns its name."""
    job = job or vertex_job(request)
    schedule = job.create_schedule(
        cron=request.cron,
        display_name=request.run_name,
        max_concurrent_run_count=1,
        service_account=request.service_account or None,
        network=request.network or None,
    )
    return str(schedule.resource_name)


def dry_run_payload(request: SubmitRequest) -> dict[str, Any]:
    """The request and, for Vertex, the PipelineJob body built offline (anonymous credentials)."""
    payload: dict[str, Any] = {"request": asdict(request)}
    if request.runner == "vertex":
        from google.auth.credentials import AnonymousCredentials

        body = vertex_job_body(vertex_job(request, credentials=AnonymousCredentials()))
        body.pop("pipelineSpec", None)  # the spec is the file named in the request
        body.pop("pipeline_spec", None)
        payload["pipeline_job"] = body
        payload["submit"] = {
            "service_account": request.service_account,
            "network": request.network,
        }
    return payload


def check_cron(runner: str, cron: str) -> None:
    """Refuse a cron expression with the wrong field count or characters for `runner`."""
    count, example = CRON_FORMATS.get(runner, CRON_FORMATS["vertex"])
    fields = cron.split()
    if runner == "vertex" and fields and fields[0].startswith(("TZ=", "CRON_TZ=")):
        fields = fields[1:]
    bad = [f for f in fields if not CRON_FIELD.fullmatch(f)]
    if len(fields) != count or bad:
        found = f"has {len(fields)} fields" if len(fields) != count else f"has field {bad[0]!r}"
        raise ConfigError(f"--cron {cron!r} {found}: {example}")


#: request field -> (environment field, what belongs there)
_CHECKED_FIELDS = {
    "pipeline_root": ("pipeline_root", "bucket, or set ALPHAFACTORY_PIPELINE_ROOT"),
    "project": ("vertex.project", "GCP project id"),
    "service_account": ("service_account", "service account"),
    "network": ("vertex.network", "network, projects/<project number>/global/networks/<name>"),
    "host": ("kfp.host", "KFP API endpoint, or set KFP_HOST"),
}


def placeholder_problem(request: SubmitRequest) -> str | None:
    """One line naming each placeholder value a real call would send, or None."""
    found = []
    for name, (setting, what) in _CHECKED_FIELDS.items():
        value = str(getattr(request, name))
        if PLACEHOLDER.search(value):
            if setting == "service_account":
                setting = f"{request.runner}.service_account"
            found.append(f"{setting} {value!r} (your {what})")
    if not found:
        return None
    return (
        f"{request.env_file} still holds placeholder values: {'; '.join(found)}; "
        "replace them in that file before a real submit or schedule"
    )


def refuse_placeholders(request: SubmitRequest) -> None:
    if problem := placeholder_problem(request):
        raise ConfigError(problem)


def check_reachable(uri: str, *, what: str, fix: str, default_port: int = 80) -> None:
    """Refuse in one line, within CONNECT_TIMEOUT_S, when nothing accepts TCP at `uri`."""
    parts = urlsplit(uri if "//" in uri else f"//{uri}")
    if not parts.hostname:
        return
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, default_port)
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot reach {what} at {redact_uri(uri)} ({reason}): {fix}") from None


@contextmanager
def _cloud_errors(request: SubmitRequest) -> Iterator[None]:
    """Turn SDK connection and credential failures into one-line ConfigErrors."""
    where = (
        f"KFP at {redact_uri(request.host)}"
        if request.runner == "kfp"
        else f"Vertex AI (project {request.project}, region {request.region})"
    )
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(_explain(exc, request, where)) from None


def _explain(exc: Exception, request: SubmitRequest, where: str) -> str:
    name = type(exc).__name__
    status = getattr(exc, "status", None) or getattr(exc, "code", None)
    if "Credentials" in name or "RefreshError" in name or "TransportError" in name:
        reason = first_line(exc)
        return f"no usable Google credentials for {where}: {reason}; {GOOGLE_CREDENTIALS_FIX}"
    if status in {401, 403} or name in {"PermissionDenied", "Unauthenticated", "Forbidden"}:
        fix = (
            "check that your kubeconfig/token may use the KFP API"
            if request.runner == "kfp"
            else f"grant your account Vertex AI User on {request.project} "
            f"({GOOGLE_CREDENTIALS_FIX})"
        )
        return f"{where} refused the credentials ({name} {status or ''}): {fix}".replace(" )", ")")
    if request.runner == "kfp":
        fix = f"set {KFP_HOST_VARIABLE} or kfp.host in {request.env_file} to a reachable KFP API"
    else:
        fix = "check vertex.project and vertex.region in " + request.env_file
    return f"{where} failed ({name}: {first_line(exc)}): {fix}"


def _call(request: SubmitRequest, action: Callable[[], T]) -> T:
    refuse_placeholders(request)
    if request.runner == "kfp":
        check_reachable(
            request.host,
            what="the KFP API",
            fix=f"set {KFP_HOST_VARIABLE} or kfp.host in {request.env_file} to a reachable "
            "endpoint (e.g. `kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888` "
            f"and {KFP_HOST_VARIABLE}=http://localhost:8888)",
        )
    with _cloud_errors(request):
        return action()


def submit(request: SubmitRequest) -> str:
    """Refuse placeholders and unreachable endpoints, then submit; errors are one line."""
    runner = submit_kfp if request.runner == "kfp" else submit_vertex
    return _call(request, lambda: runner(request))


def schedule(request: SubmitRequest) -> str:
    if not request.cron:
        example = CRON_FORMATS.get(request.runner, CRON_FORMATS["vertex"])[1]
        raise ConfigError(f"a schedule needs --cron: {example}")
    check_cron(request.runner, request.cron)
    runner = schedule_kfp if request.runner == "kfp" else schedule_vertex
    return _call(request, lambda: runner(request))


__all__ = [
    "SubmitRequest",
    "build_request",
    "check_cron",
    "check_reachable",
    "default_run_name",
    "dry_run_payload",
    "kfp_client",
    "placeholder_problem",
    "refuse_placeholders",
    "schedule",
    "submit",
    "vertex_job",
    "vertex_job_body",
]

"""Cloud commands offline: dry runs contact nothing; failed real calls are one line.

The CLI runs in a real subprocess with an audit hook that records every `socket.connect`
(the only way a TCP/UDP connection starts), next to a local listening socket that counts
the connections it accepts; endpoints point at that socket or at a closed port.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alphafactory.errors import ConfigError
from pipelines import submit as submission

REPO = Path(__file__).resolve().parents[2]
RUN = "alphafactory-test-run"
#: the CLI's `main` under an audit hook that appends each socket.connect target to a file
HOOKED_CLI = """
import socket, sys
log = open(sys.argv.pop(1), "a")
def hook(event, args):
    if event == "socket.connect" and args[0].family != socket.AF_UNIX:
        log.write(repr(args[1]) + "\\n"); log.flush()
sys.addaudithook(hook)
from alphafactory.cli import main
sys.argv[0] = "alphafactory"
main()
"""


class Listener:
    """A local TCP socket that accepts (and counts) connections without answering."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(args: list[str], tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                              list[str], float]:  # fmt: skip
    """Run the CLI from `tmp_path` (not the checkout); returns result, connects, seconds."""
    log = tmp_path / "connects.log"
    log.write_text("")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environ = {key: value for key, value in os.environ.items() if key != "KFP_HOST"}
    environ.update(HOME=str(home), NO_COLOR="1", COLUMNS="400", **env)
    environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "no-such-key.json")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", HOOKED_CLI, str(log), *args],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, log.read_text().splitlines(), time.monotonic() - started


# ----------------------------------------------------------------------- dry runs: offline


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--env", "local-integration", "--dry-run", "--run-name", "r-1"],
        ["schedule", "--env", "production", "--cron", "0 0 2 * * *", "--dry-run"],
        ["submit", "--env", "staging", "--dry-run", "--run-name", "r-1"],
        ["schedule", "--env", "central-dev", "--cron", "0 3 * * 1", "--dry-run"],
        ["promote", "--from", "staging", "--to", "production", "--dry-run"],
    ],
    ids=["submit-kfp", "schedule-kfp", "submit-vertex", "schedule-vertex", "promote"],
)
def test_dry_runs_contact_nothing(args: list[str], tmp_path: Path, listener: Listener) -> None:
    endpoint = f"http://127.0.0.1:{listener.port}"
    result, connects, seconds = cli(args, tmp_path, KFP_HOST=endpoint)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert connects == []
    assert listener.accepted == 0
    assert seconds < 30  # the old promote --dry-run retried the staging database for 111 s


def test_promote_dry_run_from_another_folder_checks_a_local_registry_only(
    tmp_path: Path,
) -> None:
    result, connects, _ = cli(["promote", "--from", "staging", "--to", "production",
                               "--dry-run"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "+  promoted_from: staging" in result.stdout
    assert result.stderr.splitlines() == [
        "note: registry gates not checked: --dry-run contacts nothing and the registry at "
        "postgresql+psycopg2://mlflow@10.20.0.5:5432/mlflow-staging is remote; pass "
        "--tracking-uri sqlite:///… to check them offline",
        "would change: manifests/overlays/production/kustomization.yaml, "
        "pipelines/environments/production.yaml, pipelines/compiled/production.yaml",
    ]
    assert connects == []
    # a local registry is still checked by a dry run: an empty one has no champion
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    result, connects, _ = cli(["promote", "--from", "staging", "--to", "production",
                               "--dry-run", "--tracking-uri", uri], tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (  # after MLflow's table-creation logs
        f"error: refusing to promote 'staging': no champion model in the registry at {uri}"
    )


# --------------------------------------------------------------- real calls: one line each


def test_kfp_submit_to_a_closed_port_is_one_line(tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    result, _, seconds = cli(["submit", "--env", "local-integration", "--run-name", "r-1"],
                             tmp_path, KFP_HOST=host)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: cannot reach the KFP API at {host} (Connection refused): set KFP_HOST or "
        f"kfp.host in {REPO}/pipelines/environments/local-integration.yaml to a reachable "
        "endpoint (e.g. `kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888` and "
        "KFP_HOST=http://localhost:8888)"
    )
    assert seconds < 30


def test_kfp_server_that_accepts_but_does_not_answer_is_one_line(
    tmp_path: Path, listener: Listener
) -> None:
    host = f"http://127.0.0.1:{listener.port}"
    result, _, seconds = cli(["submit", "--env", "local-integration", "--run-name", "r-1"],
                             tmp_path, KFP_HOST=host)  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: KFP at {host} failed (")
    assert lines[0].endswith("local-integration.yaml to a reachable KFP API")
    assert listener.accepted >= 1
    assert seconds < 60


def _vertex_env(tmp_path: Path) -> tuple[Path, Path]:
    """central-dev with real-looking project, bucket and network, and its compiled spec."""
    from alphafactory.config import load_environment
    from pipelines.local import compiled_path, compiled_text

    text = (REPO / "pipelines/environments/central-dev.yaml").read_text()
    text = text.replace("replace-me-gcp-project", "acme-quant").replace("REPLACE_ME_BUCKET",
                                                                           "acme")  # fmt: skip
    text = text.replace("000000000000", "123456789012")
    env = tmp_path / "central-dev.yaml"
    env.write_text(text)
    root = tmp_path / "repo"
    compiled_path("central-dev", root).parent.mkdir(parents=True)
    spec = compiled_text(load_environment(str(env), use_env_vars=False))
    compiled_path("central-dev", root).write_text(spec)
    return env, root


def test_vertex_submit_without_credentials_is_one_line(tmp_path: Path) -> None:
    env, root = _vertex_env(tmp_path)
    script = (
        "import sys, typer\n"
        "from alphafactory.cli._common import guarded\n"
        "from pipelines import submit as s\n"
        f"r = s.build_request({str(env)!r}, run_name='r-1', root=__import__('pathlib')"
        f".Path({str(root)!r}))\n"
        "try:\n    guarded(lambda: s.submit(r))\n"
        "except typer.Exit as exit:\n    sys.exit(exit.exit_code)\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    environ = {**os.environ, "HOME": str(home), "NO_COLOR": "1", "COLUMNS": "400",
               "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-key.json")}  # fmt: skip
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environ,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "error: no usable Google credentials for Vertex AI (project acme-quant, region "
        f"europe-west4): File {tmp_path / 'no-such-key.json'} was not found.; run `gcloud auth "
        "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a "
        "service-account key file"
    )
    assert time.monotonic() - started < 60


def test_promote_with_an_unreachable_registry_is_one_line(tmp_path: Path) -> None:
    uri = f"postgresql+psycopg2://mlflow@127.0.0.1:{closed_port()}/mlflow"
    result, _, seconds = cli(["promote", "--from", "staging", "--to", "production",
                              "--tracking-uri", uri], tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: cannot reach the model registry at {uri} (Connection refused): run where "
        "registry.tracking_uri is reachable, or pass --tracking-uri "
        "(e.g. sqlite:///runs/registry/mlflow.db)"
    )
    assert seconds < 30


# --------------------------------------------------------------- placeholders and cron


def test_placeholders_are_refused_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KFP_HOST", raising=False)
    staging = REPO / "pipelines/environments/staging.yaml"
    with pytest.raises(ConfigError) as raised:
        submission.submit(submission.build_request("staging", run_name=RUN))
    assert str(raised.value) == (
        f"{staging} still holds placeholder values: pipeline_root "
        "'gs://REPLACE_ME_BUCKET-staging/pipeline-root' (your bucket, or set "
        "ALPHAFACTORY_PIPELINE_ROOT); vertex.project 'replace-me-gcp-project' (your GCP "
        "project id); vertex.service_account "
        "'alphafactory-staging@replace-me-gcp-project.iam.gserviceaccount.com' (your service "
        "account); vertex.network 'projects/000000000000/global/networks/alphafactory-vpc' "
        "(your network, projects/<project number>/global/networks/<name>); replace them in "
        "that file before a real submit or schedule"
    )
    request = submission.build_request("production", run_name=RUN, cron="0 0 2 * * *")
    placeholder = r"production.yaml still holds placeholder values: pipeline_root 'gs://REPLACE_ME"
    with pytest.raises(ConfigError, match=placeholder):
        submission.schedule(request)
    monkeypatch.setenv("ALPHAFACTORY_PIPELINE_ROOT", "gs://acme-production/pipeline-root")
    assert submission.placeholder_problem(submission.build_request("production")) is None


@pytest.mark.parametrize(
    ("env", "cron", "message"),
    [
        (
            "production",
            "0 2 * * *",
            "--cron '0 2 * * *' has 5 fields: KFP needs 6 fields with "
            "seconds, e.g. '0 0 2 * * *' (02:00 daily)",
        ),
        (
            "staging",
            "0 0 2 * * *",
            "--cron '0 0 2 * * *' has 6 fields: Vertex AI needs 5 "
            "standard fields, e.g. '0 2 * * *' or 'TZ=Europe/Berlin 0 2 * * *'",
        ),
        (
            "staging",
            "0 2 * * mon;",
            "--cron '0 2 * * mon;' has field 'mon;': Vertex AI needs 5 "
            "standard fields, e.g. '0 2 * * *' or 'TZ=Europe/Berlin 0 2 * * *'",
        ),
    ],  # fmt: skip
)
def test_cron_fields_are_checked_per_backend(env: str, cron: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        submission.build_request(env, run_name=RUN, cron=cron)
    assert str(raised.value) == message


def test_valid_crons_pass() -> None:
    assert submission.build_request("production", cron="0 0 2 * * *").cron == "0 0 2 * * *"
    tz = "TZ=Europe/Berlin 0 2 * * 1-5"
    assert submission.build_request("staging", cron=tz).cron == tz

"""Helpers for the thin KFP component bodies (no kfp import: they take duck-typed artifacts),
and for local run folders: their owner record, process group, stale and failed states."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from alphafactory import io
from alphafactory.config.loader import validate_environment
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import RunLayout


class MetricsSink(Protocol):
    def log_metric(self, metric: str, value: float) -> None: ...


def setup_logging() -> None:
    """Structured one-line logs on stderr, as the components' progress."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


@contextmanager
def task_failures(run_dir: str, task: str) -> Iterator[None]:
    """Run a component body; if it raises, keep its traceback in `<run_dir>/errors/<task>.txt`.

    kfp.local deletes its workspace and cluster logs scroll away: the run folder keeps the
    reason, and `alphafactory run` prints its last line. The original exception propagates.
    """
    try:
        yield
    except BaseException:
        try:
            io.write_text(RunLayout(run_dir).task_error(task), traceback.format_exc())
        except Exception:  # never mask the task's own error with a failure to record it
            logging.getLogger(__name__).exception("could not record the failure of %s", task)
        raise


def config_from_json(config_json: str) -> EnvironmentConfig:
    """The environment a pipeline run was compiled or submitted with."""
    import json

    return validate_environment(json.loads(config_json), source="pipeline parameter config_json")


def resolve_run_dir(run_dir: str, run_root: str, job_id: str) -> str:
    """The explicit run folder, or `<run_root>/<job id>` for cluster runs."""
    if run_dir:
        return run_dir
    if not run_root:
        raise ValueError("either run_dir or run_root must be given")
    return io.join(run_root, job_id)


def log_metrics(sink: MetricsSink, metrics: Mapping[str, Any]) -> None:
    """Log every finite number of `metrics` to a KFP Metrics artifact."""
    for key, value in metrics.items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float) and math.isfinite(value):
            sink.log_metric(key, float(value))


class FileArtifact(Protocol):
    path: str


def write_artifact_text(artifact: FileArtifact, text: str) -> None:
    """Write `text` as the content of a KFP file artifact (HTML, Markdown)."""
    with open(artifact.path, "w", encoding="utf-8") as handle:
        handle.write(text)


# ---------------------------------------------------------------- local run folders
# A local run writes into `<id>.incomplete` (owned by the `alphafactory run` process named in
# its owner record), which becomes `<id>` when every task succeeded or `<id>.failed`.
INCOMPLETE_SUFFIX, FAILED_SUFFIX = ".incomplete", ".failed"
OWNER_FILE, ERROR_FILE = "owner.json", "ERROR.txt"


def run_id_of(run_dir: str) -> str:
    """The run id of a run folder, whatever state its name carries."""
    name = run_dir.rstrip("/").rsplit("/", 1)[-1]
    return name.removesuffix(INCOMPLETE_SUFFIX).removesuffix(FAILED_SUFFIX)


def is_finalised(run_dir: str) -> bool:
    """False while a local run is unfinished or after it failed; cluster folders carry
    neither suffix, so their last task is the run's end."""
    name = run_dir.rstrip("/")
    return not name.endswith((INCOMPLETE_SUFFIX, FAILED_SUFFIX))


def _start_time(pid: int) -> str | None:
    """The kernel's start tick of a process (tells a reused pid apart), None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def write_owner(run_dir: Path, pgid: int) -> None:
    """Record which process owns an unfinished run folder and its tasks' process group."""
    pid = os.getpid()
    record = {"pid": pid, "host": socket.gethostname(), "pgid": pgid, "start": _start_time(pid)}
    (run_dir / OWNER_FILE).write_text(json.dumps(record, indent=2))


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` (started at `start`, when known) still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start is None or _start_time(pid) in (None, start)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc: ask the kernel whether the group has any member
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def stop_group(pgid: int, grace_s: float = 5.0) -> None:
    """SIGTERM every process of the group, then SIGKILL whatever is left after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not group_members(pgid):
            return


def mark_failed(run_dir: Path, lines: list[str]) -> Path:
    """Rename an unfinished run folder to `<id>.failed` and write why into its ERROR.txt."""
    failed = run_dir.with_name(run_id_of(str(run_dir)) + FAILED_SUFFIX)
    if run_dir != failed:
        run_dir.rename(failed)
    (failed / ERROR_FILE).write_text("\n".join(lines) + "\n")
    return failed


def stale_reason(run_dir: Path) -> str | None:
    """Why an `.incomplete` folder is stale (its owner on this host is gone), or None while
    its owner lives, runs on another host or is not recorded."""
    try:
        owner = json.loads((run_dir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if owner.get("host") != socket.gethostname():
        return None
    pid = int(owner["pid"])
    if process_alive(pid, owner.get("start")):
        return None
    return f"interrupted: process {pid} is gone; the run never finished"


def mark_stale_runs(runs_dir: Path) -> list[Path]:
    """Mark every stale `.incomplete` folder of `runs_dir` failed; returns the new folders."""
    marked = []
    for folder in sorted(runs_dir.glob(f"*{INCOMPLETE_SUFFIX}")):
        reason = stale_reason(folder) if folder.is_dir() else None
        if reason is not None:
            marked.append(mark_failed(folder, [reason]))
            logging.getLogger(__name__).warning("%s: %s", marked[-1], reason)
    return marked


def prune_failed(runs_dir: Path, older_than_s: float, now: float | None = None) -> list[Path]:
    """Delete the `.failed` folders (after marking stale ones) unchanged for `older_than_s`."""
    mark_stale_runs(runs_dir)
    now = time.time() if now is None else now
    pruned = []
    for folder in sorted(runs_dir.glob(f"*{FAILED_SUFFIX}")):
        error = folder / ERROR_FILE
        changed = max(folder.stat().st_mtime, error.stat().st_mtime if error.exists() else 0)
        if folder.is_dir() and now - changed >= older_than_s:
            shutil.rmtree(folder)
            pruned.append(folder)
    return pruned

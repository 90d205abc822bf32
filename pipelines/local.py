"""Run the pipeline on this machine with kfp.local, and compile it per environment.

A run writes into `<runs>/<run id>.incomplete/`; the folder is renamed to `<runs>/<run id>/`
only when every task succeeded, or to `<runs>/<run id>.failed/` otherwise, so no partial
run ever looks complete. A folder left `.incomplete` by a process that is gone is marked
failed when the next run starts.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from alphafactory.config import (
    EnvironmentConfig,
    available_environments,
    load_environment,
    with_data_uri,
    with_full_grid,
)
from alphafactory.errors import ConfigError
from alphafactory.layout import RunLayout
from alphafactory.runtime import (
    INCOMPLETE_SUFFIX,
    mark_failed,
    mark_stale_runs,
    stop_group,
    write_owner,
)
from alphafactory.targets.variants import expand_grid, group_variants
from pipelines.tasklogs import ANSI, LOGS_DIR, ORCHESTRATOR_LOG, failed_task_logs

if TYPE_CHECKING:
    from pipelines.console import RunView

COMPILED_DIR = Path(__file__).parent / "compiled"
FAILURE_FILE = "pipeline-failure.txt"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.25
"""How often the console looks at the run folder while the pipeline runs."""


@dataclass(frozen=True)
class LocalRunPlan:
    """Everything a local run needs, checked before any folder is created."""

    config: EnvironmentConfig
    runs_dir: Path
    run_id: str
    summary: str
    data_warning: str = ""
    """The source line of bars that are a synthetic fallback (empty: the configured data)."""


@dataclass(frozen=True)
class LocalRunOutcome:
    ok: bool
    run_dir: Path
    error: str = ""
    seconds: float = 0.0
    signal: int = 0
    """The signal (SIGINT, SIGTERM) that interrupted the run, 0 when none did."""
    failed_logs: tuple[tuple[str, Path], ...] = ()
    """(task, log file) of each task that failed, its kfp.local output in the run folder."""


def task_causes(run_dir: Path) -> list[str]:
    """`<task>: <exception line>` for every task that recorded its traceback in the run folder."""
    folder = Path(RunLayout(str(run_dir)).errors)
    causes = []
    for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        causes.append(f"{path.stem}: {lines[-1] if lines else 'failed'} (traceback: {path})")
    return causes


def with_families(config: EnvironmentConfig, families: str) -> EnvironmentConfig:
    """`config` with `models.families` set from `--families a,b` or `--families all`."""
    from alphafactory.models import FAMILIES

    names = list(FAMILIES) if families.strip() == "all" else [
        name.strip() for name in families.split(",") if name.strip()
    ]  # fmt: skip
    unknown = [name for name in names if name not in FAMILIES]
    if not names or unknown:
        raise ConfigError(
            f"--families {families!r}: unknown family '{(unknown or [''])[0]}'; use 'all' or "
            f"a comma-separated list of {', '.join(FAMILIES)}"
        )
    models = config.models.model_copy(update={"families": names})
    return config.model_copy(update={"models": models})


def prepare_local_run(
    env: str,
    *,
    grid: str = "env",
    data: str | None = None,
    runs_dir: Path | None = None,
    force_retrain: bool = False,
    families: str | None = None,
    source: str | None = None,
    symbols: str | None = None,
) -> LocalRunPlan:
    """Validate the environment, the grid switch, the families and the data before anything
    runs (a network source is fetched into the raw-bar cache here). `families` is a
    comma-separated list of registered families or `all`; `source` a data source name with
    `symbols` its comma-separated markets."""
    config = load_environment(env)
    if grid not in {"env", "full"}:
        raise ConfigError(f"--grid {grid!r} is not known; use 'env' or 'full'")
    if grid == "full":
        config = with_full_grid(config)
    if data:
        config = with_data_uri(config, data)
    if force_retrain:
        train = config.train.model_copy(update={"force_retrain": True})
        config = config.model_copy(update={"train": train})
    if families:
        config = with_families(config, families)
    if source:
        from alphafactory.data.sources import with_source

        config = with_source(config, source, symbols.split(",") if symbols else None)
    from alphafactory.stages.prepare import check_source

    root = Path(runs_dir or config.pipeline_root).resolve()
    loaded = check_source(config, str(root))
    names = config.data.symbols if loaded is None else loaded.bars["symbol"].unique().sort()
    groups = group_variants(expand_grid(config.grid, list(names)))
    n_variants = sum(len(v) for v in groups.values())
    summary = (
        f"{n_variants} variants in {len(groups)} groups over {', '.join(names)}; "
        f"families: {', '.join(config.models.families)}; "
        f"data: {'embedded synthetic bars' if loaded is None else loaded.origin.label}"
    )
    warning = loaded.origin.line if loaded is not None and loaded.origin.fallback else ""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return LocalRunPlan(config, root, f"{stamp}-{secrets.token_hex(3)}", summary, warning)


def run_locally(
    plan: LocalRunPlan, *, view: RunView | None = None, verbose: bool = False
) -> LocalRunOutcome:
    """Execute the pipeline with kfp.local's SubprocessRunner in this Python environment.

    The kfp.local orchestrator and its tasks run in a session (process group) of their own;
    SIGINT or SIGTERM stops the whole group and marks the run failed. `champion` aliases move
    only once the folder is finalised (see `alphafactory.stages.publish.apply_promotions`).
    kfp.local's output goes to `<run>/logs/` (see `pipelines.tasklogs`), and with `verbose`
    to this process's stdout as well; `view` follows the run while it runs.
    """
    from alphafactory.stages.publish import apply_promotions

    plan.runs_dir.mkdir(parents=True, exist_ok=True)
    mark_stale_runs(plan.runs_dir)
    working = plan.runs_dir / f"{plan.run_id}{INCOMPLETE_SUFFIX}"
    working.mkdir()
    started = time.perf_counter()
    failure, interrupted = _execute_in_own_group(plan, working, view, verbose)
    seconds = time.perf_counter() - started
    if interrupted:
        name = signal.Signals(interrupted).name
        message = f"interrupted: {name} received by process {os.getpid()}; every task stopped"
        failed, _ = _fail(working, message)
        return LocalRunOutcome(False, failed, message, seconds, interrupted)
    if failure is not None:
        failed, causes = _fail(working, failure)
        message = failure.splitlines()[0] if failure else "the pipeline failed"
        logs = tuple(failed_task_logs(failed))
        return LocalRunOutcome(False, failed, "\n".join([message, *causes]), seconds, 0, logs)
    finished = plan.runs_dir / plan.run_id
    working.rename(finished)
    apply_promotions(plan.config, str(finished))
    (finished / "run.json").write_text(
        json.dumps(
            {
                "run_id": plan.run_id,
                "environment": plan.config.name,
                "seconds": round(time.perf_counter() - started, 1),
                "status": "succeeded",
            },
            indent=2,
        )
    )
    return LocalRunOutcome(True, finished, seconds=time.perf_counter() - started)


def _fail(working: Path, reason: str) -> tuple[Path, list[str]]:
    """Mark the run failed; ERROR.txt gives the reason and each failed task's last line."""
    failed = mark_failed(working, [reason])
    causes = task_causes(failed)
    mark_failed(failed, [reason, *causes])
    return failed, causes


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise _Interrupted(signum)


def _execute_in_own_group(
    plan: LocalRunPlan, working: Path, view: RunView | None, verbose: bool
) -> tuple[str | None, int]:
    """Run the pipeline in a child session; (failure line or None, signal that stopped it).

    Without `verbose` the child's own stdout and stderr (what bypasses its log router: a
    crash, a fatal signal's report) go to the orchestrator's log in `<run>/logs/`."""
    failure_file = working / FAILURE_FILE
    command = [sys.executable, "-m", "pipelines.local", str(working), str(plan.runs_dir / ".kfp")]
    command += [str(os.getpid()), "verbose" if verbose else "quiet"]
    (working / LOGS_DIR).mkdir()
    output = None if verbose else (working / LOGS_DIR / ORCHESTRATOR_LOG).open("a")
    in_main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if in_main else {}
    for sig in saved:
        signal.signal(sig, _raise_interrupted)
    child = None
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=None if output is None else subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        write_owner(working, child.pid)
        assert child.stdin is not None
        child.stdin.write(plan.config.model_dump_json())
        child.stdin.close()
        code = _wait(child, working, view)
    except _Interrupted as stop:
        if child is not None:
            stop_group(child.pid)
            child.wait()
        return None, stop.signum
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if output is not None:
            output.close()
    if code == 0:
        return None, 0
    text = failure_file.read_text() if failure_file.exists() else ""
    failure_file.unlink(missing_ok=True)
    return text or f"the pipeline process exited with code {code}", 0


def _wait(child: subprocess.Popen[str], working: Path, view: RunView | None) -> int:
    """The child's exit code; `view` looks at the run folder every POLL_S meanwhile."""
    while view is not None:
        try:
            code = child.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            code = None
        try:
            view.update(working, final=code is not None)
        except (OSError, ValueError):  # the view must never stop the run it shows
            logging.getLogger(__name__).exception("the progress view failed; the run goes on")
            view = None
        if code is not None:
            return code
    return child.wait()


def _die_with(parent: int) -> None:
    """Stop this process group when the `alphafactory run` process that owns it is gone
    (killed with SIGKILL, it cannot stop the group itself)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


def _child_main(working: str, pipeline_root: str, parent: str, output: str = "quiet") -> int:
    """The child session's body: the pipeline on kfp.local, its output split per task into
    `<working>/logs/` (and echoed with `output == "verbose"`); a failure goes to FAILURE_FILE."""
    from kfp import local

    from pipelines.pipeline import build_pipeline
    from pipelines.tasklogs import LogRouter, pipeline_steps

    _die_with(int(parent))
    config_json = sys.stdin.read()
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=pipeline_root,
        raise_on_error=True,
    )
    pipeline = build_pipeline(config_json)
    router = LogRouter(Path(working) / LOGS_DIR, echo=sys.stdout if output == "verbose" else None)
    router.announce(pipeline_steps(cast(Any, pipeline).pipeline_spec))
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = router.stream()
    try:
        pipeline(run_dir=working)
    except Exception as exc:  # a failed task surfaces as a RuntimeError from kfp.local
        message = ANSI.sub("", f"{type(exc).__name__}: {exc}")
        (Path(working) / FAILURE_FILE).write_text(message)
        return 1
    finally:
        sys.stdout, sys.stderr = saved
        router.close()
    return 0


def compiled_path(env_name: str, root: Path | None = None) -> Path:
    """`pipelines/compiled/<env>.yaml` (under `root` when given: a copy of the repository)."""
    folder = COMPILED_DIR if root is None else Path(root) / "pipelines" / "compiled"
    return folder / f"{env_name}.yaml"


def compile_config(config: EnvironmentConfig, target: Path) -> Path:
    """Compile the pipeline for `config`: its JSON as the default, its image and resources."""
    from kfp import compiler

    from pipelines.pipeline import build_pipeline
    from pipelines.platform import Platform

    target.parent.mkdir(parents=True, exist_ok=True)
    parallelism = config.parallelism.parallel_tasks or config.parallelism.shards
    pipeline = build_pipeline(
        config.model_dump_json(), parallelism=parallelism, platform=Platform(config)
    )
    logging.getLogger(__name__).info("compiling %s to %s", config.name, target)
    compiler.Compiler().compile(pipeline, str(target))
    return target


def compiled_text(config: EnvironmentConfig) -> str:
    """The compiled spec of `config` as text, compiled in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="alphafactory-compile-") as folder:
        return compile_config(config, Path(folder) / "spec.yaml").read_text()


def compile_pipeline(env: str, output: Path | None = None) -> Path:
    """Compile the pipeline with the environment's settings baked in as defaults.

    Environment variables do not apply: the spec depends only on the YAML file.
    """
    config = load_environment(env, use_env_vars=False)
    return compile_config(config, output or compiled_path(config.name))


def compile_all(output_dir: Path | None = None) -> list[Path]:
    """Compile every environment to `<output_dir or pipelines/compiled>/<env>.yaml`."""
    targets = []
    for name in available_environments():
        target = (output_dir / f"{name}.yaml") if output_dir else None
        targets.append(compile_pipeline(name, target))
    return targets


def stale_specs(compiled_dir: Path | None = None) -> list[str]:
    """Environments whose spec in `compiled_dir` is missing or differs from a fresh compile."""
    folder = compiled_dir or COMPILED_DIR
    stale = []
    for name in available_environments():
        config = load_environment(name, use_env_vars=False)
        existing = folder / f"{name}.yaml"
        if not existing.is_file() or existing.read_text() != compiled_text(config):
            stale.append(name)
    return stale


__all__ = [
    "LocalRunOutcome",
    "LocalRunPlan",
    "compile_all",
    "compile_config",
    "compile_pipeline",
    "compiled_path",
    "compiled_text",
    "prepare_local_run",
    "run_locally",
    "stale_specs",
]


if __name__ == "__main__":
    sys.exit(_child_main(*sys.argv[1:]))

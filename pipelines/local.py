"""Run the pipeline on this machine with kfp.local, and compile it per environment.

A run writes into `<runs>/<run id>.incomplete/`; the folder is renamed to `<runs>/<run id>/`
only when every task succeeded, or to `<runs>/<run id>.failed/` otherwise, so no partial
run ever looks complete.
"""

import json
import logging
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alphafactory.config import (
    EnvironmentConfig,
    available_environments,
    load_environment,
    with_data_uri,
    with_full_grid,
)
from alphafactory.errors import ConfigError
from alphafactory.layout import RunLayout
from alphafactory.targets.variants import expand_grid, group_variants

COMPILED_DIR = Path(__file__).parent / "compiled"


@dataclass(frozen=True)
class LocalRunPlan:
    """Everything a local run needs, checked before any folder is created."""

    config: EnvironmentConfig
    runs_dir: Path
    run_id: str
    summary: str


@dataclass(frozen=True)
class LocalRunOutcome:
    ok: bool
    run_dir: Path
    error: str = ""
    seconds: float = 0.0


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
) -> LocalRunPlan:
    """Validate the environment, the grid switch, the families and the user's data before
    anything runs. `families` is a comma-separated list of registered families or `all`."""
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
    symbols = config.data.symbols
    if config.data.source == "uri":
        from alphafactory.data.bars import load_bars
        from alphafactory.stages.prepare import check_enough_bars

        assert config.data.uri is not None
        bars = load_bars(config.data.uri)
        check_enough_bars(bars, config, config.data.uri)
        symbols = sorted(bars["symbol"].unique().to_list())
    groups = group_variants(expand_grid(config.grid, symbols))
    n_variants = sum(len(v) for v in groups.values())
    summary = (
        f"{n_variants} variants in {len(groups)} groups over {', '.join(symbols)}; "
        f"families: {', '.join(config.models.families)}; "
        f"data: {config.data.uri or 'embedded synthetic bars'}"
    )
    root = Path(runs_dir or config.pipeline_root).resolve()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return LocalRunPlan(config, root, f"{stamp}-{secrets.token_hex(3)}", summary)


def run_locally(plan: LocalRunPlan) -> LocalRunOutcome:
    """Execute the pipeline with kfp.local's SubprocessRunner in this Python environment."""
    from kfp import local

    from pipelines.pipeline import build_pipeline

    plan.runs_dir.mkdir(parents=True, exist_ok=True)
    working = plan.runs_dir / f"{plan.run_id}.incomplete"
    working.mkdir()
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(plan.runs_dir / ".kfp"),
        raise_on_error=True,
    )
    pipeline = build_pipeline(plan.config.model_dump_json())
    started = time.perf_counter()
    root_logger = logging.getLogger()
    saved_handlers, saved_level = list(root_logger.handlers), root_logger.level
    try:
        pipeline(run_dir=str(working))
    except Exception as exc:  # a failed task surfaces as a RuntimeError from kfp.local
        failed = working.with_name(f"{plan.run_id}.failed")
        working.rename(failed)
        causes = task_causes(failed)
        (failed / "ERROR.txt").write_text(
            "\n".join([f"{type(exc).__name__}: {exc}", *causes]) + "\n"
        )
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        message = "\n".join([message, *causes])
        return LocalRunOutcome(False, failed, message, time.perf_counter() - started)
    finally:  # kfp.local installs its own root handlers; do not leak them into the caller
        root_logger.handlers[:] = saved_handlers
        root_logger.setLevel(saved_level)
    finished = plan.runs_dir / plan.run_id
    working.rename(finished)
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

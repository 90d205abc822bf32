"""`alphafactory models …` and `alphafactory cache …`: the registry and the model cache."""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.prompt import IntPrompt
from rich.table import Table

from alphafactory.cli._common import EnvOption, RunsOption, console, guarded, number
from alphafactory.cli._common import errors as err_console
from alphafactory.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from alphafactory.config import EnvironmentConfig
    from alphafactory.registry import ModelCache, ModelRegistry, RegisteredModel
    from alphafactory.stages.evaluate import Score

T = TypeVar("T")

models_app = typer.Typer(help="Registered production models.", no_args_is_help=True)
cache_app = typer.Typer(help="The cache of production fits.", no_args_is_help=True)


def _runs_dir(env: str, runs_dir: Path | None) -> Path:
    from alphafactory.config import load_environment

    return Path(runs_dir or load_environment(env).pipeline_root).resolve()


def _pipeline_root(root: str) -> str:
    """A URI pipeline root as it is; a local one as an absolute path."""
    return root if "://" in root else str(Path(root).resolve())


def open_registry(env: str, runs_dir: Path | None) -> ModelRegistry:
    """The environment's registry, or the SQLite registry of local runs (read from its
    tables directly; MLflow is imported only by commands that write or download)."""
    from alphafactory.config import load_environment
    from alphafactory.registry import ModelRegistry
    from alphafactory.registry.mlflow_registry import DATABASE_FILE, local_registry_root

    config = load_environment(env)
    if config.registry.tracking_uri:
        return ModelRegistry(config.registry.tracking_uri)
    root = local_registry_root(Path(runs_dir or config.pipeline_root).resolve())
    if not (root / DATABASE_FILE).exists():
        raise ConfigError(
            f"no model registry at {root}; run `alphafactory run` first, or pass --runs-dir"
        )
    return ModelRegistry(root=root)


def choose_model(
    candidates: list[RegisteredModel], request: str, interactive: bool | None = None
) -> RegisteredModel:
    """One model from several that fit `request`: a numbered choice on a terminal, else an error."""
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelError(f"no registered model matches {request!r}; see `alphafactory models list`")
    on_terminal = sys.stdin.isatty() if interactive is None else interactive
    names = [m.model_id for m in candidates]
    if not on_terminal:
        raise ModelError(
            f"{len(candidates)} models match {request!r}: {', '.join(names)}; give a full id"
        )
    for index, model in enumerate(candidates, start=1):
        console.print(f"  {index}. {model.model_id}  {model.display_name}", highlight=False)
    choice = IntPrompt.ask(
        "Which model", choices=[str(i) for i in range(1, len(names) + 1)], console=console
    )
    return candidates[choice - 1]


def resolve_model(
    registry: ModelRegistry, request: str, interactive: bool | None = None
) -> RegisteredModel:
    """A model id (`name/version`), a display name, or any unique part of them."""
    try:
        return registry.get(request)
    except ModelError:
        pass
    everything = registry.list_models()
    matching = [m for m in everything if request in m.model_id or request in m.display_name]
    return choose_model(matching, request, interactive)


@models_app.command("list")
def list_models(
    model_type: Annotated[str | None, typer.Option(help="e.g. lightgbm")] = None,
    grade: Annotated[str | None, typer.Option(help="Exact grade: S, A+, A, A-, B+ … F")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol's models")] = None,
    champions: Annotated[
        bool, typer.Option("--champions", help="Only each group's champion")
    ] = False,
    env: EnvOption = "local-dev",
    runs_dir: RunsOption = None,
) -> None:
    """Registered models with versions, grades and aliases."""
    from alphafactory.registry import CHAMPION
    from alphafactory.registry.grades import check_grade

    if grade is not None:
        guarded(lambda: check_grade(grade))
    registry = guarded(lambda: open_registry(env, runs_dir))
    models = guarded(
        lambda: registry.list_models(model_type=model_type, grade=grade, symbol=symbol)
    )
    if champions:
        models = [m for m in models if CHAMPION in m.aliases]
    table = Table(title=f"{len(models)} registered models")
    for header in ("id", "name", "version", "grade", "symbol", "aliases"):
        table.add_column(header)
    for model in models:
        table.add_row(
            model.model_id,
            model.display_name,
            str(model.semver),
            model.grade,
            model.symbol,
            ", ".join(model.aliases),
        )
    console.print(table)


@models_app.command("info")
def info(
    model: Annotated[str, typer.Argument(help="Model id, display name or a unique part")],
    env: EnvOption = "local-dev",
    runs_dir: RunsOption = None,
) -> None:
    """Lineage, checksum, metrics and parameters of one model."""
    registry = guarded(lambda: open_registry(env, runs_dir))
    chosen = guarded(lambda: resolve_model(registry, model))
    details = guarded(lambda: registry.info(chosen.model_id))
    lineage = details.lineage
    table = Table(title=chosen.display_name, show_header=False)
    rows = [
        ("id", chosen.model_id),
        ("version", str(chosen.semver)),
        ("grade", chosen.grade),
        ("group / symbol", f"{chosen.group} / {chosen.symbol}"),
        ("aliases", ", ".join(chosen.aliases) or "—"),
        ("sha256", details.sha256),
        ("data hash", lineage.data_hash),
        ("features", f"{len(lineage.feature_list)} (hash {lineage.feature_hash[:12]})"),
        ("parent models", ", ".join(lineage.parent_model_ids) or "—"),
        ("pipeline run", lineage.pipeline_run_id or "—"),
        *[(f"metric {k}", number(v)) for k, v in sorted(details.metrics.items())],
        *[(f"param {k}", str(v)) for k, v in sorted(details.params.items())],
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


@models_app.command("benchmark")
def benchmark(
    data: Annotated[str, typer.Argument(help="Bars (parquet/CSV path or URI) to score on")],
    models: Annotated[str, typer.Option(help="Comma-separated model ids or unique parts")],
    env: EnvOption = "local-dev",
    runs_dir: RunsOption = None,
) -> None:
    """Average precision of several models on the same bars, side by side; events before a
    model's test period are scored apart as in-sample, with a warning."""
    from alphafactory.config import load_environment
    from alphafactory.stages.evaluate import IN_SAMPLE

    config = guarded(lambda: load_environment(env))
    registry = guarded(lambda: open_registry(env, runs_dir))
    requests = [part.strip() for part in models.split(",") if part.strip()]
    table = Table(title=f"benchmark on {data}")
    for header in ("model", "variant", "period", "events", "from", "to", "AP", "grade"):
        table.add_column(header)
    with tempfile.TemporaryDirectory() as scratch:
        for request in requests:
            chosen, variant_id, scores, test_start = guarded(
                partial(_score, registry, request, scratch, data, config)
            )
            for score in scores:
                if score.period == IN_SAMPLE:
                    err_console.print(
                        f"warning: {chosen.model_id}: {score.rows} events of {data} "
                        f"({score.first} .. {score.last}) fall before its test period "
                        f"({test_start}), in the periods that trained and chose it; they are "
                        "scored separately as in-sample and are optimistic"
                    )
                table.add_row(
                    chosen.model_id, variant_id, score.period, str(score.rows), score.first,
                    score.last, f"{score.average_precision:.4f}", chosen.grade,
                )  # fmt: skip
    console.print(table)


def _score(
    registry: ModelRegistry, request: str, scratch: str, data: str, config: EnvironmentConfig
) -> tuple[RegisteredModel, str, list[Score], str]:
    from alphafactory.data.splits import parse_time
    from alphafactory.registry.checksums import download_verified
    from alphafactory.registry.records import TAG_TEST_START
    from alphafactory.stages.evaluate import score_model

    chosen = resolve_model(registry, request)
    path = download_verified(registry, chosen.model_id, chosen.sha256, scratch)
    info = registry.info(chosen.model_id)
    variant_id = str(info.params["variant_id"])
    test_start = info.tags.get(TAG_TEST_START, "")
    start = parse_time(test_start) if test_start else None
    scores = score_model(
        Path(path), variant_id, data, config.features.scale, start, sha256=chosen.sha256
    )
    return chosen, variant_id, scores, test_start


def _cache(env: str, runs_dir: Path | None) -> ModelCache:
    from alphafactory.registry import ModelCache

    return ModelCache(_runs_dir(env, runs_dir) / "cache")


def _cache_and_age(
    env: str, runs_dir: Path | None, older_than: str | None
) -> tuple[ModelCache, timedelta | None]:
    """The cache of the runs folder and the parsed `--older-than` (errors: one line, exit 2)."""
    from alphafactory.registry import parse_age

    age = guarded(lambda: parse_age(older_than)) if older_than else None
    return guarded(lambda: _cache(env, runs_dir)), age


AgeOption = Annotated[str | None, typer.Option(help="Only entries older than this: 30m, 12h, 7d")]


@cache_app.command("list")
def cache_list(
    symbol: Annotated[str | None, typer.Option(help="Only this symbol's entries")] = None,
    older_than: AgeOption = None,
    env: EnvOption = "local-dev",
    runs_dir: RunsOption = None,
) -> None:
    """Cached production fits, oldest first."""
    cache, age = _cache_and_age(env, runs_dir, older_than)
    entries = cache.list(symbol=symbol, older_than=age)
    table = Table(title=f"{len(entries)} cached models")
    for header in ("key", "symbol", "created", "variant", "AP"):
        table.add_column(header)
    for entry in entries:
        metadata = entry.metadata
        ap = metadata.get("average_precision")
        table.add_row(
            entry.key[:16],
            entry.symbol,
            entry.created.strftime("%Y-%m-%d %H:%M:%S"),
            str(metadata.get("variant_id", "—")),
            f"{ap:.4f}" if isinstance(ap, float) else "—",
        )
    console.print(table)


@cache_app.command("clear")
def cache_clear(
    symbol: Annotated[str | None, typer.Option(help="Only this symbol's entries")] = None,
    older_than: AgeOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the entries it would delete; delete none.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    env: EnvOption = "local-dev",
    runs_dir: RunsOption = None,
) -> None:
    """Delete cached fits (all, or filtered by symbol and age), after a confirmation."""
    cache, age = _cache_and_age(env, runs_dir, older_than)
    folders = cache.clear_targets(symbol=symbol, older_than=age)
    if dry_run:
        for folder in folders:
            console.print(str(folder), highlight=False, soft_wrap=True)
        console.print(f"would remove {len(folders)} cached models", highlight=False)
        return
    question = f"Delete {len(folders)} cached models from {cache.entries_dir}?"
    if folders and not yes and not _confirmed(question):
        err_console.print("nothing deleted (pass --yes to skip this question)", highlight=False)
        raise typer.Exit(code=1)
    removed = cache.remove(folders)
    console.print(f"removed {removed} cached models", highlight=False)


def _confirmed(question: str) -> bool:
    """The answer to a yes/no question on stdin; no answer (end of input) is a no."""
    try:
        return bool(typer.confirm(question, default=False))
    except typer.Abort:
        return False


def infer_command(
    live: Annotated[
        bool, typer.Option("--live", help="Predict the bars that arrived since the last run.")
    ] = False,
    env: EnvOption = "local-dev",
    runs_dir: RunsOption = None,
    data: Annotated[
        str | None,
        typer.Option(help="Bars to predict on (path or URI); default: the env's data source."),
    ] = None,
    first_bars: Annotated[
        int, typer.Option(min=1, help="Bars a group's first live run predicts.")
    ] = 500,
) -> None:
    """Predict new bars with every group's champion and append them idempotently."""
    from alphafactory.config import load_environment
    from alphafactory.stages.live import run_live

    if not live:
        raise typer.BadParameter(
            "only --live is supported here; batch inference is the infer stage of "
            "`alphafactory run`",
            param_hint="--live",
        )
    config = guarded(lambda: load_environment(env))
    registry = guarded(lambda: open_registry(env, runs_dir))
    folder = str(runs_dir.resolve()) if runs_dir else _pipeline_root(config.pipeline_root)
    result = guarded(lambda: run_live(config, folder, registry, data=data, first_bars=first_bars))
    table = Table(title=f"live predictions: {result.added} new, {result.rows_total} in all")
    for header in ("group", "model", "new rows"):
        table.add_column(header)
    for group, model_id in sorted(result.models.items()):
        table.add_row(group, model_id, str(result.rows_added.get(group, 0)))
    console.print(table)
    console.print(f"live file: {result.path}", highlight=False, soft_wrap=True)

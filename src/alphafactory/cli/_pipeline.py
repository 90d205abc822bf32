"""`alphafactory run | compile | submit | schedule | promote | envs | show-config | runs`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from alphafactory.cli._common import EnvOption, console, errors, guarded
from alphafactory.cli._runs import runs_app

if TYPE_CHECKING:
    from alphafactory.config import EnvironmentConfig

app = typer.Typer(
    name="alphafactory",
    help="Mass-produce trading-signal models with one Kubeflow pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(runs_app, name="runs")


@app.command()
def run(
    env: EnvOption = "local-dev",
    grid: Annotated[
        str, typer.Option(help="'env' keeps the environment's grid; 'full' uses all 2160 variants.")
    ] = "env",
    data: Annotated[
        str | None,
        typer.Option(help="Bars as parquet or CSV: a path or any fsspec URI (gs://, memory://)."),
    ] = None,
    runs_dir: Annotated[
        Path | None, typer.Option(help="Where run folders go (default: the env's pipeline_root).")
    ] = None,
    force_retrain: Annotated[
        bool, typer.Option("--force-retrain", help="Ignore the model cache for production fits.")
    ] = False,
    families: Annotated[
        str | None,
        typer.Option(help="Model families that compete: 'a,b' or 'all' (default: the env's)."),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", help="Stream kfp.local's whole output too (always in <run>/logs/)."
        ),
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(help="Where bars come from: synthetic, file, exchange (ccxt) or yahoo."),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(help="Markets for --source: 'BTC/USDT,ETH/USDT' (exchange), 'AAPL' (yahoo)."),
    ] = None,
) -> None:
    """Run the whole pipeline on this machine through kfp.local and print the run folder.

    The console shows one line per pipeline step; each task's output is kept in
    `<run folder>/logs/<task>.log`, and a failing task's last lines are printed."""
    from pipelines.console import RunView
    from pipelines.local import prepare_local_run, run_locally
    from pipelines.tasklogs import LOGS_DIR, log_tail

    plan = guarded(
        lambda: prepare_local_run(
            env,
            grid=grid,
            data=data,
            runs_dir=runs_dir,
            force_retrain=force_retrain,
            families=families,
            source=source,
            symbols=symbols,
        )
    )
    console.print(
        f"[bold]alphafactory[/] env [cyan]{plan.config.name}[/]: {plan.summary}", highlight=False
    )
    if plan.data_warning:
        errors.print(
            f"[bold yellow]warning:[/] {escape(plan.data_warning)}; the models are trained on "
            "synthetic stand-in bars and promote refuses them",
            highlight=False,
            soft_wrap=True,
        )
    if verbose:
        outcome = run_locally(plan, verbose=True)
    else:
        with RunView(console) as view:
            outcome = run_locally(plan, view=view)
    if not outcome.ok:
        errors.print(
            f"[bold red]error:[/] {escape(outcome.error)}", highlight=False, soft_wrap=True
        )
        for task, log in outcome.failed_logs:
            errors.print(
                f"last lines of {task} ({log}):", markup=False, highlight=False, soft_wrap=True
            )
            for line in log_tail(log):
                errors.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        errors.print(
            f"partial outputs kept for inspection in {outcome.run_dir}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=128 + outcome.signal if outcome.signal else 1)
    _print_winners(outcome.run_dir, plan.config)
    console.print(f"run folder: [bold green]{outcome.run_dir}[/]", highlight=False, soft_wrap=True)
    console.print(f"task logs: {outcome.run_dir / LOGS_DIR}", highlight=False, soft_wrap=True)


def _print_winners(run_dir: Path, config: EnvironmentConfig) -> None:
    from alphafactory import io
    from alphafactory.layout import RunLayout, read_plan
    from alphafactory.stages.infer import trained_models
    from alphafactory.stages.report import skill_lines, winner_rows

    layout = RunLayout(str(run_dir))
    plan = read_plan(layout)
    published = io.read_json(layout.path("infer", "registry.json"))
    rows = winner_rows(layout, plan, trained_models(layout, len(plan.shards)), published)
    table, notes = winners_table(rows)
    console.print(table)
    for line in [*notes, *skill_lines(config, rows)]:
        console.print(line, highlight=False)


WINNER_COLUMNS = (
    ("group", "left", "group"),
    ("truth", "left", "planted"),
    ("winning variant", "left", "variant"),
    ("family", "left", "family"),
    ("params", "left", "params"),
    ("test AP", "right", "test_ap"),
    ("events", "right", "n_test"),
    ("baseline", "right", "baseline_ap"),
    ("p (corr.)", "right", "p_adjusted"),
    ("skill", "left", "skill"),
    ("selection AP*", "right", "selection_ap"),
    ("grade", "left", "grade"),
    ("champion", "left", "champion"),
)
"""The console's winners table: header, justification, key of `winner_rows`."""
COUNT_COLUMNS = {"n_test"}


def winners_table(rows: list[dict[str, Any]]) -> tuple[Table, list[str]]:
    """The winners table and its footnotes: what `*` means and, when a cell has none, what
    the missing value means in each column (the report's legend of the same columns)."""
    from alphafactory.stages.report import COLUMNS as REPORT_COLUMNS
    from alphafactory.stages.report_parts import MISSING

    table = Table(title=f"{len(rows)} group winners, scored on the untouched test period")
    for header, justify, _ in WINNER_COLUMNS:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    cells = [[_cell(row[key], key, MISSING) for _, _, key in WINNER_COLUMNS] for row in rows]
    for line in cells:
        table.add_row(*line)
    notes = ["* optimistic: the selection period chose the variant and its parameters"]
    meanings = {key: meaning for _, key, meaning in REPORT_COLUMNS}
    empty = [
        f"{header}: {meanings.get(key) or 'not available'}"
        for index, (header, _, key) in enumerate(WINNER_COLUMNS)
        if any(line[index] == MISSING for line in cells)
    ]
    if empty:
        notes.append(f"{MISSING} no value; " + "; ".join(empty))
    return table, notes


def _cell(value: Any, key: str, missing: str) -> str:
    """A table cell: a count as an integer (`27`, not `27.0000`, even when it came back from
    JSON or MLflow as a float), other floats with 4 decimals, no value as `missing`."""
    if value is None:
        return missing
    if key in COUNT_COLUMNS and isinstance(value, int | float):
        return str(int(value))
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@app.command()
def compile(  # noqa: A001 - the command is called compile
    env: EnvOption = "local-dev",
    output: Annotated[Path | None, typer.Option(help="Where to write the YAML spec.")] = None,
    all_envs: Annotated[
        bool, typer.Option("--all", help="Compile every environment to pipelines/compiled/.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 when a compiled spec is stale."),
    ] = False,
) -> None:
    """Compile the pipeline for one environment (or --all) to pipelines/compiled/<env>.yaml."""
    from pipelines.local import compile_all, compile_pipeline, stale_specs

    if check:
        stale = guarded(lambda: stale_specs(output))
        if stale:
            errors.print(
                f"[bold red]stale:[/] {', '.join(stale)}; run `make compile` and commit",
                highlight=False,
            )
            raise typer.Exit(code=1)
        console.print("compiled specs are up to date", highlight=False)
        return
    if all_envs:
        for path in guarded(lambda: compile_all(output)):
            console.print(f"compiled {path.stem} → {path}", highlight=False)
        return
    path = guarded(lambda: compile_pipeline(env, output))
    console.print(f"compiled {env} → {path}", highlight=False)


RunNameOption = Annotated[
    str | None,
    typer.Option(help="Run name / Vertex job id (default: alphafactory-<env>-<UTC time>)."),
]
DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="Print what would be sent or changed; contact nothing."),
]


@app.command()
def submit(
    env: EnvOption = "local-integration",
    run_name: RunNameOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Submit the environment's compiled pipeline: kfp.Client (KFP) or PipelineJob (Vertex)."""
    from pipelines import submit as submission

    request = guarded(lambda: submission.build_request(env, run_name=run_name))
    if dry_run:
        _print_dry_run(request)
        return
    run_id = guarded(lambda: submission.submit(request))
    console.print(f"submitted {request.run_name} to {request.runner}: {run_id}", highlight=False)


def _print_dry_run(request: Any) -> None:
    """The request as JSON on stdout; what a real call would refuse as a warning on stderr."""
    from pipelines import submit as submission

    payload = guarded(lambda: submission.dry_run_payload(request))
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    if problem := submission.placeholder_problem(request):
        errors.print(f"[bold yellow]warning:[/] {escape(problem)}", highlight=False, soft_wrap=True)


@app.command()
def schedule(
    env: EnvOption = "production",
    cron: Annotated[
        str,
        typer.Option(
            help="Cron expression. KFP: 6 fields with seconds ('0 0 2 * * *'); "
            "Vertex: 5 fields ('0 2 * * *'), optionally prefixed with 'TZ=Area/City '."
        ),
    ] = "",
    run_name: RunNameOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Create a recurring run: KFP create_recurring_run or Vertex PipelineJob.create_schedule."""
    from pipelines import submit as submission

    request = guarded(lambda: submission.build_request(env, run_name=run_name, cron=cron))
    if not cron:
        guarded(lambda: submission.schedule(request))  # raises the 'needs --cron' error
    if dry_run:
        _print_dry_run(request)
        return
    name = guarded(lambda: submission.schedule(request))
    console.print(f"scheduled {request.run_name} ({cron}) on {request.runner}: {name}")


@app.command()
def promote(
    source: Annotated[str, typer.Option("--from", help="Environment that validated the images.")],
    target: Annotated[str, typer.Option("--to", help="Environment to promote them to.")],
    dry_run: DryRunOption = False,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="Registry to read the source's champions from (default: its own)."),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(help="Repository checkout to edit (default: the packaged environments' one)."),
    ] = None,
) -> None:
    """GitOps promotion: copy image digests and the spec reference; print the diff."""
    from pipelines.promote import promote as run_promotion

    result = guarded(
        lambda: run_promotion(root, source, target, dry_run=dry_run, tracking_uri=tracking_uri)
    )
    sys.stdout.write(result.diff or "nothing to change\n")
    for note in result.notes:
        errors.print(f"[bold yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    verb = "would change" if dry_run else "changed"
    errors.print(f"{verb}: {', '.join(result.files)}", highlight=False)


@app.command()
def envs() -> None:
    """List the environments and their main settings."""
    from alphafactory.config import available_environments, load_environment

    table = Table(title="environments")
    for header in ("name", "runner", "pipeline root", "variants", "shards"):
        table.add_column(header)
    for name in available_environments():
        config = guarded(lambda name=name: load_environment(name))  # type: ignore[misc]
        grid = config.grid
        per_symbol = (
            len(grid.windows)
            * len(grid.swing_types)
            * len(grid.std_thresholds)
            * len(grid.move_thresholds)
            * len(grid.horizons)
        )
        table.add_row(
            name,
            config.runner,
            config.pipeline_root,
            f"{per_symbol} per symbol",
            str(config.parallelism.shards),
        )
    console.print(table)


@app.command("show-config")
def show_config(env: EnvOption = "local-dev") -> None:
    """Print the validated settings of an environment as JSON."""
    from alphafactory.config import load_environment

    config = guarded(lambda: load_environment(env))
    sys.stdout.write(json.dumps(config.model_dump(mode="json"), indent=2) + "\n")

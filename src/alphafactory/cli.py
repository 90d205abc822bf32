"""The `alphafactory` command line: run the pipeline locally, compile it, list environments."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from alphafactory.errors import AlphaFactoryError

app = typer.Typer(
    name="alphafactory",
    help="Mass-produce trading-signal models with one Kubeflow pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=False)
errors = Console(stderr=True)

T = TypeVar("T")

EnvOption = Annotated[
    str, typer.Option("--env", "-e", help="Environment name or YAML path.", show_default=True)
]


def _guarded(action: Callable[[], T]) -> T:
    """Run `action`; a user-caused error becomes one line on stderr and exit code 2."""
    try:
        return action()
    except AlphaFactoryError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None


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
) -> None:
    """Run the whole pipeline on this machine through kfp.local and print the run folder."""
    from pipelines.local import prepare_local_run, run_locally

    plan = _guarded(lambda: prepare_local_run(env, grid=grid, data=data, runs_dir=runs_dir))
    console.print(
        f"[bold]alphafactory[/] env [cyan]{plan.config.name}[/]: {plan.summary}", highlight=False
    )
    outcome = run_locally(plan)
    if not outcome.ok:
        errors.print(f"[bold red]error:[/] {outcome.error}", highlight=False, soft_wrap=True)
        errors.print(f"partial outputs kept for inspection in {outcome.run_dir}", highlight=False)
        raise typer.Exit(code=1)
    _print_winners(outcome.run_dir)
    console.print(f"run folder: [bold green]{outcome.run_dir}[/]", highlight=False, soft_wrap=True)


def _print_winners(run_dir: Path) -> None:
    from alphafactory.stages.common import RunLayout, read_plan
    from alphafactory.stages.infer import trained_models
    from alphafactory.stages.report import winner_rows

    layout = RunLayout(str(run_dir))
    plan = read_plan(layout)
    rows = winner_rows(layout, plan, trained_models(layout, len(plan.shards)))
    table = Table(title=f"{len(rows)} group winners", show_lines=False)
    for header in ("group", "winning variant", "stage-1 AP", "production AP"):
        table.add_column(
            header, justify="left" if "group" in header or "variant" in header else "right"
        )
    for row in rows:
        table.add_row(
            row["group"], row["variant"], _number(row["stage1_ap"]), _number(row["production_ap"])
        )
    console.print(table)


def _number(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"


@app.command()
def compile(  # noqa: A001 - the command is called compile
    env: EnvOption = "local-dev",
    output: Annotated[Path | None, typer.Option(help="Where to write the YAML spec.")] = None,
) -> None:
    """Compile the pipeline for one environment to a YAML spec."""
    from pipelines.local import compile_pipeline

    path = _guarded(lambda: compile_pipeline(env, output))
    console.print(f"compiled {env} → {path}", highlight=False)


@app.command()
def envs() -> None:
    """List the environments and their main settings."""
    from alphafactory.config import available_environments, load_environment

    table = Table(title="environments")
    for header in ("name", "runner", "pipeline root", "variants", "shards"):
        table.add_column(header)
    for name in available_environments():
        config = _guarded(lambda name=name: load_environment(name))  # type: ignore[misc]
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

    config = _guarded(lambda: load_environment(env))
    sys.stdout.write(json.dumps(config.model_dump(mode="json"), indent=2) + "\n")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

"""`alphafactory runs prune`: mark stale unfinished run folders failed and delete old failures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alphafactory.cli._common import EnvOption, RunsOption, console, guarded

runs_app = typer.Typer(help="Local run folders: prune failed and interrupted runs.")


@runs_app.command("prune")
def prune(
    env: EnvOption = "local-dev",
    runs_dir: RunsOption = None,
    older_than: Annotated[
        str, typer.Option(help="Delete failed run folders unchanged for this long (7d, 12h, 0s).")
    ] = "7d",
) -> None:
    """Mark `.incomplete` folders whose process is gone failed, then delete old `.failed` ones."""
    from alphafactory.config import load_environment
    from alphafactory.registry import parse_age
    from alphafactory.runtime import mark_stale_runs, prune_failed

    seconds = guarded(lambda: parse_age(older_than)).total_seconds()
    folder = Path(runs_dir or guarded(lambda: load_environment(env)).pipeline_root).resolve()
    for marked in mark_stale_runs(folder):
        console.print(f"marked failed: {marked}", highlight=False, soft_wrap=True)
    pruned = prune_failed(folder, seconds)
    for path in pruned:
        console.print(f"deleted: {path}", highlight=False, soft_wrap=True)
    console.print(f"{len(pruned)} failed run folders deleted from {folder}", highlight=False)

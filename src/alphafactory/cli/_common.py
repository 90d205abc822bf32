"""What every command shares: consoles, the one-line error guard, common options."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from alphafactory.errors import AlphaFactoryError

T = TypeVar("T")

# Wide enough for the tables when output goes to a file or a pipe.
console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True)

EnvOption = Annotated[
    str, typer.Option("--env", "-e", help="Environment name or YAML path.", show_default=True)
]
RunsOption = Annotated[
    Path | None, typer.Option(help="Folder of local runs (default: the env's pipeline_root).")
]


def guarded(action: Callable[[], T]) -> T:
    """Run `action`; a user-caused error becomes one line on stderr and exit code 2."""
    try:
        return action()
    except AlphaFactoryError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None

"""What every command shares: consoles, the one-line error guard, common options, number
cells for tables, and boolean options shown as plain flags in `--help`."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperOption

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


def number(value: float) -> str:
    """A number for a table cell: a whole number as an integer (`27`, not `27.0000`), any
    other to four decimals (`nan` as it is)."""
    if math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}"


def _plain_flags() -> None:
    """Typer's help writes a type beside every option, `--champions <bool>` for a flag
    too; a flag takes no value, so it is shown as the flag alone."""
    shown = TyperOption.display_type_rich
    if getattr(shown, "plain_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.plain_flags = True  # type: ignore[attr-defined]
    setattr(TyperOption, "display_type_rich", display_type_rich)  # noqa: B010


_plain_flags()

"""`alphafactory runs prune`: mark stale unfinished run folders failed and delete old failures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from alphafactory.cli._common import EnvOption, RunsOption, console, guarded
from alphafactory.errors import ConfigError

runs_app = typer.Typer(help="Local run folders: prune failed and interrupted runs.")

_AGE_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """Seconds in an age such as `7d`, `12h`, `30m` or `0s`."""
    match = _AGE_RE.match(text.strip())
    if match is None:
        raise ConfigError(
            f"--older-than {text!r} is not an age: use a number and a unit s, m, h or d (e.g. 7d)"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


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
    from alphafactory.runtime import mark_stale_runs, prune_failed

    seconds = guarded(lambda: parse_age(older_than))
    folder = Path(runs_dir or guarded(lambda: load_environment(env)).pipeline_root).resolve()
    for marked in mark_stale_runs(folder):
        console.print(f"marked failed: {marked}", highlight=False, soft_wrap=True)
    pruned = prune_failed(folder, seconds)
    for path in pruned:
        console.print(f"deleted: {path}", highlight=False, soft_wrap=True)
    console.print(f"{len(pruned)} failed run folders deleted from {folder}", highlight=False)

"""The `alphafactory` command line (Typer): the pipeline commands, `models`, `cache`, `infer`.

Example:
    $ alphafactory run --env local-dev
"""

from __future__ import annotations

from alphafactory.cli._models import cache_app, infer_command, models_app
from alphafactory.cli._pipeline import app

app.add_typer(models_app, name="models")
app.add_typer(cache_app, name="cache")
app.command("infer")(infer_command)

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()

"""The `alphafactory` command line (Typer): the pipeline commands, `models`, `cache`, `infer`,
`backtest`.

Example:
    $ alphafactory run --env local-dev
"""

from __future__ import annotations

from alphafactory.cli._backtest import backtest_command
from alphafactory.cli._models import cache_app, infer_command, models_app
from alphafactory.cli._pipeline import app

app.add_typer(models_app, name="models")
app.add_typer(cache_app, name="cache")
app.command("infer")(infer_command)
app.command("backtest")(backtest_command)

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()

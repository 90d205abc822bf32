"""Fixtures shared by the test modules at this level (helpers live in tests/tiny_run.py).

tests/cluster runs in its own tools virtualenv without the project's dependencies, so this
file imports nothing heavy at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tiny_run import TinyRuns


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    """The session's finished tiny run. Read it, never change it: `clone_runs` makes a copy."""
    from tiny_run import make_tiny_runs

    return make_tiny_runs(tmp_path_factory)

"""Fixtures shared by the test modules at this level (helpers live in tests/tiny_run.py)."""

from __future__ import annotations

import pytest
from tiny_run import TinyRuns, make_tiny_runs


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    """The session's finished tiny run. Read it, never change it: `clone_runs` makes a copy."""
    return make_tiny_runs(tmp_path_factory)

"""Fixtures for the tuning tests: a throwaway PostgreSQL server (slow tests only)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres_server import running_postgres


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL database URL for a shared Optuna study."""
    pytest.importorskip("psycopg2", reason="psycopg2 is needed for the PostgreSQL backend")
    with running_postgres() as url:
        yield url

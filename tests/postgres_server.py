"""A throwaway PostgreSQL server for tests (registry and tuning): start, yield a URL, stop.

PostgreSQL refuses to run as root, so as root the server runs as 'nobody' in a fresh
``mkdtemp`` folder (pytest's own tmp folders are private to root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin(name: str) -> str | None:
    """Path of a PostgreSQL server binary: PATH first, then /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_server_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; drop to 'nobody' when we are root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "nobody", "--", *command]
    return command


def _create_database(port: int, name: str) -> None:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()


@contextlib.contextmanager
def running_postgres(database: str = "optuna") -> Iterator[str]:
    """Start a PostgreSQL on a free loopback port; yield a SQLAlchemy URL to `database`."""
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    base = Path(tempfile.mkdtemp(prefix="alphafactory-pg-"))
    if os.geteuid() == 0:
        os.chown(base, pwd.getpwnam("nobody").pw_uid, -1)
    data, port = base / "data", free_port()
    init = [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    subprocess.run(_as_server_user([*init, "--no-locale"]), check=True, capture_output=True)
    options = f"-h 127.0.0.1 -p {port} -k {base} -F"
    start = [pg_ctl, "-D", str(data), "-l", str(base / "postgres.log"), "-o", options, "-w"]
    subprocess.run(_as_server_user([*start, "start"]), check=True, capture_output=True)
    try:
        _create_database(port, database)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_server_user(stop), check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

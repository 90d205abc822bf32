"""Direct reads of a local SQLite registry, and re-rooting one whose folder moved.

`import mlflow` alone takes seconds, so `alphafactory models list` / `models info` read the
registry's tables with `sqlite3` in read-only mode: `model_versions`, `model_version_tags`,
`registered_model_aliases`, and for one version's details `latest_metrics`, `params` and the
run's `feature_list.json` on disk. The answers equal `MlflowReads`' (tested); any SQLite
error (tables missing, a schema this code does not know, a locked file) raises
`SqlUnavailable` and the registry asks MLflow instead.

MLflow stores local artifact locations as absolute `file://` URIs and resolves relative ones
against the working directory, so `mlflow ui` and `mlflow.pyfunc.load_model` only work from
anywhere if the URIs are absolute. A registry folder therefore keeps every artifact under
`<root>/artifacts`, and `relocate` re-roots the stored URIs when the folder is opened at
another place: a moved or copied runs folder keeps working.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from alphafactory.errors import ConfigError
from alphafactory.registry.mlflow_support import FEATURES_ARTIFACT
from alphafactory.registry.records import VersionRow

logger = logging.getLogger(__name__)

DELETED_STAGE = "Deleted_Internal"
"""MLflow's `current_stage` of a deleted version (kept in the table, never listed)."""
DEFAULT_WORKSPACE = "default"
LATEST_ALIAS = "latest"
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)
"""Every column in which MLflow stores an artifact location (those a table lacks are skipped)."""
_TIMEOUT_S = 30.0
READS_ENV = "ALPHAFACTORY_REGISTRY_READS"
"""`mlflow` makes a SQLite registry read through the MLflow client too (the reference of
bench/registry_commands.py); unset or `sql`, it reads its tables directly."""
Reads = Literal["auto", "sql", "mlflow"]


class SqlUnavailable(Exception):
    """The SQLite file cannot answer this read; ask MLflow."""


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///…` tracking URI (relative: to the working folder,
    as SQLAlchemy reads it), else None."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return Path(tracking_uri[len(prefix) :].split("?", 1)[0])


def local_path(uri: str) -> Path | None:
    """The local path of a `file:` URI or plain absolute path, else None (a remote store)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def sql_reads(tracking_uri: str, reads: Reads = "auto") -> SqliteReads | None:
    """Direct reads for a registry, or None for reads through MLflow: `sql` (a sqlite:///
    URI only), `mlflow`, or `auto` (`sql` for SQLite unless READS_ENV is `mlflow`)."""
    database = sqlite_file(tracking_uri)
    if reads == "auto":
        if database is None or os.environ.get(READS_ENV, "").strip().lower() == "mlflow":
            return None
        reads = "sql"
    if reads == "mlflow":
        return None
    if database is None:
        raise ConfigError(
            f"registry reads 'sql' need a sqlite:/// tracking URI, not {tracking_uri}"
        )
    return SqliteReads(database)


class SqliteReads:
    """`RegistryReads` (see `mlflow_reads`) straight from a local SQLite registry file."""

    def __init__(self, database: Path) -> None:
        self.database = Path(database)

    @contextmanager
    def _rows(self, query: str, args: tuple[object, ...] = ()) -> Iterator[list[tuple]]:
        if not self.database.exists():
            yield []
            return
        try:
            uri = f"{self.database.resolve().as_uri()}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True, timeout=_TIMEOUT_S)) as connection:
                yield connection.execute(query, args).fetchall()
        except sqlite3.Error as error:
            raise SqlUnavailable(f"{self.database}: {error}") from error

    def _workspace(self, table: str) -> str:
        """`AND workspace = 'default'` where the table has MLflow's workspace column."""
        with self._rows(f'PRAGMA table_info("{table}")') as columns:
            names = {column[1] for column in columns}
        return f" AND {table}.workspace = '{DEFAULT_WORKSPACE}'" if "workspace" in names else ""

    def versions(self, name: str | None, tags: Mapping[str, str]) -> list[VersionRow]:
        where = f"current_stage != ?{self._workspace('model_versions')}"
        args: tuple[object, ...] = (DELETED_STAGE,)
        if name is not None:
            where, args = f"{where} AND name = ?", (*args, name)
        query = f"SELECT name, version, run_id, source FROM model_versions WHERE {where}"
        with self._rows(query, args) as found:
            versions = [(str(n), int(v), str(r or ""), str(s or "")) for n, v, r, s in found]
        if not versions:
            return []
        all_tags = self._tags(name)
        all_aliases = self._aliases(name)
        rows = [
            VersionRow(n, v, run_id, source, all_tags.get((n, v), {}),
                       tuple(sorted(all_aliases.get((n, v), ()))))
            for n, v, run_id, source in versions
        ]  # fmt: skip
        return [row for row in rows if row.matches(name, tags)]

    def version(self, name: str, number: int) -> VersionRow | None:
        found = [row for row in self.versions(name, {}) if row.version == number]
        return found[0] if found else None

    def alias(self, name: str, alias: str) -> VersionRow | None:
        if alias.lower() == LATEST_ALIAS:  # MLflow's implicit alias: the highest version
            return max(self.versions(name, {}), key=lambda row: row.version, default=None)
        query = "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?"
        query += self._workspace("registered_model_aliases")
        with self._rows(query, (name, alias)) as found:
            numbers = [int(row[0]) for row in found]
        return self.version(name, numbers[0]) if numbers else None

    def run_data(self, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
        query = "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?"
        with self._rows(query, (run_id,)) as found:
            metrics = {str(k): math.nan if nan else float(v) for k, v, nan in found}
        with self._rows("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)) as found:
            params = {str(key): str(value) for key, value in found}
        return metrics, params

    def feature_list(self, run_id: str) -> tuple[str, ...]:
        with self._rows("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)) as found:
            uris = [str(row[0]) for row in found]
        folder = local_path(uris[0]) if uris else None
        if folder is None or not (folder / FEATURES_ARTIFACT).is_file():
            raise SqlUnavailable(f"run {run_id}: {FEATURES_ARTIFACT} is not a local file")
        return tuple(json.loads((folder / FEATURES_ARTIFACT).read_text(encoding="utf-8")))

    def _tags(self, name: str | None) -> dict[tuple[str, int], dict[str, str]]:
        query = "SELECT name, version, key, value FROM model_version_tags WHERE 1 = 1"
        query += self._workspace("model_version_tags")
        args: tuple[object, ...] = ()
        if name is not None:
            query, args = f"{query} AND name = ?", (name,)
        tags: dict[tuple[str, int], dict[str, str]] = {}
        with self._rows(query, args) as found:
            for model, number, key, value in found:
                tags.setdefault((str(model), int(number)), {})[str(key)] = str(value or "")
        return tags

    def _aliases(self, name: str | None) -> dict[tuple[str, int], set[str]]:
        query = "SELECT name, version, alias FROM registered_model_aliases WHERE 1 = 1"
        query += self._workspace("registered_model_aliases")
        args: tuple[object, ...] = ()
        if name is not None:
            query, args = f"{query} AND name = ?", (name,)
        aliases: dict[tuple[str, int], set[str]] = {}
        with self._rows(query, args) as found:
            for model, number, alias in found:
                aliases.setdefault((str(model), int(number)), set()).add(str(alias))
        return aliases


def relocate(database: Path, experiment: str, artifacts_uri: str) -> int:
    """Re-root the artifact locations of a registry whose folder moved; rows changed.

    The experiment's stored artifact location is where the registry's artifacts were; when
    it differs from `artifacts_uri` (the folder's `artifacts` now), every location under the
    old one, in every column of LOCATION_COLUMNS, is moved under the new one. Idempotent.
    """
    if not database.exists():
        return 0
    with closing(sqlite3.connect(database, timeout=_TIMEOUT_S)) as connection:
        try:
            found = connection.execute(
                "SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)
            ).fetchone()
        except sqlite3.OperationalError:  # no tables yet
            return 0
        old = str(found[0]) if found and found[0] else ""
        if not old or old == artifacts_uri or local_path(old) is None:
            return 0
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        changed = 0
        with connection:
            for table, column in LOCATION_COLUMNS:
                if table not in tables:
                    continue
                columns = {row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')}
                if column not in columns:
                    continue
                changed += connection.execute(
                    f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                    f'WHERE substr("{column}", 1, ?) = ? '
                    f'AND (length("{column}") = ? OR substr("{column}", ?, 1) = \'/\')',
                    (artifacts_uri, len(old) + 1, len(old), old, len(old), len(old) + 1),
                ).rowcount
    logger.info("registry %s moved: %d locations re-rooted from %s", database, changed, old)
    return changed

"""Registry reads through the MLflow client: any store (SQLite, PostgreSQL, an MLflow server).

`sqlite_store.SqliteReads` answers the same questions from a local SQLite file without
importing MLflow; `ModelRegistry` uses that one where it can and this one otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from alphafactory.registry.mlflow_support import error_code, quoted, read_feature_list
from alphafactory.registry.records import VersionRow

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient


class RegistryReads(Protocol):
    """What the registry reads from a store; both implementations answer identically."""

    def versions(self, name: str | None, tags: Mapping[str, str]) -> list[VersionRow]:
        """Versions named `name` (any, when None) carrying every tag of `tags`."""
        ...

    def version(self, name: str, number: int) -> VersionRow | None: ...

    def alias(self, name: str, alias: str) -> VersionRow | None: ...

    def run_data(self, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
        """The latest value of each metric and every parameter of a run."""
        ...

    def feature_list(self, run_id: str) -> tuple[str, ...]: ...


class MlflowReads:
    """`RegistryReads` through an MLflow client (created on first use by `client`)."""

    def __init__(self, client: Callable[[], MlflowClient]) -> None:
        self._client = client

    def versions(self, name: str | None, tags: Mapping[str, str]) -> list[VersionRow]:
        clauses = [f"name = {quoted('name', name)}"] if name is not None else []
        clauses += [f"tags.{key} = {quoted(key, value)}" for key, value in tags.items()]
        client = self._client()
        found: list[ModelVersion] = []
        page_token: str | None = None
        while True:
            page = client.search_model_versions(" AND ".join(clauses), page_token=page_token)
            found.extend(page)
            page_token = page.token
            if not page_token:
                break
        # Version searches leave aliases out on some stores (SQLite): ask each model once.
        aliases: dict[tuple[str, int], set[str]] = {}
        for model_name in sorted({version.name for version in found}):
            for alias, number in client.get_registered_model(model_name).aliases.items():
                aliases.setdefault((model_name, int(number)), set()).add(alias)
        rows = [_row(v, aliases.get((v.name, int(v.version)), set())) for v in found]
        return [row for row in rows if row.matches(name, tags)]

    def version(self, name: str, number: int) -> VersionRow | None:
        try:
            return _row(self._client().get_model_version(name, str(number)))
        except Exception as error:
            if error_code(error) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def alias(self, name: str, alias: str) -> VersionRow | None:
        try:
            return _row(self._client().get_model_version_by_alias(name, alias))
        except Exception as error:
            if error_code(error) == "RESOURCE_DOES_NOT_EXIST" or "alias" in str(error).lower():
                return None
            raise

    def run_data(self, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
        run = self._client().get_run(run_id)
        return dict(run.data.metrics), dict(run.data.params)

    def feature_list(self, run_id: str) -> tuple[str, ...]:
        return read_feature_list(self._client(), run_id)


def _row(version: ModelVersion, aliases: set[str] | None = None) -> VersionRow:
    return VersionRow(
        name=version.name,
        version=int(version.version),
        run_id=version.run_id or "",
        source=version.source or "",
        tags=dict(version.tags),
        aliases=tuple(sorted({*(version.aliases or ()), *(aliases or ())})),
    )

"""The model registry on MLflow: each registered version carries semantic version, grade,
checksum and lineage as tags; works against a local SQLite file or any MLflow server."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphafactory.errors import ConfigError, ModelError
from alphafactory.registry.checksums import sha256_file, verify_checksum
from alphafactory.registry.grades import check_grade, grade_at_least, model_name
from alphafactory.registry.mlflow_support import (
    MODEL_ARTIFACT_DIR,
    check_name,
    ensure_experiment,
    ensure_registered_model,
    error_code,
    log_model_run,
    new_client,
    quoted,
    read_feature_list,
)
from alphafactory.registry.records import (
    MANAGED_BY,
    TAG_ARTIFACT_FILE,
    TAG_DISPLAY_NAME,
    TAG_GRADE,
    TAG_GROUP,
    TAG_MANAGED_BY,
    TAG_MODEL_TYPE,
    TAG_PIPELINE_RUN,
    TAG_SEMVER,
    TAG_SHA256,
    TAG_SYMBOL,
    Lineage,
    ModelInfo,
    RegisteredModel,
)
from alphafactory.registry.versioning import SemVer

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "alphafactory"
DEFAULT_ROOT = Path(".alphafactory") / "registry"
CHAMPION = "champion"


def registered_model_name(group: str) -> str:
    """The registered model that holds every version of one group: ``alphafactory.{group}``."""
    return f"{MANAGED_BY}.{group}"


class ModelRegistry:
    """Register, find, promote and download models on one MLflow tracking URI.

    Args:
        tracking_uri: Any MLflow tracking/registry URI (``http://…``, ``postgresql://…``,
            ``sqlite:///…``). Default: ``sqlite:///<root>/mlflow.db``, no server needed.
        root: Folder for the default SQLite file and artifacts.
        artifact_root: Where new experiments store artifacts; default ``<root>/artifacts``
            for the local default, the server's choice otherwise.
        experiment_name: The MLflow experiment that holds the registration runs.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        root: Path | str = DEFAULT_ROOT,
        artifact_root: str | None = None,
        experiment_name: str = DEFAULT_EXPERIMENT,
    ) -> None:
        if tracking_uri is None:
            root_dir = Path(root).resolve()
            root_dir.mkdir(parents=True, exist_ok=True)
            tracking_uri = f"sqlite:///{root_dir / 'mlflow.db'}"
            artifact_root = artifact_root or (root_dir / "artifacts").as_uri()
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.experiment_name = experiment_name
        self._client = new_client(tracking_uri)
        self._experiment_id: str | None = None

    def register(
        self,
        name: str,
        model_path: Path,
        *,
        model_type: str,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        lineage: Lineage,
        grade: str,
        version: SemVer,
        symbol: str,
        group: str,
        key_metric: str = "ap",
        extra_tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        """Log a run with the model file, params and metrics, and register it as a version.

        The display name follows :func:`model_name` with ``key_metric`` (which must be in
        ``metrics``); the version's tags carry semver, grade, type, symbol, group, sha256 and
        lineage (plus ``extra_tags``), and the full feature list is stored as
        ``feature_list.json``.

        A pipeline run registers each model once: when ``lineage.pipeline_run_id`` already
        registered a version of ``name`` (a retried or re-run publish), that version is
        returned as it is, whatever ``version`` says; a different file is refused.
        """
        model_path = Path(model_path)
        self._check_register_args(name, model_path, grade, metrics, key_metric)
        earlier = self._run_version(name, group, lineage.pipeline_run_id, model_path)
        if earlier is not None:
            return earlier
        if self._find_semver(name, version) is not None:
            raise ModelError(
                f"model {name} already has version {version}: pick the next one "
                "with next_version(previous, change)"
            )
        display_name = model_name(model_type, version, grade, key_metric, metrics[key_metric])
        run_id, artifact_uri = log_model_run(
            self._client,
            self._experiment(),
            model_path,
            run_name=display_name,
            metrics=metrics,
            params=params,
            feature_list=lineage.feature_list,
        )
        tags = {
            TAG_MANAGED_BY: MANAGED_BY,
            TAG_SEMVER: str(version),
            TAG_GRADE: grade,
            TAG_MODEL_TYPE: model_type,
            TAG_SYMBOL: symbol,
            TAG_GROUP: group,
            TAG_SHA256: sha256_file(model_path),
            TAG_ARTIFACT_FILE: model_path.name,
            TAG_DISPLAY_NAME: display_name,
            **lineage.tags(),
            **dict(extra_tags or {}),
        }
        ensure_registered_model(self._client, name)
        created = self._client.create_model_version(
            name,
            f"{artifact_uri}/{MODEL_ARTIFACT_DIR}",
            run_id,
            tags=tags,
            description=display_name,
        )
        logger.info("registered %s as %s/%s", display_name, name, created.version)
        return RegisteredModel.from_version(name, created.version, run_id, tags)

    def latest_version(self, name: str) -> SemVer | None:
        """The highest semantic version registered under ``name``, or None."""
        versions = [model.semver for model in self._search(f"name = {quoted('name', name)}")]
        return max(versions, default=None)

    def set_alias(self, name: str, version: int | str | SemVer, alias: str) -> RegisteredModel:
        """Point ``alias`` (e.g. ``champion``) of registered model ``name`` at one version."""
        model = self._resolve(name, version)
        try:
            self._client.set_registered_model_alias(name, alias, str(model.version))
        except Exception as error:
            raise ConfigError(
                f"alias {alias!r} cannot be set on {model.model_id} ({error}): "
                "use a lowercase word such as 'champion'"
            ) from error
        logger.info("alias %s of %s -> version %s", alias, name, model.version)
        return self.get(model.model_id)

    def alias(self, name: str, alias: str) -> RegisteredModel | None:
        """The version ``alias`` points at, or None when the alias is not set."""
        try:
            version = self._client.get_model_version_by_alias(name, alias)
        except Exception as error:
            if error_code(error) == "RESOURCE_DOES_NOT_EXIST" or "alias" in str(error).lower():
                return None
            raise
        return self._record(version)

    def champion(self, name: str) -> RegisteredModel | None:
        """The version aliased ``champion`` in registered model ``name``, or None."""
        return self.alias(name, CHAMPION)

    def list_models(
        self,
        model_type: str | None = None,
        grade: str | None = None,
        symbol: str | None = None,
        *,
        group: str | None = None,
        min_grade: str | None = None,
        pipeline_run: str | None = None,
    ) -> list[RegisteredModel]:
        """Registered versions matching every given filter, ordered by name and version.

        ``grade`` matches exactly; ``min_grade`` keeps that grade and better;
        ``pipeline_run`` keeps the versions that pipeline run registered.
        """
        clauses = [f"tags.{TAG_MANAGED_BY} = '{MANAGED_BY}'"]
        for key, value in (
            (TAG_MODEL_TYPE, model_type),
            (TAG_GRADE, grade),
            (TAG_SYMBOL, symbol),
            (TAG_GROUP, group),
            (TAG_PIPELINE_RUN, pipeline_run),
        ):
            if value is not None:
                clauses.append(f"tags.{key} = {quoted(key, value)}")
        models = self._search(" AND ".join(clauses))
        if min_grade is not None:
            check_grade(min_grade)
            models = [model for model in models if grade_at_least(model.grade, min_grade)]
        return sorted(models, key=lambda model: (model.name, model.version))

    def get(self, model_id: str) -> RegisteredModel:
        """The version with id ``{name}/{version}`` or with that display name."""
        return self._record(self._version(model_id))

    def info(self, model_id: str) -> ModelInfo:
        """Tags, lineage (with the full feature list), checksum, metrics and params."""
        version = self._version(model_id)
        model = self._record(version)
        run = self._client.get_run(model.run_id)
        features = read_feature_list(self._client, model.run_id)
        tags = dict(version.tags)
        return ModelInfo(
            model=model,
            lineage=Lineage.from_tags(tags, features),
            metrics=dict(run.data.metrics),
            params=dict(run.data.params),
            tags=tags,
            source=version.source or "",
        )

    def download(self, model_id: str, dest: Path | str) -> Path:
        """Download the model file into ``dest`` and verify its checksum before returning it.

        A file whose SHA-256 differs from the registered one is deleted and ModelError raised.
        """
        model = self.get(model_id)
        dest_dir = Path(dest)
        dest_dir.mkdir(parents=True, exist_ok=True)
        artifact = f"{MODEL_ARTIFACT_DIR}/{model.artifact_file}"
        local = Path(self._client.download_artifacts(model.run_id, artifact, str(dest_dir)))
        try:
            verify_checksum(local, model.sha256)
        except ModelError:
            local.unlink(missing_ok=True)
            raise
        return local

    def _check_register_args(
        self,
        name: str,
        model_path: Path,
        grade: str,
        metrics: Mapping[str, float],
        key_metric: str,
    ) -> None:
        check_name("registered model name", name)
        check_grade(grade)
        if not model_path.is_file():
            raise ModelError(
                f"model file {model_path} does not exist: train and save the model "
                "before registering it"
            )
        if key_metric not in metrics:
            raise ConfigError(
                f"key metric {key_metric!r} is not among the metrics "
                f"{sorted(metrics)}: pass it in metrics or choose key_metric"
            )

    def _experiment(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = ensure_experiment(
                self._client, self.experiment_name, self.artifact_root
            )
        return self._experiment_id

    def _search(self, filter_string: str) -> list[RegisteredModel]:
        records: list[RegisteredModel] = []
        page_token: str | None = None
        while True:
            page = self._client.search_model_versions(filter_string, page_token=page_token)
            records.extend(
                self._record(version)
                for version in page
                if version.tags.get(TAG_MANAGED_BY) == MANAGED_BY
            )
            page_token = page.token
            if not page_token:
                return records

    def _run_version(
        self, name: str, group: str, pipeline_run_id: str, model_path: Path
    ) -> RegisteredModel | None:
        """The version of ``name`` that pipeline run ``pipeline_run_id`` registered already."""
        if not pipeline_run_id:
            return None
        found = [
            model
            for model in self.list_models(group=group, pipeline_run=pipeline_run_id)
            if model.name == name
        ]
        if not found:
            return None
        earlier = found[0]
        if earlier.sha256 != sha256_file(model_path):
            raise ModelError(
                f"pipeline run {pipeline_run_id} registered {earlier.model_id} with sha256 "
                f"{earlier.sha256[:12]}… but now publishes {model_path.name} with another "
                "digest: a run registers each model once; publish the new model from a new run"
            )
        logger.info("%s: already registered by run %s", earlier.model_id, pipeline_run_id)
        return earlier

    def _find_semver(self, name: str, semver: SemVer) -> RegisteredModel | None:
        matches = self._search(f"name = {quoted('name', name)} AND tags.{TAG_SEMVER} = '{semver}'")
        return matches[0] if matches else None

    def _resolve(self, name: str, version: int | str | SemVer) -> RegisteredModel:
        if isinstance(version, SemVer):
            found = self._find_semver(name, version)
            if found is None:
                raise ModelError(
                    f"model {name} has no version {version}: list its versions with list_models"
                )
            return found
        return self.get(f"{name}/{version}")

    def _version(self, model_id: str) -> ModelVersion:
        name, _, number = model_id.rpartition("/")
        if name and number.isdigit():
            try:
                return self._client.get_model_version(name, number)
            except Exception as error:
                if not error_code(error) == "RESOURCE_DOES_NOT_EXIST":
                    raise
                raise self._not_found(model_id) from error
        return self._by_display_name(model_id)

    def _by_display_name(self, display_name: str) -> ModelVersion:
        found = self._client.search_model_versions(
            f"tags.{TAG_DISPLAY_NAME} = {quoted('display name', display_name)}"
        )
        if len(found) > 1:
            ids = ", ".join(f"{version.name}/{version.version}" for version in found)
            raise ModelError(f"display name {display_name!r} matches {ids}: use one of these ids")
        if not found:
            raise self._not_found(display_name)
        return found[0]

    def _record(self, version: ModelVersion) -> RegisteredModel:
        return RegisteredModel.from_version(
            version.name,
            version.version,
            version.run_id or "",
            dict(version.tags),
            tuple(version.aliases or ()),
        )

    def _not_found(self, model_id: str) -> ModelError:
        return ModelError(
            f"model {model_id!r} is not in the registry at {self.tracking_uri}: "
            "use an id '{name}/{version}' or a display name from list_models"
        )

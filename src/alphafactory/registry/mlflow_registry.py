"""The model registry on MLflow: each version carries semantic version, grade, checksum and
lineage as tags and an MLflow pyfunc flavor; a local SQLite file or any MLflow server. Reads
of a SQLite registry go straight to its tables (`sqlite_store`, no MLflow import); writes and
other stores go through the MLflow client, created on first use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from alphafactory.errors import ConfigError, ModelError
from alphafactory.registry.checksums import sha256_file, verify_checksum
from alphafactory.registry.grades import check_grade, grade_at_least, model_name
from alphafactory.registry.mlflow_reads import MlflowReads, RegistryReads
from alphafactory.registry.mlflow_support import (
    MODEL_ARTIFACT_DIR,
    check_register_args,
    ensure_experiment,
    ensure_registered_model,
    log_model_run,
    new_client,
    quoted,
    require_mlflow,
)
from alphafactory.registry.pipeline_runs import StageRecord, log_pipeline_run
from alphafactory.registry.pyfunc import PyfuncSpec
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
    VersionRow,
)
from alphafactory.registry.sqlite_store import Reads, SqlUnavailable, relocate, sql_reads
from alphafactory.registry.versioning import SemVer

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_EXPERIMENT = "alphafactory"
DEFAULT_ROOT = Path(".alphafactory") / "registry"
DATABASE_FILE = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
CHAMPION = "champion"


def registered_model_name(group: str) -> str:
    """The registered model that holds every version of one group: ``alphafactory.{group}``."""
    return f"{MANAGED_BY}.{group}"


def local_registry_root(runs_dir: Path) -> Path:
    """Where local runs keep their SQLite registry: `<runs>/registry`."""
    return runs_dir / "registry"


class ModelRegistry:
    """Register, find, promote and download models on one MLflow tracking URI.

    Args:
        tracking_uri: Any MLflow tracking/registry URI (``http://…``, ``postgresql://…``,
            ``sqlite:///…``). Default: ``sqlite:///<root>/mlflow.db``, no server needed.
        root: Folder for the default SQLite file and artifacts. A root that moved (a copied
            or moved runs folder) has its stored artifact locations re-rooted on opening.
        artifact_root: Where new experiments store artifacts; default ``<root>/artifacts``
            for the local default, the server's choice otherwise.
        experiment_name: The MLflow experiment that holds the registration runs.
        reads: ``sql`` reads a SQLite registry's tables directly, ``mlflow`` through the
            client; ``auto`` (default): ``sql`` for SQLite unless READS_ENV says ``mlflow``.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        root: Path | str = DEFAULT_ROOT,
        artifact_root: str | None = None,
        experiment_name: str = DEFAULT_EXPERIMENT,
        reads: Reads = "auto",
    ) -> None:
        require_mlflow()
        if tracking_uri is None:
            root_dir = Path(root).resolve()
            root_dir.mkdir(parents=True, exist_ok=True)
            tracking_uri = f"sqlite:///{root_dir / DATABASE_FILE}"
            if artifact_root is None:
                artifact_root = (root_dir / ARTIFACTS_DIR).as_uri()
                relocate(root_dir / DATABASE_FILE, experiment_name, artifact_root)
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.experiment_name = experiment_name
        self._experiment_id: str | None = None
        self._mlflow_reads = MlflowReads(lambda: self._client)
        self._sql_reads = sql_reads(self.tracking_uri, reads)

    @cached_property
    def _client(self) -> MlflowClient:
        """The MLflow client, created (and MLflow imported) on first use."""
        return new_client(self.tracking_uri)

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
        pyfunc: PyfuncSpec | None = None,
    ) -> RegisteredModel:
        """Log a run with the model file, params and metrics, and register it as a version.

        The display name follows :func:`model_name` with ``key_metric`` (which must be in
        ``metrics``); the version's tags carry semver, grade, type, symbol, group, sha256 and
        lineage (plus ``extra_tags``); the feature list is stored as ``feature_list.json``.
        With ``pyfunc`` (for a bundle) ``model/`` is also an MLflow pyfunc model.

        A pipeline run registers each model once: when ``lineage.pipeline_run_id`` already
        registered a version of ``name`` (a retried or re-run publish), that version is
        returned as it is, whatever ``version`` says; a different file is refused.
        """
        model_path = Path(model_path)
        check_register_args(name, model_path, grade, metrics, key_metric)
        earlier = self._run_version(name, group, lineage.pipeline_run_id, model_path)
        if earlier is not None:
            return earlier
        if self._find_semver(name, version) is not None:
            raise ModelError(
                f"model {name} already has version {version}: pick the next one "
                "with next_version(previous, change)"
            )
        display_name = model_name(model_type, version, grade, key_metric, metrics[key_metric])
        digest = sha256_file(model_path)
        run_id, artifact_uri = log_model_run(
            self._client,
            self._experiment(),
            model_path,
            run_name=display_name,
            metrics=metrics,
            params=params,
            feature_list=lineage.feature_list,
            sha256=digest,
            pyfunc=pyfunc,
        )
        tags = {
            TAG_MANAGED_BY: MANAGED_BY,
            TAG_SEMVER: str(version),
            TAG_GRADE: grade,
            TAG_MODEL_TYPE: model_type,
            TAG_SYMBOL: symbol,
            TAG_GROUP: group,
            TAG_SHA256: digest,
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

    def log_pipeline_run(
        self,
        pipeline_run_id: str,
        stages: Sequence[StageRecord],
        *,
        params: Mapping[str, str],
        metrics: Mapping[str, float],
        models: Sequence[RegisteredModel] = (),
    ) -> str:
        """The parent MLflow run of a pipeline run with a child run per stage, logged once,
        with the registration runs of `models` nested under it; returns its run id."""
        return log_pipeline_run(
            self._client,
            self._experiment(),
            pipeline_run_id,
            stages,
            params=params,
            metrics=metrics,
            children=sorted({model.run_id for model in models if model.run_id}),
        )

    def latest_version(self, name: str) -> SemVer | None:
        """The highest semantic version registered under ``name``, or None."""
        return max((model.semver for model in self._search(name=name)), default=None)

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
        row = self._read(lambda reads: reads.alias(name, alias))
        return None if row is None else RegisteredModel.from_row(row)

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
        """Registered versions matching every given filter, ordered by name and version,
        with their aliases.

        ``grade`` matches exactly; ``min_grade`` keeps that grade and better;
        ``pipeline_run`` keeps the versions that pipeline run registered. An unknown grade
        is a ConfigError naming the grades.
        """
        for wanted in (grade, min_grade):
            if wanted is not None:
                check_grade(wanted)
        filters = {
            key: value
            for key, value in (
                (TAG_MODEL_TYPE, model_type),
                (TAG_GRADE, grade),
                (TAG_SYMBOL, symbol),
                (TAG_GROUP, group),
                (TAG_PIPELINE_RUN, pipeline_run),
            )
            if value is not None
        }
        models = self._search(tags=filters)
        if min_grade is not None:
            models = [model for model in models if grade_at_least(model.grade, min_grade)]
        return sorted(models, key=lambda model: (model.name, model.version))

    def get(self, model_id: str) -> RegisteredModel:
        """The version with id ``{name}/{version}`` or with that display name."""
        return RegisteredModel.from_row(self._version(model_id))

    def info(self, model_id: str) -> ModelInfo:
        """Tags, lineage (with the full feature list), checksum, metrics and params."""
        row = self._version(model_id)
        model = RegisteredModel.from_row(row)
        metrics, params = self._read(lambda reads: reads.run_data(model.run_id))
        features = self._read(lambda reads: reads.feature_list(model.run_id))
        tags = dict(row.tags)
        return ModelInfo(
            model=model,
            lineage=Lineage.from_tags(tags, features),
            metrics=metrics,
            params=params,
            tags=tags,
            source=row.source,
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

    def _read(self, call: Callable[[RegistryReads], T]) -> T:
        """Ask the SQLite tables where the registry has them, else (or when they cannot
        answer) the MLflow client."""
        if self._sql_reads is not None:
            try:
                return call(self._sql_reads)
            except SqlUnavailable as error:
                logger.debug("direct SQLite read failed (%s); reading through MLflow", error)
        return call(self._mlflow_reads)

    def _experiment(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = ensure_experiment(
                self._client, self.experiment_name, self.artifact_root
            )
        return self._experiment_id

    def _search(
        self, *, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> list[RegisteredModel]:
        """This registry's versions (tagged as managed by alphafactory) that match; a quote
        in a value is refused whichever way it reads."""
        wanted = {TAG_MANAGED_BY: MANAGED_BY, **dict(tags or {})}
        for kind, value in [("name", name), *wanted.items()]:
            quoted(kind, value or "")
        rows = self._read(lambda reads: reads.versions(name, wanted))
        return [RegisteredModel.from_row(row) for row in rows]

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
        matches = self._search(name=name, tags={TAG_SEMVER: str(semver)})
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

    def _version(self, model_id: str) -> VersionRow:
        name, _, number = model_id.rpartition("/")
        if name and number.isdigit():
            row = self._read(lambda reads: reads.version(name, int(number)))
            if row is None:
                raise self._not_found(model_id)
            return row
        return self._by_display_name(model_id)

    def _by_display_name(self, display_name: str) -> VersionRow:
        quoted("display name", display_name)
        found = self._read(lambda reads: reads.versions(None, {TAG_DISPLAY_NAME: display_name}))
        if len(found) > 1:
            ids = ", ".join(sorted(f"{row.name}/{row.version}" for row in found))
            raise ModelError(f"display name {display_name!r} matches {ids}: use one of these ids")
        if not found:
            raise self._not_found(display_name)
        return found[0]

    def _not_found(self, model_id: str) -> ModelError:
        return ModelError(
            f"model {model_id!r} is not in the registry at {self.tracking_uri}: "
            "use an id '{name}/{version}' or a display name from list_models"
        )

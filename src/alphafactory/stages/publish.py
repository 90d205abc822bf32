"""Register every production model in the MLflow registry: version, grade, lineage, champion.

Versioning rules (see `alphafactory.registry.versioning`): a new target definition or
feature list bumps the major version, new data the minor, same data with new parameters
the patch. Grades are percentiles within this run's cohort, capped by model-type
benchmarks. The best version of each group (by validation AP) carries the alias `champion`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Literal

from alphafactory import io
from alphafactory.config.models import EnvironmentConfig
from alphafactory.errors import ConfigError
from alphafactory.registry import (
    CHAMPION,
    Lineage,
    ModelRegistry,
    RegisteredModel,
    grade_cohort,
    next_version,
    registered_model_name,
)
from alphafactory.registry.records import feature_list_hash
from alphafactory.stages.common import Plan, RunLayout

log = logging.getLogger(__name__)
MODEL_TYPE = "lightgbm"
KEY_METRIC = "ap"


def registry_for(config: EnvironmentConfig, run_dir: str) -> ModelRegistry:
    """The environment's registry, or a SQLite registry beside local run folders."""
    if config.registry.tracking_uri:
        return ModelRegistry(config.registry.tracking_uri)
    if "://" in run_dir:
        raise ConfigError(
            f"registry.tracking_uri is empty but the run folder {run_dir} is remote; "
            "set registry.tracking_uri to the environment's MLflow server"
        )
    return ModelRegistry(root=local_registry_root(Path(run_dir).resolve().parent))


def local_registry_root(runs_dir: Path) -> Path:
    """Where local runs keep their SQLite registry: `<runs>/registry`."""
    return runs_dir / "registry"


def run_id_of(layout: RunLayout) -> str:
    name = layout.root.rstrip("/").rsplit("/", 1)[-1]
    return name.removesuffix(".incomplete")


def change_kind(
    registry: ModelRegistry, previous: RegisteredModel | None, data_hash: str, params: dict
) -> Literal["definition", "data", "params"]:
    """What changed since the group's latest version decides which version part moves."""
    if previous is None:
        return "definition"
    earlier = registry.info(previous.model_id)
    same_definition = earlier.params.get("variant_id") == str(
        params["variant_id"]
    ) and earlier.lineage.feature_hash == feature_list_hash(list(params["features"]))
    if not same_definition:
        return "definition"
    return "params" if earlier.lineage.data_hash == data_hash else "data"


def publish_models(
    config: EnvironmentConfig, layout: RunLayout, plan: Plan, models: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Register each group's production model; move `champion` when it beats the current one."""
    if not models:
        return {}
    registry = registry_for(config, layout.root)
    grades = grade_cohort(
        {gid: float(m["average_precision"]) for gid, m in models.items()}, MODEL_TYPE
    )
    published: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for gid, fitted in models.items():
            model_file = Path(scratch) / f"{gid}.txt"
            model_file.write_text(io.read_text(layout.model(gid)))
            published[gid] = _publish_one(
                registry, layout, plan, gid, fitted, model_file, grades[gid]
            )
    return published


def _publish_one(
    registry: ModelRegistry,
    layout: RunLayout,
    plan: Plan,
    gid: str,
    fitted: dict[str, Any],
    model_file: Path,
    grade: str,
) -> dict[str, Any]:
    import lightgbm as lgb

    name = registered_model_name(gid)
    features = lgb.Booster(model_file=str(model_file)).feature_name()
    identity = {"variant_id": fitted["variant_id"], "features": features}
    latest = _latest(registry, name, gid)
    version = next_version(
        registry.latest_version(name), change_kind(registry, latest, plan.data_hash, identity)
    )
    champion = registry.champion(name)
    ap = float(fitted["average_precision"])
    registered = registry.register(
        name,
        model_file,
        model_type=MODEL_TYPE,
        metrics={
            KEY_METRIC: ap,
            "best_iteration": float(fitted["best_iteration"]),
            "n_train": float(fitted["n_train"]),
            "n_valid": float(fitted["n_valid"]),
        },
        params={**fitted.get("params", {}), "variant_id": fitted["variant_id"]},
        lineage=Lineage(
            data_hash=plan.data_hash,
            feature_list=tuple(features),
            parent_model_ids=(champion.model_id,) if champion else (),
            pipeline_run_id=run_id_of(layout),
        ),
        grade=grade,
        version=version,
        symbol=str(fitted["variant"]["symbol"]),
        group=gid,
    )
    promoted = champion is None or ap >= registry.info(champion.model_id).metrics[KEY_METRIC]
    if promoted:
        registry.set_alias(name, registered.version, CHAMPION)
    return {
        "model_id": registered.model_id,
        "display_name": registered.display_name,
        "semver": str(version),
        "grade": grade,
        "champion": promoted,
    }


def _latest(registry: ModelRegistry, name: str, gid: str) -> RegisteredModel | None:
    semver = registry.latest_version(name)
    versions = registry.list_models(group=gid) if semver is not None else []
    return next((m for m in versions if m.name == name and m.semver == semver), None)

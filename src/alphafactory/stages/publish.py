"""Register every production model in the MLflow registry: version, grade, lineage, champion.

Versioning rules (see `alphafactory.registry.versioning`): a new target definition or
feature list bumps the major version, new data the minor, same data with new parameters
the patch. Grades are percentiles of the test-period AP within this run's cohort, capped by
model-type benchmarks and at C by a poor backtest (`registry.grades.cap_by_backtest`); a
model whose skill test (corrected for the number of groups) fails is graded F. Only a model
with skill can take the alias `champion`, and only when its test AP is strictly above the
current champion's (a tie keeps the current champion).

Publishing is idempotent per (run, group): a re-run finds the version its run registered
(`ModelRegistry.register`) and reuses it. `champion` moves only once the run is finalised:
the candidates go to `infer/promotions.json`, applied at once in a finalised folder (a
cluster run's folder; its infer task is the last task) and by `alphafactory run` after it
renamed `<id>.incomplete` to `<id>` (`apply_promotions`); a `.failed` run never moves one.

The backtest stage's figures (`backtest/results.json`) ride along as metrics and tags, the
keys named in `alphafactory.registry.grades` (the promotion gates read them): a run without
the file, with `enabled: false`, or without a group in it registers that model without them.
NaN figures (a Sharpe without enough bars or spread) are registered as NaN: MLflow's SQL
store keeps NaN metrics (it clamps infinities, which these figures never are), and the
promotion gates fail a NaN figure.

Each version's `model/` folder is also an MLflow pyfunc model (signature: the model's
features in, the three class probabilities out; input example: the last complete rows of
the run's matrix), so `mlflow.pyfunc.load_model("models:/alphafactory.<group>@champion")`
predicts. The pipeline run itself becomes a parent MLflow run with a child run per stage
(`alphafactory.stages.run_record`) and the registration runs nested under it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import polars as pl

from alphafactory import __version__, io
from alphafactory.backtest.trades import PROBABILITY_COLUMNS
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.sources import read_bars_origin
from alphafactory.errors import ConfigError
from alphafactory.layout import Plan, RunLayout
from alphafactory.models import family, load_model
from alphafactory.registry import (
    CHAMPION,
    Lineage,
    ModelRegistry,
    RegisteredModel,
    next_version,
    registered_model_name,
)
from alphafactory.registry.mlflow_registry import local_registry_root
from alphafactory.registry.pyfunc import PyfuncSpec
from alphafactory.registry.records import (
    SKILL_NO,
    SKILL_YES,
    TAG_DATA_FALLBACK,
    TAG_DATA_SOURCE,
    TAG_PRESET,
    TAG_SELECTION_START,
    TAG_SKILL,
    TAG_SKILL_P,
    TAG_TEST_START,
    feature_list_hash,
)
from alphafactory.runtime import is_finalised, run_id_of
from alphafactory.stages.publish_grading import (
    KEY_METRIC,
    Judged,
    judge_skill,
    read_backtests,
    skill_grades,
)
from alphafactory.stages.run_record import infer_metrics, stage_records

log = logging.getLogger(__name__)
EXAMPLE_ROWS = 5
"""Rows of the run's matrix in each version's MLflow input example."""


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


def promotions_path(layout: RunLayout) -> str:
    """The run's `champion` candidates and, once applied, which of them took the alias."""
    return layout.path("infer", "promotions.json")


def takes_champion(registry: ModelRegistry, name: str, model_id: str, test_ap: float) -> bool:
    """Whether a model with skill is (or becomes) the champion of `name`: no champion yet, or
    a test AP strictly above the champion's; a tie keeps the current champion."""
    champion = registry.champion(name)
    if champion is None or champion.model_id == model_id:
        return True
    return test_ap > registry.info(champion.model_id).metrics.get(KEY_METRIC, 0.0)


def _promote(
    registry: ModelRegistry, candidates: Mapping[str, Mapping[str, Any]]
) -> dict[str, bool]:
    """Move `champion` to every candidate that takes it now; group -> whether it is champion."""
    moved: dict[str, bool] = {}
    for gid, candidate in sorted(candidates.items()):
        name, model_id = str(candidate["name"]), str(candidate["model_id"])
        moved[gid] = takes_champion(registry, name, model_id, float(candidate["test_ap"]))
        champion = registry.champion(name)
        if moved[gid] and (champion is None or champion.model_id != model_id):
            registry.set_alias(name, model_id.rpartition("/")[2], CHAMPION)
    return moved


def apply_promotions(config: EnvironmentConfig, run_dir: str) -> dict[str, bool]:
    """Move the `champion` aliases a finalised run's publish recorded; group -> champion.

    Idempotent: each candidate is judged again against the champion of the moment, and the
    run's `infer/registry.json` is rewritten to say which model is champion.
    """
    layout = RunLayout(run_dir)
    path = promotions_path(layout)
    if not io.exists(path):
        return {}
    if not is_finalised(run_dir):
        raise ConfigError(
            f"run folder {run_dir} is not finalised: champion aliases move only for a "
            "finished run; re-run the pipeline"
        )
    record = io.read_json(path)
    moved = _promote(registry_for(config, run_dir), record["candidates"])
    io.write_json(path, {**record, "applied": moved})
    published_path = layout.path("infer", "registry.json")
    if io.exists(published_path):
        published = io.read_json(published_path)
        for gid, entry in published.items():
            entry["champion"] = moved.get(gid, False)
        io.write_json(published_path, published)
    return moved


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
    """Register each group's production model (once per run), record the `champion`
    candidates (the aliases move now only when the run folder is finalised) and log the
    pipeline run's parent and stage runs."""
    if not models:
        return {}
    registry = registry_for(config, layout.root)
    skills = judge_skill(config, models)
    backtests = read_backtests(layout)
    families = {gid: str(m["family"]) for gid, m in models.items()}
    grades = skill_grades(skills, families, backtests)
    matrix = io.read_parquet(layout.features, io.read_json(layout.selected_features))
    origin = origin_tags(layout)
    published: dict[str, dict[str, Any]] = {}
    registered: list[RegisteredModel] = []
    with tempfile.TemporaryDirectory() as scratch:
        for gid, fitted in models.items():
            model_file = Path(scratch) / Path(layout.model(gid)).name
            model_file.write_bytes(io.read_bytes(layout.model(gid)))
            judged = Judged(skills[gid], grades[gid], backtests.get(gid))
            model, published[gid] = _publish_one(
                registry, layout, plan, gid, fitted, model_file, judged, matrix, origin
            )
            registered.append(model)
    candidates = {
        gid: {"name": registered_model_name(gid), "model_id": p["model_id"],
              "test_ap": p["skill"]["test_ap"]}
        for gid, p in published.items() if p["skill"]["skill"]
    }  # fmt: skip
    record: dict[str, Any] = {"run_id": run_id_of(layout.root), "candidates": candidates}
    if is_finalised(layout.root):
        record["applied"] = _promote(registry, candidates)
        for gid, entry in published.items():
            entry["champion"] = record["applied"].get(gid, False)
    io.write_json(promotions_path(layout), record)
    _log_pipeline_run(config, registry, layout, plan, models, published, registered)
    return published


def _log_pipeline_run(
    config: EnvironmentConfig,
    registry: ModelRegistry,
    layout: RunLayout,
    plan: Plan,
    models: Mapping[str, Any],
    published: Mapping[str, Mapping[str, Any]],
    registered: list[RegisteredModel],
) -> None:
    rows = io.read_parquet(layout.predictions, ["timestamp"]).height
    metrics = infer_metrics(models, published, rows)
    registry.log_pipeline_run(
        run_id_of(layout.root),
        stage_records(config, layout, plan, metrics),
        params={
            "environment": config.name,
            "data_hash": plan.data_hash,
            "groups": str(len(plan.groups)),
            "variants": str(plan.n_variants),
        },  # fmt: skip
        metrics=metrics,
        models=registered,
    )


def pyfunc_spec(matrix: pl.DataFrame, features: list[str], family_name: str) -> PyfuncSpec:
    """The MLflow flavor's outputs, input example (the matrix's last rows with every feature
    present, or its last rows) and the pip requirements of the model's family."""
    columns = matrix.select(features)
    complete = columns.drop_nulls()
    rows = (complete if complete.height else columns).tail(EXAMPLE_ROWS)
    extras = sorted({"registry", *filter(None, [family(family_name).extra])})
    return PyfuncSpec(
        outputs=PROBABILITY_COLUMNS,
        example={name: rows[name].to_list() for name in features},
        requirements=(f"alphafactory[{','.join(extras)}]=={__version__}",),
    )


def origin_tags(layout: RunLayout) -> dict[str, str]:
    """The lineage of the bars prepare recorded (runs prepared before it: none)."""
    origin = read_bars_origin(layout.root)
    if origin is None:
        return {}
    return {TAG_DATA_SOURCE: origin.label, TAG_DATA_FALLBACK: str(origin.fallback).lower()}


def _publish_one(
    registry: ModelRegistry,
    layout: RunLayout,
    plan: Plan,
    gid: str,
    fitted: dict[str, Any],
    model_file: Path,
    judged: Judged,
    matrix: pl.DataFrame,
    origin: Mapping[str, str],
) -> tuple[RegisteredModel, dict[str, Any]]:
    name = registered_model_name(gid)
    features = list(load_model(model_file, fitted["sha256"]).feature_names)
    identity = {"variant_id": fitted["variant_id"], "features": features}
    latest = _latest(registry, name, gid)
    version = next_version(
        registry.latest_version(name), change_kind(registry, latest, plan.data_hash, identity)
    )
    champion = registry.champion(name)
    skill = judged.skill
    periods = plan.periods.to_dict()
    registered = registry.register(
        name,
        model_file,
        model_type=str(fitted["family"]),
        metrics={
            **judged.metrics(),
            "selection_ap": float(fitted["average_precision"]),
            "best_iteration": float(fitted["best_iteration"]),
            "n_train": float(fitted["n_train"]),
            "n_valid": float(fitted["n_valid"]),
        },
        params={**fitted.get("params", {}), "variant_id": fitted["variant_id"]},
        lineage=Lineage(
            data_hash=plan.data_hash,
            feature_list=tuple(features),
            parent_model_ids=(champion.model_id,) if champion else (),
            pipeline_run_id=run_id_of(layout.root),
        ),
        grade=judged.grade,
        version=version,
        symbol=str(fitted["variant"]["symbol"]),
        group=gid,
        extra_tags={
            TAG_SKILL: SKILL_YES if skill.skill else SKILL_NO,
            TAG_PRESET: str(fitted.get("preset", "")),
            TAG_SKILL_P: f"{skill.p_adjusted:.6g}",
            TAG_SELECTION_START: periods["selection_start"],
            TAG_TEST_START: periods["test_start"],
            **origin,
            **judged.tags(),
        },
        pyfunc=pyfunc_spec(matrix, features, str(fitted["family"])),
    )
    return registered, {
        "model_id": registered.model_id,
        "display_name": registered.display_name,
        "semver": str(registered.semver),
        "grade": registered.grade,
        # until the aliases are applied: whether it is or will become the champion
        "champion": skill.skill
        and takes_champion(registry, name, registered.model_id, skill.test_ap),
        "skill": skill.to_dict(),
    }


def _latest(registry: ModelRegistry, name: str, gid: str) -> RegisteredModel | None:
    semver = registry.latest_version(name)
    versions = registry.list_models(group=gid) if semver is not None else []
    return next((m for m in versions if m.name == name and m.semver == semver), None)

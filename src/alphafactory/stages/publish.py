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
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import ConfigError, DataError
from alphafactory.layout import Plan, RunLayout
from alphafactory.models import load_model
from alphafactory.registry import (
    CHAMPION,
    Lineage,
    ModelRegistry,
    RegisteredModel,
    grade_cohort,
    next_version,
    registered_model_name,
)
from alphafactory.registry.grades import (
    METRIC_BACKTEST_MAX_DRAWDOWN,
    METRIC_BACKTEST_SHARPE,
    METRIC_BACKTEST_TOTAL_RETURN,
    METRIC_BACKTEST_TRADES,
    METRIC_DEFLATED_SHARPE,
    METRIC_PBO,
    TAG_BACKTEST_TRIALS,
    TAG_DEFLATED_SHARPE_PASS,
    cap_by_backtest,
)
from alphafactory.registry.records import (
    SKILL_NO,
    SKILL_YES,
    TAG_PRESET,
    TAG_SELECTION_START,
    TAG_SKILL,
    TAG_SKILL_P,
    TAG_TEST_START,
    feature_list_hash,
)
from alphafactory.runtime import is_finalised, run_id_of
from alphafactory.skill import SkillResult, decide_skill

log = logging.getLogger(__name__)
KEY_METRIC = "ap"
KEY_P_ADJUSTED = "p_adjusted"


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


def judge_skill(
    config: EnvironmentConfig, models: dict[str, dict[str, Any]]
) -> dict[str, SkillResult]:
    """Every model's test-period skill, its p-value corrected over the run's groups."""
    raw = {gid: SkillResult.from_dict(m["test"]) for gid, m in models.items()}
    return decide_skill(raw, config.skill.alpha, config.skill.correction)


@dataclass(frozen=True)
class Backtested:
    """A model's walk-forward backtest over the test period, as registry metrics and tags."""

    sharpe: float
    max_drawdown: float
    n_trades: int
    total_return: float
    deflated_sharpe: float
    passes_deflated_sharpe: bool
    n_trials: int
    pbo: float | None

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Backtested:
        """From one group's entry of `backtest/results.json`."""
        metrics, pbo = result["metrics"], result.get("pbo")
        return cls(
            sharpe=float(metrics["sharpe"]),
            max_drawdown=float(metrics["max_drawdown"]),
            n_trades=int(metrics["n_trades"]),
            total_return=float(metrics["total_return"]),
            deflated_sharpe=float(result["deflated_sharpe"]["probability"]),
            passes_deflated_sharpe=bool(result["passes_deflated_sharpe"]),
            n_trials=int(result["n_trials"]),
            pbo=None if pbo is None else float(pbo["pbo"]),
        )

    def metrics(self) -> dict[str, float]:
        figures = {
            METRIC_BACKTEST_SHARPE: self.sharpe,
            METRIC_BACKTEST_MAX_DRAWDOWN: self.max_drawdown,
            METRIC_BACKTEST_TRADES: float(self.n_trades),
            METRIC_BACKTEST_TOTAL_RETURN: self.total_return,
            METRIC_DEFLATED_SHARPE: self.deflated_sharpe,
        }
        if self.pbo is not None:
            figures[METRIC_PBO] = self.pbo
        return figures

    def tags(self) -> dict[str, str]:
        return {
            TAG_BACKTEST_TRIALS: str(self.n_trials),
            TAG_DEFLATED_SHARPE_PASS: SKILL_YES if self.passes_deflated_sharpe else SKILL_NO,
        }


def read_backtests(layout: RunLayout) -> dict[str, Backtested]:
    """Each backtested group's figures; none when the run has no backtest results or ran
    with `backtest.enabled: false`."""
    path = layout.backtest_results
    if not io.exists(path):
        return {}
    results = io.read_json(path)
    if not results.get("enabled"):
        return {}
    backtests: dict[str, Backtested] = {}
    for gid, result in results.get("groups", {}).items():
        try:
            backtests[gid] = Backtested.from_result(result)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(
                f"{path}: the backtest of group {gid} is malformed ({error!r}); re-run the "
                "backtest stage"
            ) from error
    return backtests


def skill_grades(
    skills: dict[str, SkillResult],
    families: dict[str, str],
    backtests: Mapping[str, Backtested] | None = None,
) -> dict[str, str]:
    """Cohort grades on test AP, each model capped by its own family's benchmarks and by a
    poor backtest; a model without significant skill is F whatever its rank."""
    cohort = {gid: r.test_ap for gid, r in skills.items()}
    grades: dict[str, str] = {}
    for name in sorted(set(families.values())):
        graded = grade_cohort(cohort, name)
        grades.update({gid: graded[gid] for gid in cohort if families[gid] == name})
    for gid, backtest in (backtests or {}).items():
        if gid in grades:
            grades[gid] = cap_by_backtest(grades[gid], backtest.metrics())
    return {gid: grades[gid] if skills[gid].skill else "F" for gid in cohort}


def publish_models(
    config: EnvironmentConfig, layout: RunLayout, plan: Plan, models: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Register each group's production model (once per run) and record the `champion`
    candidates; the aliases move now only when the run folder is finalised."""
    if not models:
        return {}
    registry = registry_for(config, layout.root)
    skills = judge_skill(config, models)
    backtests = read_backtests(layout)
    families = {gid: str(m["family"]) for gid, m in models.items()}
    grades = skill_grades(skills, families, backtests)
    published: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for gid, fitted in models.items():
            model_file = Path(scratch) / Path(layout.model(gid)).name
            model_file.write_bytes(io.read_bytes(layout.model(gid)))
            judged = Judged(skills[gid], grades[gid], backtests.get(gid))
            published[gid] = _publish_one(registry, layout, plan, gid, fitted, model_file, judged)
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
    return published


@dataclass(frozen=True)
class Judged:
    """A model's corrected skill test, its backtest (when the run has one) and its grade."""

    skill: SkillResult
    grade: str
    backtest: Backtested | None = None

    def metrics(self) -> dict[str, float]:
        result = self.skill
        return {
            KEY_METRIC: result.test_ap,
            "baseline_ap": result.baseline_ap,
            "test_log_loss": result.test_log_loss,
            "baseline_log_loss": result.baseline_log_loss,
            "p_value": result.p_value,
            KEY_P_ADJUSTED: result.p_adjusted,
            "n_test": float(result.n_events),
            **(self.backtest.metrics() if self.backtest else {}),
        }

    def tags(self) -> dict[str, str]:
        return self.backtest.tags() if self.backtest else {}


def _publish_one(
    registry: ModelRegistry,
    layout: RunLayout,
    plan: Plan,
    gid: str,
    fitted: dict[str, Any],
    model_file: Path,
    judged: Judged,
) -> dict[str, Any]:
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
            **judged.tags(),
        },
    )
    return {
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

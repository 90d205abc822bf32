"""Tune stages 2-4: Optuna searches under the run's compute budget.

* stage 2 — TPE with the source's broad ranges on one representative per window (the
  group with the best stage-1 AP), early stopping 40, scored on the last part of the
  training period (`alphafactory.data.splits.tuning_periods`);
* stage 3 — every group, the space narrowed to the top stage-2 trials of its window and
  warm-started with them, scored by rolling-window CV (5 chronological folds), stopping 40;
* stage 4 — every group, neighbours of its stage-3 best on the grids, stopping 50, scored
  like stage 2 inside the training period; then tuning must earn its place: the candidate
  is adopted only when, fitted as in production, it beats the stage-1 defaults on the
  selection period (which no search saw) by `tune.adopt_margin` and significantly
  (`tune.adopt_alpha`, `alphafactory.stages.adoption`); otherwise the defaults stand.

Each unit (window or group) keeps its study in a journal file mirrored to the run folder,
so a retried task resumes with its finished trials; `tune.storage_url` shares studies
through PostgreSQL instead. A shard task takes its slice of the stage's remaining budget
and hands each unit what is left divided by the units still to do.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.splits import enough_rows, tuning_periods
from alphafactory.layout import Plan, RunLayout, read_plan
from alphafactory.models import Sample, family
from alphafactory.models.lightgbm.shard import check_variant
from alphafactory.progress import tracked
from alphafactory.stages.adoption import adoption
from alphafactory.stages.common import Matrix, load_matrix
from alphafactory.stages.family_fit import fit_budget, fit_family, variant_samples
from alphafactory.stages.fitting import base_params, default_params, family_params, load_group
from alphafactory.stages.rolling_cv import fit_score, fold_groups, fold_samples
from alphafactory.targets.variants import Variant
from alphafactory.tuning import (
    Budget,
    StudyFileMirror,
    cv_objective,
    default_pruner,
    enqueue_params,
    focused_space,
    fold_pruner,
    narrowed_space,
    open_study,
    run_trials,
    snap_to_space,
    split_objective,
    top_trial_params,
    write_study_report,
)
from alphafactory.tuning.space import SearchSpace

log = logging.getLogger(__name__)
LIGHTGBM = "lightgbm"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def stage_units(plan: Plan, winners: dict[str, dict[str, Any]], stage: int) -> dict[str, str]:
    """Unit id → group id: one representative per window for stage 2, every group after."""
    if stage != 2:
        return {gid: gid for gid in winners}
    best: dict[int, str] = {}
    for gid, row in winners.items():
        window = plan.groups[gid][0].window
        if (
            window not in best
            or row["average_precision"] > winners[best[window]]["average_precision"]
        ):
            best[window] = gid
    return {f"w{window}": gid for window, gid in sorted(best.items())}


def winner_family(winners: dict[str, dict[str, Any]], gid: str) -> str:
    """The family of a group's stage-1 winner (runs before families were recorded: LightGBM)."""
    return str(winners[gid].get("family", LIGHTGBM))


def winner_variant(plan: Plan, winners: dict[str, dict[str, Any]], gid: str) -> Variant:
    return plan.variant(gid, winners[gid]["variant_id"])


def _objective(
    stage: int,
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    variant: Variant,
    space: SearchSpace,
    family_name: str = LIGHTGBM,
) -> tuple[Callable[[optuna.Trial], float] | None, int]:
    """The stage's objective for one variant and its number of training rows."""
    if family_name != LIGHTGBM:
        return _family_objective(stage, config, layout, plan, matrix, variant, space, family_name)
    patience = config.tune.stage_early_stopping[stage]
    fixed = base_params(config)
    min_rows = config.tune.min_rows
    groups = fold_groups(layout, plan, matrix, config, variant) if stage == 3 else []
    if groups:
        fits = [
            fit_score(g, variant.variant_id, config.tune.num_rounds, patience, min_rows)
            for g in groups
        ]
        n_train = int(np.mean([len(g.rows[variant.variant_id].train_index) for g in groups]))
        return cv_objective(space, fits, n_train, fixed), n_train
    inner = tuning_periods(matrix.timeline, plan.periods, config.split.selection_fraction)
    group = load_group(layout, plan, matrix, config, [variant], periods=inner)
    if group is None or check_variant(group, variant.variant_id, min_rows).status != "ok":
        log.info("stage %d: %s has too few rows to tune on", stage, variant.variant_id)
        return None, 0
    n_train = len(group.rows[variant.variant_id].train_index)
    fit = fit_score(group, variant.variant_id, config.tune.num_rounds, patience, min_rows)
    return split_objective(space, fit, n_train, fixed), n_train


def _family_objective(
    stage: int,
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    variant: Variant,
    space: SearchSpace,
    family_name: str,
) -> tuple[Callable[[optuna.Trial], float] | None, int]:
    """The same objectives for a family fitted through the protocol (no per-round pruning:
    only LightGBM reports rounds to Optuna; stage 3 still prunes after each fold)."""
    budget = fit_budget(config, config.tune.num_rounds, config.tune.stage_early_stopping[stage])
    fixed = family_params(config, family_name)

    def scorer(train: Sample, valid: Sample) -> Callable[[dict[str, Any], list[Any]], float]:
        def fit(params: dict[str, Any], _callbacks: list[Any]) -> float:
            return fit_family(
                config, family_name, variant.variant_id, train, valid, params, budget
            ).average_precision

        return fit

    folds = fold_samples(layout, plan, matrix, config, variant) if stage == 3 else []
    if folds:
        n_train = int(np.mean([len(train) for train, _ in folds]))
        return cv_objective(space, [scorer(t, v) for t, v in folds], None, fixed), n_train
    inner = tuning_periods(matrix.timeline, plan.periods, config.split.selection_fraction)
    train, valid = variant_samples(layout, plan, matrix, config, variant, periods=inner)
    if not enough_rows(len(train), len(valid), config.tune.min_rows):
        log.info("stage %d: %s has too few rows to tune on", stage, variant.variant_id)
        return None, 0
    objective = split_objective(space, scorer(train, valid), None, fixed, prune=False)
    return objective, len(train)


def unit_space(
    stage: int,
    gid: str,
    plan: Plan,
    previous: dict[str, Any],
    window_key: str,
    family_name: str = LIGHTGBM,
) -> tuple[SearchSpace, list[dict[str, Any]]]:
    """The unit's search space (its family's) and the points to warm-start it with; stage 3
    narrows to its window's stage-2 top points only when they searched the same family."""
    broad = family(family_name).search_space(stage)
    if stage == 2:
        return broad, []
    if stage == 3:
        same = previous.get(window_key, {}).get("family", LIGHTGBM) == family_name
        learned = previous.get(window_key, {}).get("top_params", []) if same else []
        if not learned:
            return broad, []
        return narrowed_space(broad, learned), learned
    best = previous.get(gid, {}).get("best_params")
    if not best:
        return broad, []
    return focused_space(broad, best), [best]


def run_search_shard(
    config: EnvironmentConfig, run_dir: str, shard: int, stage: int
) -> dict[str, Any]:
    """Run stage `stage` (2-4) for the units of one shard; write their best points."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    winners = io.read_json(layout.tune_winners(1))["winners"]
    previous = io.read_json(layout.tune_winners(stage - 1))["units"] if stage > 2 else {}
    budget = Budget.load(layout.budget).shard(stage, len(plan.shards))
    units = {u: g for u, g in stage_units(plan, winners, stage).items() if g in plan.shards[shard]}
    matrix = load_matrix(layout, io.read_json(layout.selected_features))
    results: dict[str, Any] = {}
    for position, (unit, gid) in enumerate(tracked(units.items(), run_dir, shard, unit="units")):
        variant = winner_variant(plan, winners, gid)
        family_name = winner_family(winners, gid)
        unit_budget = budget.shard(stage, len(units) - position)
        results[unit] = _search_unit(
            config, layout, plan, matrix, stage, unit, variant, previous, unit_budget, family_name
        )
        if stage == 4:
            candidate = results[unit]["best_params"] or previous.get(gid, {}).get("best_params")
            with unit_budget.meter(stage, config.parallelism.lgbm_threads, trials=0):
                results[unit]["adoption"] = adoption(
                    config, layout, plan, matrix, variant, candidate or {}, family_name
                )
        budget.absorb(stage, unit_budget)
    io.write_json(layout.tune_shard(stage, shard), {"units": results, "budget": budget.to_dict()})
    values = [r["best_value"] for r in results.values() if math.isfinite(r["best_value"])]
    return {
        "units": len(results),
        "trials": sum(r["trials"] for r in results.values()),
        "mean_best_ap": float(np.mean(values)) if values else 0.0,
        "core_seconds_used": budget.used(stage),
    }


def _search_unit(
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    stage: int,
    unit: str,
    variant: Variant,
    previous: dict[str, Any],
    budget: Budget,
    family_name: str = LIGHTGBM,
) -> dict[str, Any]:
    space, warm = unit_space(
        stage, variant.group_id, plan, previous, f"w{variant.window}", family_name
    )
    objective, n_train = _objective(
        stage, config, layout, plan, matrix, variant, space, family_name
    )
    empty = {"group_id": variant.group_id, "variant_id": variant.variant_id,
             "family": family_name, "trials": 0, "best_value": math.nan, "best_params": {},
             "top_params": []}  # fmt: skip
    if objective is None:
        return empty
    name = f"stage{stage}-{unit}"
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / f"{name}.journal"
        mirror = StudyFileMirror(layout.path("tune", f"stage{stage}", "studies", local.name), local)
        if not config.tune.storage_url:
            mirror.pull()
        study = open_study(
            name,
            storage_url=config.tune.storage_url or None,
            storage_path=None if config.tune.storage_url else local,
            seed=config.data.seed,
            pruner=fold_pruner() if stage == 3 else default_pruner(),
        )
        if stage == 2:
            defaults = (
                default_params(config) if family_name == LIGHTGBM
                else family_params(config, family_name)
            )  # fmt: skip
            warm = [snap_to_space(defaults, space)]
        enqueue_params(study, warm, space)
        run = run_trials(
            study, objective, budget, stage, config.tune.stage_trials[stage],
            threads=config.parallelism.lgbm_threads,
            catch=(ValueError,),
            after_trial=lambda _: None if config.tune.storage_url else mirror.push(),
        )  # fmt: skip
        write_study_report(study, layout.path("tune", f"stage{stage}", "reports", unit))
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    finite = [t for t in complete if t.value is not None and math.isfinite(t.value)]
    if not finite:
        return {**empty, "trials": len(complete)}
    best = max(finite, key=lambda t: t.value or 0.0)
    return {
        **empty,
        "trials": run.complete + run.pruned,
        "best_value": float(best.value or 0.0),
        "best_params": dict(best.params),
        "top_params": top_trial_params(finite, space, k=config.tune.top_k),
        "n_train": n_train,
    }


def run_select_search(config: EnvironmentConfig, run_dir: str, stage: int) -> dict[str, Any]:
    """Fan-in of a search stage: merge units, charge the budget ledger, report planned vs used."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    budget = Budget.load(layout.budget)
    units: dict[str, Any] = {}
    for shard in range(len(plan.shards)):
        payload = io.read_json(layout.tune_shard(stage, shard))
        units.update(payload["units"])
        budget.absorb(stage, Budget.from_dict(payload["budget"]))
    budget.save(layout.budget)
    io.write_json(layout.tune_winners(stage), {"units": units, "budget": budget.report()})
    values = [u["best_value"] for u in units.values() if math.isfinite(u["best_value"])]
    return {
        "units_tuned": len(values),
        "trials": sum(u["trials"] for u in units.values()),
        "mean_best_ap": float(np.mean(values)) if values else 0.0,
        "planned_core_seconds": budget.planned(stage),
        "used_core_seconds": budget.used(stage),
    }

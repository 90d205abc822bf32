"""Tune stages 2-4: Optuna searches under the run's compute budget.

* stage 2 — TPE with the source's broad ranges on one representative per window (the
  group with the best stage-1 AP), early stopping 40;
* stage 3 — every group, the space narrowed to the top stage-2 trials of its window and
  warm-started with them, scored by rolling-window CV (5 chronological folds), stopping 40;
* stage 4 — every group, neighbours of its stage-3 best on the grids, stopping 50, scored
  on the same validation period as stage 1.

Each unit (window or group) keeps its study in a journal file mirrored to the run folder,
so a retried task resumes with its finished trials; `tune.storage_url` shares studies
through PostgreSQL instead. A shard task takes its slice of the stage's remaining budget
and hands each unit what is left divided by the units still to do.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import polars as pl

from alphafactory import io
from alphafactory.config.models import EnvironmentConfig
from alphafactory.data.folds import rolling_folds
from alphafactory.errors import DataError
from alphafactory.models.lightgbm_shard import GroupData, build_group, fit_variant
from alphafactory.models.variants import Variant
from alphafactory.stages.common import Matrix, Plan, RunLayout, load_matrix, read_plan
from alphafactory.stages.fitting import base_params, dataset_params, load_group, usable_columns
from alphafactory.tuning import (
    Budget,
    StudyFileMirror,
    broad_space,
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
optuna.logging.set_verbosity(optuna.logging.WARNING)
TUNED_KEYS = ("num_leaves", "max_depth", "feature_fraction", "learning_rate", "lambda_l1")


def budget_path(layout: RunLayout) -> str:
    return layout.path("tune", "budget.json")


def new_budget(config: EnvironmentConfig) -> Budget:
    """The run's budget: `tune.budget_core_seconds`, or effectively unbounded when unset."""
    total = config.tune.budget_core_seconds or 1e12
    return Budget(total_core_seconds=total, shares=config.tune.budget_shares)


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


def winner_variant(plan: Plan, winners: dict[str, dict[str, Any]], gid: str) -> Variant:
    return next(v for v in plan.groups[gid] if v.variant_id == winners[gid]["variant_id"])


def _fit_score(
    group: GroupData, variant_id: str, rounds: int, patience: int, min_rows: int
) -> Callable[[dict[str, Any], list[Any]], float]:
    def fit(params: dict[str, Any], callbacks: list[Any]) -> float:
        result = fit_variant(
            group, variant_id, params, rounds, patience, min_rows=min_rows, callbacks=callbacks
        )
        return result.average_precision

    return fit


def fold_groups(
    layout: RunLayout, plan: Plan, matrix: Matrix, config: EnvironmentConfig, variant: Variant
) -> list[GroupData]:
    """One binned dataset per rolling fold of the variant's training rows (stage 3)."""
    targets = io.read_parquet(layout.targets(variant.group_id), ["timestamp", variant.variant_id])
    labelled = targets.filter(pl.col(variant.variant_id).is_not_null())
    stamps = labelled["timestamp"].cast(pl.Datetime("us")).to_numpy()
    training = (
        stamps + np.timedelta64(int(plan.bar_seconds * variant.horizon), "s") < plan.cutoff_time
    )
    stamps, labels = stamps[training], labelled[variant.variant_id].to_numpy()[training]
    rows = np.searchsorted(matrix.timeline, stamps)
    try:
        folds = rolling_folds(
            stamps,
            config.tune.n_folds,
            label_horizon=plan.bar_interval * variant.horizon,
            embargo=plan.bar_interval * config.split.embargo_bars,
        )
    except DataError as exc:
        log.warning("stage 3: %s has no usable folds (%s)", variant.variant_id, exc)
        return []
    columns = usable_columns(matrix, variant)
    names = [matrix.names[i] for i in columns]
    usable = [f for f in folds if _fold_is_usable(f, labels, config.tune.min_rows)]
    if len(usable) < 2:
        log.info("stage 3: %s has %d usable folds; using the single split", variant.variant_id,
                 len(usable))  # fmt: skip
        return []
    built = []
    for train_mask, valid_mask in usable:
        train_rows, valid_rows = rows[train_mask], rows[valid_mask]
        per_variant = {
            variant.variant_id: (
                train_rows, labels[train_mask].astype(np.int32),
                valid_rows, labels[valid_mask].astype(np.int32),
            )
        }  # fmt: skip
        built.append(
            build_group(
                variant.group_id,
                matrix.values,
                names,
                np.unique(train_rows),
                np.unique(valid_rows),
                per_variant,
                dataset_params(config),
                columns,
            )  # fmt: skip
        )
    return built


def _fold_is_usable(fold: tuple[np.ndarray, np.ndarray], labels: np.ndarray, min_rows: int) -> bool:
    """Enough rows and at least two classes on both sides, as `fit_variant` requires."""
    train, valid = fold
    return (
        int(train.sum()) >= min_rows
        and int(valid.sum()) >= max(10, min_rows // 5)
        and len(np.unique(labels[train])) >= 2
        and len(np.unique(labels[valid])) >= 2
    )


def _objective(
    stage: int,
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    variant: Variant,
    space: SearchSpace,
) -> tuple[Callable[[optuna.Trial], float] | None, int]:
    """The stage's objective for one variant and its number of training rows."""
    patience = config.tune.stage_early_stopping[stage]
    fixed = base_params(config)
    min_rows = config.tune.min_rows
    groups = fold_groups(layout, plan, matrix, config, variant) if stage == 3 else []
    if groups:
        fits = [
            _fit_score(g, variant.variant_id, config.tune.num_rounds, patience, min_rows)
            for g in groups
        ]
        n_train = int(np.mean([len(g.rows[variant.variant_id].train_index) for g in groups]))
        return cv_objective(space, fits, n_train, fixed), n_train
    group = load_group(layout, plan, matrix, config, [variant])
    if group is None:
        return None, 0
    n_train = len(group.rows[variant.variant_id].train_index)
    fit = _fit_score(group, variant.variant_id, config.tune.num_rounds, patience, min_rows)
    return split_objective(space, fit, n_train, fixed), n_train


def unit_space(
    stage: int, gid: str, plan: Plan, previous: dict[str, Any], window_key: str
) -> tuple[SearchSpace, list[dict[str, Any]]]:
    """The unit's search space and the points to warm-start it with."""
    broad = broad_space()
    if stage == 2:
        return broad, []
    if stage == 3:
        learned = previous.get(window_key, {}).get("top_params", [])
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
    budget = Budget.load(budget_path(layout)).shard(stage, len(plan.shards))
    units = {u: g for u, g in stage_units(plan, winners, stage).items() if g in plan.shards[shard]}
    matrix = load_matrix(layout, io.read_json(layout.selected_features))
    results: dict[str, Any] = {}
    for position, (unit, gid) in enumerate(units.items()):
        variant = winner_variant(plan, winners, gid)
        unit_budget = budget.shard(stage, len(units) - position)
        results[unit] = _search_unit(
            config, layout, plan, matrix, stage, unit, variant, previous, unit_budget
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
) -> dict[str, Any]:
    space, warm = unit_space(stage, variant.group_id, plan, previous, f"w{variant.window}")
    objective, n_train = _objective(stage, config, layout, plan, matrix, variant, space)
    empty = {"group_id": variant.group_id, "variant_id": variant.variant_id, "trials": 0,
             "best_value": math.nan, "best_params": {}, "top_params": []}  # fmt: skip
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
            warm = [snap_to_space(_stage1_point(config), space)]
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


def _stage1_point(config: EnvironmentConfig) -> dict[str, Any]:
    return {
        "num_leaves": config.tune.num_leaves,
        "max_depth": config.tune.max_depth,
        "feature_fraction": 0.7,
        "learning_rate": config.tune.learning_rate,
        "lambda_l1": 0.0,
    }


def run_select_search(config: EnvironmentConfig, run_dir: str, stage: int) -> dict[str, Any]:
    """Fan-in of a search stage: merge units, charge the budget ledger, report planned vs used."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    budget = Budget.load(budget_path(layout))
    units: dict[str, Any] = {}
    for shard in range(len(plan.shards)):
        payload = io.read_json(layout.tune_shard(stage, shard))
        units.update(payload["units"])
        budget.absorb(stage, Budget.from_dict(payload["budget"]))
    budget.save(budget_path(layout))
    io.write_json(layout.tune_winners(stage), {"units": units, "budget": budget.report()})
    values = [u["best_value"] for u in units.values() if math.isfinite(u["best_value"])]
    return {
        "units_tuned": len(values),
        "trials": sum(u["trials"] for u in units.values()),
        "mean_best_ap": float(np.mean(values)) if values else 0.0,
        "planned_core_seconds": budget.planned(stage),
        "used_core_seconds": budget.used(stage),
    }


def tuned_params(config: EnvironmentConfig, layout: RunLayout, gid: str) -> dict[str, Any]:
    """The group's final parameters: stage 4's best, else stage 3's, else stage 1 defaults."""
    from alphafactory.stages.tune import default_params

    params = default_params(config)
    for stage in (3, 4):
        uri = layout.tune_winners(stage)
        if io.exists(uri):
            best = io.read_json(uri)["units"].get(gid, {}).get("best_params")
            if best:
                params.update({k: best[k] for k in TUNED_KEYS if k in best})
    return params


def stage_aps(layout: RunLayout, gids: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per group: stage-1 AP and stage-4 AP, both on the validation period."""
    stage1 = io.read_json(layout.tune_winners(1))["winners"]
    stage4 = (
        io.read_json(layout.tune_winners(4))["units"] if io.exists(layout.tune_winners(4)) else {}
    )
    return {
        gid: {
            "stage1": float(stage1.get(gid, {}).get("average_precision", math.nan)),
            "stage4": float(stage4.get(gid, {}).get("best_value", math.nan)),
        }
        for gid in gids
    }

"""Tune stage 1: every variant with default parameters; the best variant of each group wins."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import AlphaFactoryError
from alphafactory.layout import Plan, RunLayout, read_plan
from alphafactory.models import FitBudget, FitResult, GroupFit, Sample, family
from alphafactory.models.lightgbm.elimination import (
    HalvingSchedule,
    fit_group_halving,
    halve_groups,
)
from alphafactory.models.lightgbm.shard import GroupData, GroupJob, fit_groups, fit_variant
from alphafactory.progress import tracked
from alphafactory.stages.common import Matrix, load_matrix
from alphafactory.stages.family_fit import fit_budget, fit_family, variant_samples
from alphafactory.stages.fitting import default_params, family_params, load_group
from alphafactory.targets.swing import CLASS_NAMES
from alphafactory.tuning import run_budget

log = logging.getLogger(__name__)


def fit_stage1(
    group: GroupData, variant_ids: list[str], params: dict[str, Any], config: EnvironmentConfig
) -> list[FitResult]:
    """Every variant of one group: fully, or by successive halving when `tune.elimination`."""
    ((_, results),) = stage1_results([(group.group_id, group, variant_ids)], params, config)
    assert results is not None
    return results


def stage1_results(
    groups: Iterable[GroupJob], params: dict[str, Any], config: EnvironmentConfig
) -> Iterator[tuple[str, list[FitResult] | None]]:
    """Stage-1 results per group: one pool streaming over the shard's groups (`fit_groups`),
    or successive halving on one pool shared by consecutive groups (`halve_groups`) when
    `tune.elimination`."""
    settings = config.tune
    if settings.elimination:
        schedule = HalvingSchedule(settings.elimination_first_rounds, settings.elimination_eta)
        halve = partial(
            fit_group_halving, params=params, num_rounds=settings.num_rounds,
            early_stopping=settings.early_stopping, min_rows=settings.min_rows,
            schedule=schedule,
        )  # fmt: skip
        for gid, outcome in halve_groups(
            groups,
            lambda group, vids, pool: halve(group, vids, pool=pool),
            config.parallelism.concurrent_fits,
        ):
            yield gid, None if outcome is None else outcome.results
        return
    fit = partial(
        fit_variant,
        params=params,
        num_rounds=settings.num_rounds,
        early_stopping=settings.early_stopping,
        min_rows=settings.min_rows,
    )
    yield from fit_groups(groups, fit, config.parallelism.concurrent_fits)


def run_tune_shard(config: EnvironmentConfig, run_dir: str, shard: int) -> dict[str, Any]:
    """Fit every variant of one shard on the selected features; write one row per variant."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    selected = io.read_json(layout.selected_features)
    matrix = load_matrix(layout, selected)
    params = default_params(config)
    rows: list[dict[str, Any]] = []
    stamps: dict[str, dict[str, np.ndarray]] = {}

    def groups() -> Iterator[GroupJob]:
        for gid in plan.shards[shard]:
            group = load_group(layout, plan, matrix, config, plan.groups[gid])
            if group is not None:  # validation timestamps only: the group itself may go
                stamps[gid] = {
                    vid: matrix.timeline[group.valid_union[r.valid_index]]
                    for vid, r in group.rows.items()
                }
            yield gid, group, [v.variant_id for v in plan.groups[gid]]

    frames = [_empty_predictions()]
    streamed = stage1_results(groups(), params, config)
    for gid, results in tracked(streamed, run_dir, shard, len(plan.shards[shard])):
        if results is None:
            rows.extend(
                {"variant_id": v.variant_id, "group_id": gid, "status": "no_rows"}
                for v in plan.groups[gid]
            )
            continue
        frames += [_predictions(gid, r, stamps[gid]) for r in results if r.status == "ok"]
        results = [*results, *finalist_results(config, layout, plan, matrix, gid, results)]
        rows.extend({**r.summary(), "group_id": gid} for r in results)
        log.info("tune stage 1: group %s done (%d fits)", gid, len(results))
    io.write_parquet(layout.stage1_predictions(shard), pl.concat(frames))
    io.write_json(layout.tune_shard(1, shard), rows)
    fitted = [r for r in rows if r["status"] == "ok"]
    return {"variants_fitted": len(fitted), "variants_skipped": len(rows) - len(fitted)}


def _empty_predictions() -> pl.DataFrame:
    schema: dict[str, Any] = {"group_id": pl.String, "variant_id": pl.String}
    schema["timestamp"] = pl.Datetime("us")
    schema.update({f"p_{name}": pl.Float32 for name in CLASS_NAMES})
    return pl.DataFrame(schema=schema)


def _predictions(gid: str, result: FitResult, stamps: dict[str, np.ndarray]) -> pl.DataFrame:
    """One stage-1 fit's selection-period probabilities, a row per event."""
    probabilities = result.valid_probabilities
    if probabilities is None:  # a variant that did not finish (successive halving)
        return _empty_predictions()
    columns: dict[str, Any] = {
        "group_id": [gid] * len(probabilities),
        "variant_id": [result.variant_id] * len(probabilities),
        "timestamp": pl.Series(stamps[result.variant_id]).cast(pl.Datetime("us")),
    }
    for index, name in enumerate(CLASS_NAMES):
        columns[f"p_{name}"] = pl.Series(probabilities[:, index], dtype=pl.Float32)
    return pl.DataFrame(columns)


def finalists(results: list[FitResult], count: int) -> list[FitResult]:
    """The `count` best LightGBM fits of a group by selection AP (0: every fitted one)."""
    ranked = sorted(
        (r for r in results if r.status == "ok" and math.isfinite(r.average_precision)),
        key=lambda r: (-r.average_precision, r.variant_id),
    )
    return ranked if count == 0 else ranked[:count]


def finalist_results(
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    gid: str,
    lightgbm_results: list[FitResult],
) -> list[FitResult]:
    """Every family but LightGBM on the group's LightGBM finalists, same rows and budget."""
    others = [name for name in config.models.families if name != "lightgbm"]
    if not others:
        return []
    budget = fit_budget(config, config.tune.num_rounds, config.tune.early_stopping)
    chosen = finalists(lightgbm_results, config.models.finalists_per_group)
    samples = {
        r.variant_id: variant_samples(layout, plan, matrix, config, plan.variant(gid, r.variant_id))
        for r in chosen
    }
    results: list[FitResult] = []
    for name in others:
        params = family_params(config, name)
        shared = shared_fitter(name, [train for train, _ in samples.values()], params, budget)
        for variant_id, (train, valid) in samples.items():
            results.append(
                fit_family(config, name, variant_id, train, valid, params, budget, shared=shared)
            )
    return results


def shared_fitter(
    name: str, trains: list[Sample], params: dict[str, Any], budget: FitBudget
) -> GroupFit | None:
    """The family's group fitter for these finalists (e.g. XGBoost's one quantile sketch), or
    None when it has none or cannot build one (then each variant fits on its own)."""
    try:
        return family(name).group_fitter(trains, params, budget)
    except AlphaFactoryError as exc:
        log.info("%s: no shared group fit (%s); fitting variants one by one", name, exc)
        return None


def pick_winners(
    rows: list[dict[str, Any]], families: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Best (variant, family) per group by selection-period AP among `families` (default:
    any); ties go to the smaller variant id, then the family name."""
    winners: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["variant_id"], r.get("family", "lightgbm"))):
        score = row.get("average_precision", math.nan)
        if row["status"] != "ok" or not math.isfinite(score):
            continue
        if families is not None and row.get("family", "lightgbm") not in families:
            continue
        best = winners.get(row["group_id"])
        if best is None or score > best["average_precision"]:
            winners[row["group_id"]] = row
    return dict(sorted(winners.items()))


def run_select_winners(config: EnvironmentConfig, run_dir: str) -> dict[str, Any]:
    """Fan-in of stage 1: read every shard's table, write the winner of each group."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    rows: list[dict[str, Any]] = []
    for shard in range(len(plan.shards)):
        rows.extend(io.read_json(layout.tune_shard(1, shard)))
    winners = pick_winners(rows, config.models.families)
    if not winners:
        raise RuntimeError("tune stage 1: no variant could be fitted; see the shard tables")
    budget = run_budget(config.tune.budget_core_seconds, config.tune.budget_shares)
    spent = sum(float(r.get("seconds", 0.0)) for r in rows) * config.parallelism.lgbm_threads
    budget.charge(1, spent, trials=sum(1 for r in rows if r["status"] == "ok"))
    budget.save(layout.budget)
    io.write_json(layout.tune_winners(1), {"winners": winners, "params": default_params(config)})
    io.write_json(layout.path("tune", "stage1", "variants.json"), rows)
    missing = sorted(set(plan.groups) - set(winners))
    aps = [w["average_precision"] for w in winners.values()]
    return {
        "groups_with_winner": len(winners),
        "groups_without_winner": len(missing),
        "mean_winner_ap": sum(aps) / len(aps),
        "planned_core_seconds": budget.planned(1),
        "used_core_seconds": budget.used(1),
    }

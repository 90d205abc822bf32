"""What a run folder records, stage by stage, as the metrics of MLflow stage runs
(`alphafactory.registry.pipeline_runs`): built at publish time from the files the stages
wrote (`alphafactory.layout`), so no stage task needs MLflow.

Each stage's metrics are those its task reports to KFP, recomputed from its outputs:
prepare's counts (plan, hygiene report, bars origin), screen's variants and selected features, each
tune stage's fits or searches and its compute budget (the ledger), train's models and APs,
the backtest's summary, infer's predictions and registrations. Tune stages 2-4 add one
series per study: `trial_ap/<unit>`, the objective of every finished trial at step = trial
number. A stage whose outputs are absent (not run, e.g. tune 3 and 4 of a short run) has no
record.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.sources import read_bars_origin
from alphafactory.layout import Plan, RunLayout
from alphafactory.registry.pipeline_runs import StageRecord
from alphafactory.stages.backtest import summary as backtest_summary
from alphafactory.stages.screen import screened_variants
from alphafactory.tuning.budget import Budget

log = logging.getLogger(__name__)
SEARCH_STAGES = (2, 3, 4)
TRIAL_SERIES = "trial_ap"
COMPLETE = "COMPLETE"


def stage_records(
    config: EnvironmentConfig, layout: RunLayout, plan: Plan, infer: Mapping[str, float]
) -> list[StageRecord]:
    """The record of every stage the run folder has outputs of, in pipeline order; `infer`
    holds the infer stage's metrics (known to the publish step, not yet on disk)."""
    budget = Budget.load(layout.budget) if io.exists(layout.budget) else None
    builders: list[tuple[str, Callable[[], StageRecord | None]]] = [
        ("prepare", lambda: _prepare(layout, plan)),
        ("screen", lambda: _screen(config, layout, plan)),
        ("tune 1", lambda: _tune1(layout, plan, budget)),
        *[(f"tune {s}", lambda s=s: _search(layout, s, budget)) for s in SEARCH_STAGES],
        ("train", lambda: _train(layout, plan)),
        ("backtest", lambda: _backtest(layout)),
    ]
    records = [record for name, build in builders if (record := _built(name, build))]
    return [*records, StageRecord("infer", dict(infer))]


def _built(name: str, build: Callable[[], StageRecord | None]) -> StageRecord | None:
    """A stage's record; None (with a warning) when its outputs are not in the form this
    version writes, e.g. a run folder of an older version: bookkeeping never fails a run."""
    try:
        return build()
    except (KeyError, TypeError, ValueError) as error:
        log.warning("%s: outputs not recorded in MLflow, unexpected content (%r)", name, error)
        return None


def infer_metrics(
    models: Mapping[str, Any], published: Mapping[str, Mapping[str, Any]], prediction_rows: int
) -> dict[str, float]:
    """The infer stage's metrics: predictions, test APs, skill, registrations, champions."""
    test_aps = [float(p["skill"]["test_ap"]) for p in published.values()]
    finite = [ap for ap in test_aps if math.isfinite(ap)]
    return {
        "models": len(models),
        "prediction_rows": prediction_rows,
        "mean_test_ap": float(np.mean(finite)) if finite else 0.0,
        "min_test_ap": float(np.min(finite)) if finite else 0.0,
        "max_test_ap": float(np.max(finite)) if finite else 0.0,
        "models_with_skill": sum(1 for p in published.values() if p["skill"]["skill"]),
        "models_registered": len(published),
        "champions_promoted": sum(1 for p in published.values() if p["champion"]),
    }


def _shards(layout: RunLayout, plan: Plan, path: Any) -> list[Any] | None:
    """Every shard's file (`path(shard)`), or None when any is missing."""
    paths = [path(shard) for shard in range(len(plan.shards))]
    if not paths or not all(io.exists(p) for p in paths):
        return None
    return [io.read_json(p) for p in paths]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _prepare(layout: RunLayout, plan: Plan) -> StageRecord | None:
    path = layout.path("prepare", "report.json")
    if not io.exists(path):
        return None
    report = io.read_json(path)
    origin = read_bars_origin(layout.root)
    counts = {str(reason): int(count) for reason, count in report["counts"].items()}
    return StageRecord(
        "prepare",
        {
            "rows": plan.n_rows,
            "features_generated": int(report["kept"]) + sum(counts.values()),
            "features_kept": int(report["kept"]),
            **{f"dropped_{reason}": count for reason, count in counts.items()},
            "variants": plan.n_variants,
            "groups": len(plan.groups),
            "shards": len(plan.shards),
            **({} if origin is None else {"synthetic_fallback": int(origin.fallback)}),
        },
    )


def _screen(config: EnvironmentConfig, layout: RunLayout, plan: Plan) -> StageRecord | None:
    shards = _shards(layout, plan, layout.screen_shard)
    if shards is None or not io.exists(layout.selected_features):
        return None
    ranked = sum(len(rankings) for rankings in shards)
    per_group = config.screen.variants_per_group
    screened = sum(len(screened_variants(v, per_group)) for v in plan.groups.values())
    return StageRecord(
        "screen",
        {
            "variants_screened": ranked,
            "variants_skipped": screened - ranked,
            "features_selected": len(io.read_json(layout.selected_features)),
        },
    )


def _tune1(layout: RunLayout, plan: Plan, budget: Budget | None) -> StageRecord | None:
    shards = _shards(layout, plan, lambda shard: layout.tune_shard(1, shard))
    if shards is None or not io.exists(layout.tune_winners(1)) or budget is None:
        return None
    rows = [row for shard in shards for row in shard]
    fitted = sum(1 for row in rows if row["status"] == "ok")
    winners = io.read_json(layout.tune_winners(1))["winners"]
    aps = {gid: float(w["average_precision"]) for gid, w in winners.items()}
    return StageRecord(
        "tune 1",
        {
            "variants_fitted": fitted,
            "variants_skipped": len(rows) - fitted,
            "groups_with_winner": len(winners),
            "groups_without_winner": len(set(plan.groups) - set(winners)),
            "mean_winner_ap": sum(aps.values()) / len(aps) if aps else 0.0,
            "planned_core_seconds": budget.planned(1),
            "used_core_seconds": budget.used(1),
            **{f"winner_ap/{gid}": ap for gid, ap in sorted(aps.items())},
        },
    )


def _search(layout: RunLayout, stage: int, budget: Budget | None) -> StageRecord | None:
    if not io.exists(layout.tune_winners(stage)) or budget is None:
        return None
    units: dict[str, Any] = io.read_json(layout.tune_winners(stage))["units"]
    values = [u["best_value"] for u in units.values() if math.isfinite(u["best_value"])]
    series: dict[str, list[tuple[int, float]]] = {}
    for unit in sorted(units):
        path = layout.path("tune", f"stage{stage}", "reports", unit, "trials.json")
        if io.exists(path):
            series[f"{TRIAL_SERIES}/{unit}"] = [
                (int(t["number"]), float(t["value"]))
                for t in io.read_json(path)
                if t["state"] == COMPLETE and t["value"] is not None
            ]
    return StageRecord(
        f"tune {stage}",
        {
            "units_tuned": len(values),
            "trials": sum(int(u["trials"]) for u in units.values()),
            "mean_best_ap": _mean(values),
            "planned_core_seconds": budget.planned(stage),
            "used_core_seconds": budget.used(stage),
        },
        series,
    )


def _train(layout: RunLayout, plan: Plan) -> StageRecord | None:
    shards = _shards(layout, plan, layout.train_shard)
    if shards is None:
        return None
    fitted = {g: m for shard in shards for g, m in shard.items() if m.get("status") == "ok"}
    selection = {g: float(m["average_precision"]) for g, m in fitted.items()}
    test = {g: float(m["test"]["test_ap"]) for g, m in fitted.items()}
    return StageRecord(
        "train",
        {
            "models_trained": len(fitted),
            "mean_selection_ap": _mean(list(selection.values())),
            "mean_test_ap": _mean([ap for ap in test.values() if math.isfinite(ap)]),
            "cache_hits": sum(1 for m in fitted.values() if m.get("cache_hit")),
            **{f"selection_ap/{g}": ap for g, ap in sorted(selection.items())},
            **{f"test_ap/{g}": ap for g, ap in sorted(test.items())},
        },
    )


def _backtest(layout: RunLayout) -> StageRecord | None:
    if not io.exists(layout.backtest_results):
        return None
    groups: dict[str, Any] = io.read_json(layout.backtest_results).get("groups", {})
    per_group = {
        f"{name}/{gid}": float(result["metrics"][name])
        for gid, result in sorted(groups.items())
        for name in ("sharpe", "max_drawdown", "total_return")
    }
    return StageRecord("backtest", {**backtest_summary(groups), **per_group})

"""Screen stage: a shallow LightGBM per variant ranks features; aggregation picks the survivors."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import RunLayout, read_plan
from alphafactory.models import FitResult
from alphafactory.models.lightgbm.shard import GroupData, fit_many, fit_variant
from alphafactory.progress import tracked
from alphafactory.stages.common import load_matrix
from alphafactory.stages.fitting import base_params, load_group
from alphafactory.targets.variants import Variant

log = logging.getLogger(__name__)


def screened_variants(variants: Sequence[Variant], per_group: int) -> list[Variant]:
    """All variants, or `per_group` of them spread evenly over the group's grid."""
    if per_group <= 0 or per_group >= len(variants):
        return list(variants)
    picks = np.linspace(0, len(variants) - 1, per_group).round().astype(int)
    return [variants[i] for i in sorted(set(picks.tolist()))]


def top_features(group: GroupData, result: FitResult, top_k: int) -> list[str]:
    """Names of the `top_k` features by total gain (features never used are left out)."""
    assert result.model is not None
    gains = result.model.feature_importance()
    assert gains is not None, "the screen model is LightGBM, which has gain importance"
    order = np.argsort(-gains, kind="stable")
    return [group.feature_names[i] for i in order[:top_k] if gains[i] > 0]


def run_screen_shard(config: EnvironmentConfig, run_dir: str, shard: int) -> dict[str, Any]:
    """Screen every variant of one shard; write {variant_id: top features}; return metrics."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    matrix = load_matrix(layout)
    settings = config.screen
    params = {
        **base_params(config),
        "num_leaves": settings.num_leaves,
        "max_depth": settings.max_depth,
        "learning_rate": settings.learning_rate,
    }
    rankings: dict[str, list[str]] = {}
    skipped = 0
    for gid in tracked(plan.shards[shard], run_dir, shard):
        variants = screened_variants(plan.groups[gid], settings.variants_per_group)
        group = load_group(layout, plan, matrix, config, variants, settings.subsample_rows)
        if group is None:
            skipped += len(variants)
            continue
        fit = partial(
            fit_variant,
            group,
            params=params,
            num_rounds=settings.num_rounds,
            early_stopping=settings.early_stopping,
            min_rows=config.tune.min_rows,
            keep_model=True,
        )
        results = fit_many(
            [partial(fit, v.variant_id) for v in variants], config.parallelism.concurrent_fits
        )
        for result in results:
            if result.status == "ok":
                rankings[result.variant_id] = top_features(group, result, settings.top_k)
            else:
                skipped += 1
        log.info("screen: group %s done (%d variants)", gid, len(variants))
    io.write_json(layout.screen_shard(shard), rankings)
    return {"variants_screened": len(rankings), "variants_skipped": skipped}


def aggregate_rankings(
    rankings: dict[str, list[str]], select_min: int, select_max: int
) -> list[str]:
    """Features chosen by at least two variants (at least `select_min`, at most `select_max`).

    Order: how many variants chose the feature, then its mean rank among them.
    """
    votes: Counter[str] = Counter()
    rank_sum: dict[str, float] = defaultdict(float)
    for ranked in rankings.values():
        for position, name in enumerate(ranked):
            votes[name] += 1
            rank_sum[name] += position
    ordered = sorted(votes, key=lambda n: (-votes[n], rank_sum[n] / votes[n], n))
    robust = [n for n in ordered if votes[n] >= 2]
    count = min(select_max, max(select_min, len(robust)), len(ordered))
    return ordered[:count]


def run_screen_aggregate(config: EnvironmentConfig, run_dir: str) -> dict[str, Any]:
    """Fan-in: read every shard's rankings (named by the plan) and write the selection."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    rankings: dict[str, list[str]] = {}
    for shard in range(len(plan.shards)):
        rankings.update(io.read_json(layout.screen_shard(shard)))
    selected = aggregate_rankings(rankings, config.screen.select_min, config.screen.select_max)
    if not selected:
        raise RuntimeError("screen selected no features: every variant was skipped")
    io.write_json(layout.selected_features, selected)
    return {"variants_ranked": len(rankings), "features_selected": len(selected)}

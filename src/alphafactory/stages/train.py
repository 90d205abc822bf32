"""Train stage: production fit of each group winner, with metrics, importance and a model file."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve

from alphafactory import io
from alphafactory.config.models import EnvironmentConfig
from alphafactory.metrics import class_confusion
from alphafactory.models.lightgbm_shard import FitResult, fit_variant
from alphafactory.models.variants import Variant
from alphafactory.stages.common import RunLayout, load_matrix, read_plan
from alphafactory.stages.fitting import load_group
from alphafactory.targets.swing import CLASS_NAMES

log = logging.getLogger(__name__)


def production_params(config: EnvironmentConfig, tuned: dict[str, Any]) -> dict[str, Any]:
    """The winner's tuned parameters with the production learning rate."""
    return {**tuned, "learning_rate": config.train.learning_rate}


def pr_curves(labels: np.ndarray, probabilities: np.ndarray, points: int = 50) -> dict[str, Any]:
    """Per-class precision/recall curves, thinned to at most `points` points each."""
    curves: dict[str, Any] = {}
    for index, name in enumerate(CLASS_NAMES):
        if not np.any(labels == index):
            continue
        precision, recall, _ = precision_recall_curve(labels == index, probabilities[:, index])
        keep = np.unique(np.linspace(0, len(precision) - 1, points).round().astype(int))
        curves[name] = {
            "precision": precision[keep].round(4).tolist(),
            "recall": recall[keep].round(4).tolist(),
        }
    return curves


def describe_fit(result: FitResult, feature_names: list[str]) -> dict[str, Any]:
    """Metrics, confusion matrix, PR curves and gain importance of a production fit."""
    assert result.booster is not None
    assert result.valid_labels is not None and result.valid_probabilities is not None
    gains = result.booster.feature_importance(importance_type="gain")
    order = np.argsort(-gains, kind="stable")[:25]
    return {
        **result.summary(),
        "confusion_matrix": class_confusion(result.valid_labels, result.valid_probabilities),
        "pr_curves": pr_curves(result.valid_labels, result.valid_probabilities),
        "importance": [
            {"feature": feature_names[i], "gain": round(float(gains[i]), 3)}
            for i in order
            if gains[i] > 0
        ],
    }


def run_train_shard(config: EnvironmentConfig, run_dir: str, shard: int) -> dict[str, Any]:
    """Fit each winner of this shard's groups for production and save its model file."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    stage1 = io.read_json(layout.tune_winners(1))
    winners, tuned = stage1["winners"], stage1["params"]
    selected = io.read_json(layout.selected_features)
    matrix = load_matrix(layout, selected)
    params = production_params(config, tuned)
    trained: dict[str, Any] = {}
    for gid in plan.shards[shard]:
        if gid not in winners:
            continue
        variant = next(v for v in plan.groups[gid] if v.variant_id == winners[gid]["variant_id"])
        trained[gid] = _train_group(layout, plan, matrix, config, variant, params)
    io.write_json(layout.train_shard(shard), trained)
    aps = [t["average_precision"] for t in trained.values() if t["status"] == "ok"]
    return {"models_trained": len(aps), "mean_ap": float(np.mean(aps)) if aps else 0.0}


def _train_group(
    layout: RunLayout,
    plan: Any,
    matrix: Any,
    config: EnvironmentConfig,
    variant: Variant,
    params: dict[str, Any],
) -> dict[str, Any]:
    group = load_group(layout, plan, matrix, config, [variant])
    if group is None:
        return {"variant_id": variant.variant_id, "status": "no_rows"}
    result = fit_variant(
        group,
        variant.variant_id,
        params,
        config.train.num_rounds,
        config.train.early_stopping,
        min_rows=config.tune.min_rows,
        keep_model=True,
    )
    if result.status != "ok" or result.booster is None:
        return result.summary()
    io.write_text(layout.model(variant.group_id), result.booster.model_to_string())
    log.info("train: %s AP %.4f", variant.group_id, result.average_precision)
    return {**describe_fit(result, group.feature_names), "variant": variant.to_dict()}

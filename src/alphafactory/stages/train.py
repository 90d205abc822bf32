"""Train stage: production fit of each group winner, with metrics, importance and a model file."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import precision_recall_curve

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import MODEL_FILE, Plan, RunLayout, read_plan
from alphafactory.metrics import class_confusion
from alphafactory.models import FitResult, FittedModel, chosen_preset, family, save_model
from alphafactory.progress import tracked
from alphafactory.registry.cache import ModelCache, code_version
from alphafactory.registry.checksums import sha256_file, verify_checksum
from alphafactory.skill import skill_test
from alphafactory.stages.adoption import (
    production_family_fit,
    production_fit,
    production_params,
    tuned_params,
)
from alphafactory.stages.common import Matrix, load_matrix
from alphafactory.stages.family_fit import variant_samples
from alphafactory.stages.fitting import load_group, period_rows, usable_columns
from alphafactory.targets.swing import CLASS_NAMES
from alphafactory.targets.variants import Variant

log = logging.getLogger(__name__)


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


#: The thresholds every test-period ROC curve is read at: one grid for every group, so the
#: curves of a shard pool exactly (see `alphafactory.stages.kfp_artifacts`), fine enough for
#: the narrow probability bands of weak models.
ROC_THRESHOLDS = np.linspace(0.0, 1.0, 201).round(3)


def _roc_at(hits: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """False and true positive rates of `scores >= t` for each `t` of `ROC_THRESHOLDS`."""
    above = scores[:, None] >= ROC_THRESHOLDS[None, :]
    return {
        "fpr": above[~hits].mean(axis=0).round(4).tolist(),
        "tpr": above[hits].mean(axis=0).round(4).tolist(),
        "thresholds": ROC_THRESHOLDS.tolist(),
    }


def roc_curves(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """One-vs-rest ROC curve of each class with positive and negative events, read at
    `ROC_THRESHOLDS`."""
    curves: dict[str, Any] = {}
    for index, name in enumerate(CLASS_NAMES):
        hits = labels == index
        if hits.any() and not hits.all():
            curves[name] = _roc_at(hits, probabilities[:, index])
    return curves


def importance_rows(model: FittedModel, top: int = 25) -> list[dict[str, Any]]:
    """The model's `top` features by importance (gain for trees); [] when it has none."""
    gains = model.feature_importance()
    if gains is None:
        return []
    order = np.argsort(-gains, kind="stable")[:top]
    return [
        {"feature": model.feature_names[i], "gain": round(float(gains[i]), 3)}
        for i in order
        if gains[i] > 0
    ]


def describe_fit(result: FitResult) -> dict[str, Any]:
    """Metrics, confusion matrix, PR curves and feature importance of a production fit."""
    assert result.valid_labels is not None and result.valid_probabilities is not None
    assert result.model is not None
    return {
        **result.summary(),
        "confusion_matrix": class_confusion(result.valid_labels, result.valid_probabilities),
        "pr_curves": pr_curves(result.valid_labels, result.valid_probabilities),
        "importance": importance_rows(result.model),
    }


def run_train_shard(config: EnvironmentConfig, run_dir: str, shard: int) -> dict[str, Any]:
    """Fit each winner of this shard's groups for production and save its model file."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    winners = io.read_json(layout.tune_winners(1))["winners"]
    selected = io.read_json(layout.selected_features)
    matrix = load_matrix(layout, selected)
    trained: dict[str, Any] = {}
    for gid in tracked(plan.shards[shard], run_dir, shard):
        if gid not in winners:
            continue
        variant = plan.variant(gid, winners[gid]["variant_id"])
        family_name = str(winners[gid].get("family", "lightgbm"))
        params = production_params(
            config, tuned_params(config, layout, gid, family_name), family_name
        )
        trained[gid] = _train_group(layout, plan, matrix, config, variant, family_name, params)
    io.write_json(layout.train_shard(shard), trained)
    fitted = [t for t in trained.values() if t["status"] == "ok"]
    test_aps = [t["test"]["test_ap"] for t in fitted if np.isfinite(t["test"]["test_ap"])]
    return {
        "models_trained": len(fitted),
        "mean_selection_ap": float(np.mean([t["average_precision"] for t in fitted]))
        if fitted
        else 0.0,
        "mean_test_ap": float(np.mean(test_aps)) if test_aps else 0.0,
    }


def model_cache(run_dir: str) -> ModelCache:
    """The model cache beside the run folders (`<runs>/cache`), shared by every run."""
    return ModelCache(Path(run_dir).resolve().parent / "cache")


def _train_group(
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    config: EnvironmentConfig,
    variant: Variant,
    family_name: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Fit one winner, or take an identical earlier fit from the model cache."""
    key_parts = {
        "data_hash": plan.data_hash,
        "variant": variant.to_dict(),
        "family": family_name,
        "preset": chosen_preset(config.models.preset),
        "params": params,
        "features": matrix.names,
        "periods": plan.periods.to_dict(),
        "train": config.train.model_dump(exclude={"force_retrain"}),
        "split": config.split.model_dump(),
        "skill": config.skill.model_dump(),
        "code_version": code_version(),
    }

    def fit_into(folder: Path) -> dict[str, Any]:
        return _fit_production(layout, plan, matrix, config, variant, family_name, params, folder)

    if "://" in layout.root:  # remote run folders (cluster runs) are not cached locally
        with tempfile.TemporaryDirectory() as folder:
            described = fit_into(Path(folder))
            _publish_model(layout, variant, Path(folder), described)
            return described
    entry = model_cache(layout.root).get_or_train(
        key_parts, fit_into, symbol=variant.symbol, force=config.train.force_retrain
    )
    _publish_model(layout, variant, entry.path, entry.metadata)
    return {**entry.metadata, "cache_hit": entry.hit}


def _publish_model(
    layout: RunLayout, variant: Variant, folder: Path, described: Mapping[str, Any]
) -> None:
    """Copy the model file into the run folder, checked against the digest the shard records
    (infer and registration verify the run folder's copy against that same digest)."""
    model_file = folder / MODEL_FILE
    if not model_file.exists():
        return
    if "sha256" in described:
        verify_checksum(model_file, str(described["sha256"]))
    io.write_bytes(layout.model(variant.group_id), model_file.read_bytes())


def _fit_production(
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    config: EnvironmentConfig,
    variant: Variant,
    family_name: str,
    params: dict[str, Any],
    folder: Path,
) -> dict[str, Any]:
    fitted = _production_result(layout, plan, matrix, config, variant, family_name, params)
    if fitted is None:
        return {"variant_id": variant.variant_id, "status": "no_rows"}
    result, train_labels = fitted
    model = result.model
    if result.status != "ok" or model is None:
        return result.summary()
    preset = chosen_preset(config.models.preset)
    saved = save_model(
        model, family(model.family), folder / MODEL_FILE, {"params": params, "preset": preset}
    )
    test = score_test_period(layout, plan, matrix, config, variant, model, train_labels)
    log.info(
        "train: %s selection AP %.4f, test AP %s (baseline %s, p %.3f)",
        variant.group_id, result.average_precision, _fmt(test["test_ap"]),
        _fmt(test["baseline_ap"]), test["p_value"],
    )  # fmt: skip
    return {
        **describe_fit(result),
        "family": model.family,
        "preset": preset,
        "sha256": sha256_file(saved),
        "variant": variant.to_dict(),
        "params": params,
        "test": test,
    }


def _production_result(
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    config: EnvironmentConfig,
    variant: Variant,
    family_name: str,
    params: dict[str, Any],
) -> tuple[FitResult, np.ndarray] | None:
    """The production fit (train period, early stopping on selection) and its training
    labels; None when the variant has no rows on one side."""
    if family_name == "lightgbm":
        group = load_group(layout, plan, matrix, config, [variant])
        if group is None:
            return None
        result = production_fit(config, group, variant.variant_id, params)
        return result, group.rows[variant.variant_id].train_label
    train, valid = variant_samples(layout, plan, matrix, config, variant)
    if len(train) == 0 or len(valid) == 0:
        return None
    result = production_family_fit(config, family_name, variant.variant_id, train, valid, params)
    return result, train.labels


def events_in_test_period(
    layout: RunLayout, plan: Plan, matrix: Matrix, config: EnvironmentConfig, variant: Variant
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows (the group's usable columns) and labels of the variant's test events."""
    targets, masks = period_rows(layout, plan, config, variant)
    stamps = targets["timestamp"].cast(pl.Datetime("us")).to_numpy()[masks.test]
    labels = targets[variant.variant_id].to_numpy()[masks.test].astype(np.int32)
    rows = np.searchsorted(matrix.timeline, stamps)
    return matrix.values[np.ix_(rows, usable_columns(matrix, variant))], labels


def score_test_period(
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    config: EnvironmentConfig,
    variant: Variant,
    model: FittedModel,
    train_labels: np.ndarray,
) -> dict[str, Any]:
    """The one touch of the test period: the production model's skill test on its events.

    Nothing computed here feeds back into a choice of features, variants or parameters.
    """
    features, labels = events_in_test_period(layout, plan, matrix, config, variant)
    probabilities = np.zeros((0, len(CLASS_NAMES)))
    if len(labels):  # a group may have no events in the test period
        probabilities = model.predict_proba(features)
    settings = config.skill
    result = skill_test(
        labels,
        probabilities,
        train_labels,
        permutations=settings.permutations,
        bootstraps=settings.bootstraps,
        block=settings.block_events,
        seed=config.data.seed,
    )
    described: dict[str, Any] = result.to_dict()
    if len(labels):
        described["confusion_matrix"] = class_confusion(labels, probabilities)
        described["pr_curves"] = pr_curves(labels, probabilities)
        described["roc_curves"] = roc_curves(labels, probabilities)
    return described


def _fmt(value: float) -> str:
    return f"{value:.4f}" if np.isfinite(value) else "n/a"

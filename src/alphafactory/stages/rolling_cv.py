"""Rolling-window CV over a variant's training period: the folds of tune stage 3, binned once
per fold, and fit functions that score a parameter set on a binned split."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.folds import rolling_folds
from alphafactory.data.splits import enough_rows
from alphafactory.errors import DataError
from alphafactory.layout import Plan, RunLayout
from alphafactory.models import Sample
from alphafactory.models.lightgbm.shard import GroupData, build_group, fit_variant
from alphafactory.stages.common import Matrix
from alphafactory.stages.fitting import dataset_params, period_rows, usable_columns
from alphafactory.targets.variants import Variant

log = logging.getLogger(__name__)


def fit_score(
    group: GroupData, variant_id: str, rounds: int, patience: int, min_rows: int
) -> Callable[[dict[str, Any], list[Any]], float]:
    def fit(params: dict[str, Any], callbacks: list[Any]) -> float:
        result = fit_variant(
            group, variant_id, params, rounds, patience, min_rows=min_rows, callbacks=callbacks
        )
        return result.average_precision

    return fit


def usable_folds(
    layout: RunLayout, plan: Plan, config: EnvironmentConfig, variant: Variant
) -> tuple[pl.DataFrame, list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The variant's targets, its usable rolling folds over the training period as masks over
    the targets' rows (fewer than two: none), and the rows' (embargoed) label ends."""
    targets, masks = period_rows(layout, plan, config, variant)
    training = np.flatnonzero(masks.train)
    stamps = targets["timestamp"].cast(pl.Datetime("us")).to_numpy()[training]
    labels = targets[variant.variant_id].to_numpy()[training]
    try:
        folds = rolling_folds(stamps, config.tune.n_folds, label_ends=masks.label_ends[training])
    except DataError as exc:
        log.warning("stage 3: %s has no usable folds (%s)", variant.variant_id, exc)
        return targets, [], masks.label_ends
    usable = [f for f in folds if fold_is_usable(f, labels, config.tune.min_rows)]
    if len(usable) < 2:
        log.info("stage 3: %s has %d usable folds; using the single split", variant.variant_id,
                 len(usable))  # fmt: skip
        return targets, [], masks.label_ends

    def on_targets(mask: np.ndarray) -> np.ndarray:
        full = np.zeros(targets.height, dtype=bool)
        full[training[mask]] = True
        return full

    return targets, [(on_targets(t), on_targets(v)) for t, v in usable], masks.label_ends


def fold_groups(
    layout: RunLayout, plan: Plan, matrix: Matrix, config: EnvironmentConfig, variant: Variant
) -> list[GroupData]:
    """One binned dataset per rolling fold of the variant's training rows (stage 3)."""
    targets, folds, _ = usable_folds(layout, plan, config, variant)
    stamps = targets["timestamp"].cast(pl.Datetime("us")).to_numpy()
    labels = targets[variant.variant_id].fill_null(0).to_numpy().astype(np.int32)
    rows = np.searchsorted(matrix.timeline, stamps)
    columns = usable_columns(matrix, variant)
    names = [matrix.names[i] for i in columns]
    built = []
    for train_mask, valid_mask in folds:
        train_rows, valid_rows = rows[train_mask], rows[valid_mask]
        per_variant = {
            variant.variant_id: (
                train_rows, labels[train_mask], valid_rows, labels[valid_mask]
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


def fold_samples(
    layout: RunLayout, plan: Plan, matrix: Matrix, config: EnvironmentConfig, variant: Variant
) -> list[tuple[Sample, Sample]]:
    """The same rolling folds as (train, valid) Samples, for families other than LightGBM."""
    from alphafactory.stages.family_fit import masked_samples

    targets, folds, ends = usable_folds(layout, plan, config, variant)
    return [masked_samples(matrix, targets, variant, t, v, ends) for t, v in folds]


def fold_is_usable(fold: tuple[np.ndarray, np.ndarray], labels: np.ndarray, min_rows: int) -> bool:
    """Enough rows and at least two classes on both sides, as `fit_variant` requires."""
    train, valid = fold
    return (
        enough_rows(int(train.sum()), int(valid.sum()), min_rows)
        and len(np.unique(labels[train])) >= 2
        and len(np.unique(labels[valid])) >= 2
    )

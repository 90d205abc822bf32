"""Turn one group of a plan into binned LightGBM data, excluding its target-derived features."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.splits import (
    PeriodMasks,
    Periods,
    RowSplit,
    label_end_column,
    selection_split,
    variant_masks,
)
from alphafactory.features import target_derived_columns
from alphafactory.layout import Plan, RunLayout
from alphafactory.models import preset_params
from alphafactory.models.lightgbm.family import DATASET_PARAMS, fixed_params
from alphafactory.models.lightgbm.shard import GroupData, build_group, variant_rows
from alphafactory.stages.common import Matrix
from alphafactory.targets.swing import move_column
from alphafactory.targets.variants import Variant

log = logging.getLogger(__name__)


def usable_columns(matrix: Matrix, variant: Variant) -> np.ndarray:
    """Indices of the matrix columns that do not leak this group's own target definition."""
    leaking = set(
        target_derived_columns(matrix.names, variant.symbol, variant.window, variant.swing_type)
    )
    return np.array([i for i, name in enumerate(matrix.names) if name not in leaking], dtype=int)


def load_group(
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    config: EnvironmentConfig,
    variants: Sequence[Variant],
    max_train_rows: int | None = None,
    periods: Periods | None = None,
) -> GroupData | None:
    """Bin one group's rows once, fitting on the train period and scoring on the selection
    period (of `periods`, default the run's); None when the group has no rows on one side."""
    first = variants[0]
    targets = read_targets(layout, variants)
    split: RowSplit = selection_split(periods or plan.periods, config.split.embargo_bars)
    train_union, valid_union, per_variant = variant_rows(
        matrix.timeline, targets, variants, split, max_train_rows
    )
    if len(train_union) == 0 or len(valid_union) == 0:
        log.warning("group %s has no labelled rows on one side of the split", first.group_id)
        return None
    columns = usable_columns(matrix, first)
    return build_group(
        first.group_id,
        matrix.values,
        [matrix.names[i] for i in columns],
        train_union,
        valid_union,
        per_variant,
        dataset_params(config),
        columns,
    )


def read_targets(
    layout: RunLayout, variants: Sequence[Variant], *, moves: bool = False
) -> pl.DataFrame:
    """The group's targets: timestamps, the variants' labels and their label ends; with
    `moves`, each event's realised move too (`targets.swing.move_column`)."""
    horizons = sorted({v.horizon for v in variants})
    uri = layout.targets(variants[0].group_id)
    extra = [move_column(v.variant_id) for v in variants] if moves else []
    return io.read_parquet(
        uri,
        [
            "timestamp",
            *[v.variant_id for v in variants],
            *[label_end_column(h) for h in horizons],
            *extra,
        ],
    )


def period_rows(
    layout: RunLayout, plan: Plan, config: EnvironmentConfig, variant: Variant
) -> tuple[pl.DataFrame, PeriodMasks]:
    """One variant's targets frame and its train / selection / test masks."""
    targets = read_targets(layout, [variant], moves=True)
    masks = variant_masks(
        targets, variant.variant_id, variant.horizon, plan.periods, config.split.embargo_bars
    )
    return targets, masks


def dataset_params(config: EnvironmentConfig) -> dict[str, Any]:
    return {**DATASET_PARAMS, "seed": config.data.seed, "max_bin": config.lightgbm.max_bin}


def base_params(config: EnvironmentConfig) -> dict[str, Any]:
    """Fixed parameters with this environment's threads and seed."""
    return {
        **fixed_params(config.parallelism.lgbm_threads, config.data.seed, config.lightgbm.max_bin),
        **dataset_params(config),
    }


def family_params(config: EnvironmentConfig, name: str) -> dict[str, Any]:
    """The environment's preset of family `name` with its overrides, validated."""
    return preset_params(name, config.models.preset, config.models.overrides.get(name))


def default_params(config: EnvironmentConfig) -> dict[str, Any]:
    """Stage-1 LightGBM parameters: the fixed ones plus the LightGBM preset. The shard sets
    min_child_samples per variant (1 % of its training rows), so the preset's is dropped."""
    preset = family_params(config, "lightgbm")
    preset.pop("min_child_samples", None)
    return {**base_params(config), **preset}

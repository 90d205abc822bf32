"""Turn one group of a plan into binned LightGBM data, excluding its target-derived features."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from alphafactory import io
from alphafactory.config.models import EnvironmentConfig
from alphafactory.features import target_derived_columns
from alphafactory.models.lightgbm_shard import (
    DATASET_PARAMS,
    GroupData,
    build_group,
    fixed_params,
    variant_rows,
)
from alphafactory.models.variants import Variant
from alphafactory.stages.common import Matrix, Plan, RunLayout

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
) -> GroupData | None:
    """Bin one group's rows once; None when the group has no training or validation rows."""
    first = variants[0]
    targets = io.read_parquet(
        layout.targets(first.group_id), ["timestamp", *[v.variant_id for v in variants]]
    )
    train_union, valid_union, per_variant = variant_rows(
        matrix.timeline,
        targets,
        variants,
        plan.cutoff_time,
        plan.bar_interval,
        config.split.embargo_bars,
        max_train_rows,
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


def dataset_params(config: EnvironmentConfig) -> dict[str, Any]:
    return {**DATASET_PARAMS, "seed": config.data.seed, "max_bin": config.lightgbm.max_bin}


def base_params(config: EnvironmentConfig) -> dict[str, Any]:
    """Fixed parameters with this environment's threads and seed."""
    return {
        **fixed_params(config.parallelism.lgbm_threads, config.data.seed, config.lightgbm.max_bin),
        **dataset_params(config),
    }

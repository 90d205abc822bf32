"""Any registered family fitted through the protocol on one variant's rows: stage 1's
finalists, tuning trials, the adoption check and production fits of a winner that is not
LightGBM (LightGBM takes the shard executor's bin-once path instead)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.splits import Periods, enough_rows, variant_masks
from alphafactory.errors import AlphaFactoryError
from alphafactory.layout import Plan, RunLayout
from alphafactory.metrics import average_precision
from alphafactory.models import FAILED, FitBudget, FitResult, GroupFit, Sample, family
from alphafactory.models._isolation import fit_isolated
from alphafactory.models._outcome import SINGLE_CLASS, TOO_FEW_ROWS
from alphafactory.stages.common import Matrix
from alphafactory.stages.fitting import read_targets, usable_columns
from alphafactory.targets.swing import move_column
from alphafactory.targets.variants import Variant

log = logging.getLogger(__name__)


def masked_samples(
    matrix: Matrix,
    targets: pl.DataFrame,
    variant: Variant,
    fit_mask: np.ndarray,
    score_mask: np.ndarray,
    label_ends: np.ndarray,
) -> tuple[Sample, Sample]:
    """The variant's fit and score rows as Samples (its usable feature columns only)."""
    stamps = targets["timestamp"].cast(pl.Datetime("us")).to_numpy()
    matrix_rows = np.searchsorted(matrix.timeline, stamps)
    columns = usable_columns(matrix, variant)
    names = tuple(matrix.names[i] for i in columns)
    labels = targets[variant.variant_id].fill_null(0).to_numpy().astype(np.int32)
    name = move_column(variant.variant_id)
    moves = targets[name].to_numpy().astype(np.float64) if name in targets.columns else None

    def sample(mask: np.ndarray) -> Sample:
        rows = np.flatnonzero(mask)
        return Sample(
            matrix.values[np.ix_(matrix_rows[rows], columns)], labels[rows], names,
            timestamps=stamps[rows], label_ends=label_ends[rows],
            aux={} if moves is None else {"move": moves[rows]},
        )  # fmt: skip

    return sample(fit_mask), sample(score_mask)


def variant_samples(
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    config: EnvironmentConfig,
    variant: Variant,
    periods: Periods | None = None,
) -> tuple[Sample, Sample]:
    """Train-period and selection-period rows of a variant (of `periods`, default the run's)."""
    targets = read_targets(layout, [variant], moves=True)
    masks = variant_masks(
        targets, variant.variant_id, variant.horizon, periods or plan.periods,
        config.split.embargo_bars,
    )  # fmt: skip
    return masked_samples(matrix, targets, variant, masks.train, masks.selection, masks.label_ends)


def fit_budget(config: EnvironmentConfig, rounds: int, patience: int) -> FitBudget:
    """A protocol fit's budget under this environment's threads, seed and time cap."""
    return FitBudget(
        rounds=rounds, early_stopping=patience, seconds=config.models.fit_seconds,
        threads=config.parallelism.lgbm_threads, seed=config.data.seed,
    )  # fmt: skip


def fit_family(
    config: EnvironmentConfig,
    family_name: str,
    variant_id: str,
    train: Sample,
    valid: Sample,
    params: Mapping[str, Any],
    budget: FitBudget,
    *,
    keep_model: bool = False,
    shared: GroupFit | None = None,
) -> FitResult:
    """Fit one variant with `family_name` and score it by AP on `valid`.

    Too few rows or a single class give that status without a fit; a fit that raises one of
    the project's errors or, under `models.isolation: process`, crashes, is killed or times
    out, gives status `failed` with the reason, so the caller's shard goes on. `shared` is
    the family's group fitter (`ModelFamily.group_fitter`), used in-process only.
    """
    result = FitResult(variant_id, "ok", family_name, n_train=len(train), n_valid=len(valid))
    if not enough_rows(result.n_train, result.n_valid, config.tune.min_rows):
        result.status = TOO_FEW_ROWS
        return result
    if len(np.unique(train.labels)) < 2 or len(np.unique(valid.labels)) < 2:
        result.status = SINGLE_CLASS
        return result
    chosen = family(family_name)
    started = time.perf_counter()
    try:
        if config.models.isolation == "process":
            model = fit_isolated(
                chosen, train, valid, params, budget, timeout=config.models.fit_timeout_seconds,
                memory_mb=config.models.fit_memory_mb,
            )  # fmt: skip
        else:
            model = (shared or chosen.fit)(train, valid, params, budget)
        probabilities = model.predict_proba(valid.features)
    except AlphaFactoryError as exc:
        log.warning("%s %s: fit failed: %s", family_name, variant_id, exc)
        result.status, result.reason = FAILED, str(exc)
        result.seconds = time.perf_counter() - started
        return result
    result.seconds = time.perf_counter() - started
    result.best_iteration = model.best_iteration
    result.average_precision = average_precision(valid.labels, probabilities)
    if keep_model:
        result.model, result.valid_probabilities = model, probabilities
        result.valid_labels = valid.labels
    return result

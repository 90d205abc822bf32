"""The shard executor: bin a group's rows once, then fit each variant on subsets of that binning.

A group (symbol × window × swing type) shares one feature matrix; its variants differ only in
which rows carry a label and what the label is. So the group's training and validation rows
are binned into two LightGBM Datasets once, and every variant trains on
``base.subset(rows).construct()`` followed by ``set_label`` — no per-variant process, import,
file load or re-binning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import lightgbm as lgb
import numpy as np
import polars as pl

from alphafactory.data.splits import RowSplit, enough_rows
from alphafactory.metrics import average_precision
from alphafactory.models._outcome import SINGLE_CLASS, TOO_FEW_ROWS, FitResult
from alphafactory.models.lightgbm.family import (
    LightGBMModel,
)
from alphafactory.targets.variants import Variant
from alphafactory.tuning.space import min_child_samples

log = logging.getLogger(__name__)

#: (train rows, train labels, valid rows, valid labels) of one variant.
RowsAndLabels = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class VariantRows:
    """Positions of one variant's rows inside the group's train/valid arrays, with labels."""

    train_index: np.ndarray
    train_label: np.ndarray
    valid_index: np.ndarray
    valid_label: np.ndarray


@dataclass
class GroupData:
    """One group's binned train/valid Datasets and each variant's rows within them."""

    group_id: str
    feature_names: list[str]
    base_train: lgb.Dataset
    base_valid: lgb.Dataset
    valid_matrix: np.ndarray
    rows: dict[str, VariantRows]
    #: positions of the validation rows in the feature matrix (a variant's valid_index
    #: points into it): where each validation probability belongs on the timeline
    valid_union: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def datasets(self, variant_id: str) -> tuple[lgb.Dataset, lgb.Dataset]:
        """Train and valid Datasets of one variant, reusing the group's bin mappers."""
        rows = self.rows[variant_id]
        with self._lock:  # subset construction touches the shared base handles
            train = self.base_train.subset(cast(list[int], rows.train_index)).construct()
            train.set_label(rows.train_label)  # after construct(), or the label is lost
            valid = self.base_valid.subset(cast(list[int], rows.valid_index)).construct()
            valid.set_label(rows.valid_label)
        return train, valid


def variant_rows(
    timeline: np.ndarray,
    targets: pl.DataFrame,
    variants: Sequence[Variant],
    split: RowSplit,
    max_train_rows: int | None = None,
) -> tuple[
    np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
]:
    """Matrix rows of the group's train/valid unions and each variant's rows and labels.

    `split(targets, variant_id, horizon)` gives the variant's (fit, score) row masks (e.g.
    `alphafactory.data.splits.selection_split`). Returns (train_union, valid_union,
    {variant_id: (train_rows, train_y, valid_rows, valid_y)}) where rows are positions in
    `timeline` (the feature matrix's rows).
    """
    stamps = targets["timestamp"].cast(pl.Datetime("us")).to_numpy()
    matrix_row = np.searchsorted(timeline, stamps)
    per_variant: dict[str, RowsAndLabels] = {}
    for variant in variants:
        labels = targets[variant.variant_id]
        labelled = labels.is_not_null().to_numpy()
        fit_mask, score_mask = split(targets, variant.variant_id, variant.horizon)
        train_pos = np.flatnonzero(labelled & fit_mask)
        if max_train_rows is not None and len(train_pos) > max_train_rows:
            keep = np.linspace(0, len(train_pos) - 1, max_train_rows).round().astype(int)
            train_pos = train_pos[np.unique(keep)]
        valid_pos = np.flatnonzero(labelled & score_mask)
        values = labels.fill_null(0).to_numpy().astype(np.int32)
        per_variant[variant.variant_id] = (
            matrix_row[train_pos],
            values[train_pos],
            matrix_row[valid_pos],
            values[valid_pos],
        )
    empty = np.zeros(0, dtype=np.int64)
    train_union = np.unique(np.concatenate([empty, *[v[0] for v in per_variant.values()]]))
    valid_union = np.unique(np.concatenate([empty, *[v[2] for v in per_variant.values()]]))
    return train_union.astype(np.int64), valid_union.astype(np.int64), per_variant


def build_group(
    group_id: str,
    matrix: np.ndarray,
    feature_names: Sequence[str],
    train_union: np.ndarray,
    valid_union: np.ndarray,
    per_variant: Mapping[str, RowsAndLabels],
    dataset_params: Mapping[str, Any],
    columns: np.ndarray | None = None,
) -> GroupData:
    """Bin the group's rows once (training rows define the bins; validation reuses them).

    `columns` picks the feature columns of `matrix` to use (all when None); `feature_names`
    names the picked columns.
    """
    names = list(feature_names)
    picked = np.arange(matrix.shape[1]) if columns is None else columns
    train_matrix = matrix[np.ix_(train_union, picked)]
    base_train = lgb.Dataset(
        train_matrix, feature_name=names, params=dict(dataset_params), free_raw_data=True
    ).construct()
    del train_matrix
    valid_matrix = matrix[np.ix_(valid_union, picked)]
    base_valid = lgb.Dataset(
        valid_matrix,
        feature_name=names,
        reference=base_train,
        params=dict(dataset_params),
        free_raw_data=True,
    ).construct()
    rows = {
        vid: VariantRows(
            train_index=np.searchsorted(train_union, tr).astype(np.int32),
            train_label=ty,
            valid_index=np.searchsorted(valid_union, va).astype(np.int32),
            valid_label=vy,
        )
        for vid, (tr, ty, va, vy) in per_variant.items()
    }
    return GroupData(group_id, names, base_train, base_valid, valid_matrix, rows, valid_union)


def check_variant(group: GroupData, variant_id: str, min_rows: int) -> FitResult:
    """A fresh result, marked `too_few_rows` or `single_class` when the variant cannot be fit."""
    rows = group.rows[variant_id]
    result = FitResult(
        variant_id, "ok", LightGBMModel.family, n_train=len(rows.train_index),
        n_valid=len(rows.valid_index),
    )  # fmt: skip
    if not enough_rows(result.n_train, result.n_valid, min_rows):
        result.status = TOO_FEW_ROWS
    elif len(np.unique(rows.train_label)) < 2 or len(np.unique(rows.valid_label)) < 2:
        result.status = SINGLE_CLASS
    return result


def variant_params(params: Mapping[str, Any], n_train: int) -> dict[str, Any]:
    """`params` with min_child_samples at 1 % of the variant's training rows (at least 5)."""
    return {**params, "min_child_samples": min_child_samples(n_train)}


def fit_variant(
    group: GroupData,
    variant_id: str,
    params: Mapping[str, Any],
    num_rounds: int,
    early_stopping: int,
    *,
    min_rows: int,
    keep_model: bool = False,
    callbacks: Sequence[Callable[..., None]] = (),
) -> FitResult:
    """Fit one variant with early stopping on multi_logloss; score by average precision."""
    started = time.perf_counter()
    rows = group.rows[variant_id]
    result = check_variant(group, variant_id, min_rows)
    if result.status != "ok":
        return result
    train, valid = group.datasets(variant_id)
    full_params = variant_params(params, result.n_train)
    booster = lgb.train(
        full_params,
        train,
        num_boost_round=num_rounds,
        valid_sets=[valid],
        callbacks=[*callbacks, lgb.early_stopping(early_stopping, verbose=False)],
    )
    probabilities = booster.predict(
        group.valid_matrix[rows.valid_index], num_iteration=booster.best_iteration
    )
    result.best_iteration = int(booster.best_iteration or booster.current_iteration())
    result.average_precision = average_precision(rows.valid_label, np.asarray(probabilities))
    result.seconds = time.perf_counter() - started
    # kept for every fit (they exist anyway): the backtest trades the stage-1 population's
    # selection-period predictions to measure the probability of backtest overfitting
    result.valid_probabilities = np.asarray(probabilities)
    result.valid_labels = rows.valid_label
    if keep_model:
        result.model = LightGBMModel(booster, result.best_iteration)
    return result


def fit_many(jobs: Iterable[Callable[[], FitResult]], concurrent_fits: int) -> list[FitResult]:
    """Run fit jobs, `concurrent_fits` at a time (LightGBM releases the GIL while training)."""
    job_list = list(jobs)
    if concurrent_fits <= 1:
        return [job() for job in job_list]
    with ThreadPoolExecutor(max_workers=concurrent_fits) as pool:
        return list(pool.map(lambda job: job(), job_list))


#: One group to fit: its id, its binned data (None when it has no rows) and its variant ids.
GroupJob = tuple[str, GroupData | None, Sequence[str]]
T = TypeVar("T")


def stream_groups(
    groups: Iterable[GroupJob],
    start: Callable[[GroupData, Sequence[str]], Callable[[], T]],
) -> Iterator[tuple[str, T | None]]:
    """Start each group's work as it arrives; yield (group id, result) in the groups' order.

    `start(group, variant_ids)` queues the group's work and returns a function that waits for
    its result. `groups` is consumed lazily and one group ahead: group k+1 is read and binned
    (in the caller's thread; LightGBM releases the GIL) while group k's work runs, so no core
    waits for binning and group k's stragglers overlap group k+1's first fits. At most two
    groups are in flight. A group given as None yields None.
    """
    pending: deque[tuple[str, Callable[[], T] | None]] = deque()

    def collect() -> tuple[str, T | None]:
        gid, wait = pending.popleft()
        return gid, None if wait is None else wait()

    for gid, group, vids in groups:
        pending.append((gid, None if group is None else start(group, vids)))
        while len(pending) > 1:
            yield collect()
    while pending:
        yield collect()


def fit_groups(
    groups: Iterable[GroupJob],
    fit: Callable[[GroupData, str], FitResult],
    concurrent_fits: int,
) -> Iterator[tuple[str, list[FitResult] | None]]:
    """Fit every variant of a stream of groups on one pool; yield each group's results in order.

    The pool is shared by consecutive groups (`stream_groups`); within a group the variants
    with most training rows start first. Results equal `fit(group, vid)` one by one, in the
    caller's variant order.
    """
    with ThreadPoolExecutor(max_workers=max(1, concurrent_fits)) as pool:

        def start(group: GroupData, vids: Sequence[str]) -> Callable[[], list[FitResult]]:
            longest_first = sorted(vids, key=lambda v: -len(group.rows[v].train_index))
            futures = {vid: pool.submit(fit, group, vid) for vid in longest_first}
            return lambda: [futures[vid].result() for vid in vids]

        yield from stream_groups(groups, start)

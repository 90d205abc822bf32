"""Purged out-of-fold predictions: what stacking families fit their meta-learner on.

`out_of_fold(sample, fit, n_folds)` cuts the training rows into walk-forward folds
(`alphafactory.data.folds.walk_forward_folds`): time is split into ``n_folds + 1`` blocks of
about equal row counts, and fold k validates on block k + 1 with a model fitted only on rows
before the block whose labels ended before the block's first event. Every prediction is
therefore one that could have been made in real time, so a meta-learner fitted on them sees
the base models as they behave out of sample in production. Walk-forward is chosen over
`purged_kfold_folds`, which would also train on rows after the block: those models never
existed at the block's time, and the base models' out-of-fold errors would look smaller (a
later market regime leaks into them) than they will live.

The first block has no earlier history, so its rows get no out-of-fold prediction: `mask` is
False there (and for a fold skipped because its training rows hold a single class), and the
meta-fit leaves them out. Each fold records the row indices its model was fitted on and
predicted, so the purge can be audited. This module knows no vendor library; `TimeShare`
divides a fit's wall-clock budget among its sub-fits.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from alphafactory.data.folds import walk_forward_folds
from alphafactory.errors import DataError
from alphafactory.models._base import Sample


class Predictor(Protocol):
    """Anything fitted that gives probabilities per row (e.g. a `FittedModel`)."""

    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class OofFold:
    """One walk-forward fold: the rows its model was fitted on and the rows it predicted.

    Attributes:
        train_index: sample rows the fold's model was fitted on (ascending).
        valid_index: sample rows it predicted (one contiguous period, ascending).
        fitted: False when the training rows held one class only and the fold was skipped.
    """

    train_index: np.ndarray
    valid_index: np.ndarray
    fitted: bool = True


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions for every row of a sample that has one.

    Attributes:
        probabilities: rows × columns (3 class probabilities per model the fit returns);
            NaN where `mask` is False.
        mask: rows that have an out-of-fold prediction (False in the first block).
        fold_of: index into `folds` of the fold that predicted each row, -1 where none.
        folds: the folds, chronological.
    """

    probabilities: np.ndarray
    mask: np.ndarray
    fold_of: np.ndarray
    folds: tuple[OofFold, ...]


def subsample(sample: Sample, rows: np.ndarray) -> Sample:
    """The rows `rows` (indices) of `sample`, every per-row array cut alike."""

    def cut(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values)[rows]

    return dataclasses.replace(
        sample,
        features=sample.features[rows],
        labels=sample.labels[rows],
        weights=cut(sample.weights),
        timestamps=cut(sample.timestamps),
        label_ends=cut(sample.label_ends),
        aux={name: np.asarray(values)[rows] for name, values in sample.aux.items()},
    )


def purged_folds(sample: Sample, n_folds: int) -> tuple[OofFold, ...]:
    """The walk-forward folds of `sample` as row indices (nothing fitted yet)."""
    if sample.timestamps is None or sample.label_ends is None:
        missing = "timestamps" if sample.timestamps is None else "label_ends"
        raise DataError(
            f"out-of-fold predictions need the sample's {missing} (event times and label "
            "ends) to purge folds; build the Sample with timestamps= and label_ends="
        )
    for name, values in (("timestamps", sample.timestamps), ("label_ends", sample.label_ends)):
        if len(values) != len(sample):
            raise DataError(
                f"sample {name} has {len(values)} entries for {len(sample)} rows; give one per row"
            )
    folds = walk_forward_folds(sample.timestamps, n_folds, label_ends=sample.label_ends)
    return tuple(OofFold(np.flatnonzero(train), np.flatnonzero(valid)) for train, valid in folds)


def out_of_fold(sample: Sample, fit: Callable[[Sample], Predictor], n_folds: int = 4) -> OutOfFold:
    """Purged walk-forward out-of-fold predictions of the models `fit` makes.

    `fit(train)` fits on one fold's training rows (a `Sample` cut from `sample`) and returns
    something with `predict_proba`; it is called once per fold, oldest first, and its
    predictions for the fold's validation rows are kept. Folds whose training rows hold a
    single class are skipped (their rows stay masked out).
    """
    folds = purged_folds(sample, n_folds)
    probabilities: np.ndarray | None = None
    fold_of = np.full(len(sample), -1, dtype=np.int64)
    done: list[OofFold] = []
    for index, fold in enumerate(folds):
        if len(np.unique(sample.labels[fold.train_index])) < 2:
            done.append(dataclasses.replace(fold, fitted=False))
            continue
        model = fit(subsample(sample, fold.train_index))
        predicted = np.asarray(
            model.predict_proba(sample.features[fold.valid_index]), dtype=np.float64
        )
        if predicted.ndim != 2 or len(predicted) != len(fold.valid_index):
            raise DataError(
                f"out-of-fold fit returned predictions of shape {predicted.shape} for "
                f"{len(fold.valid_index)} rows"
            )
        if probabilities is None:
            probabilities = np.full((len(sample), predicted.shape[1]), np.nan)
        probabilities[fold.valid_index] = predicted
        fold_of[fold.valid_index] = index
        done.append(fold)
    if probabilities is None:
        raise DataError(
            "no out-of-fold prediction: every fold's training rows hold a single class; "
            "use fewer folds or more rows"
        )
    return OutOfFold(probabilities, fold_of >= 0, fold_of, tuple(done))


class TimeShare:
    """Divides a wall-clock budget among sub-fits in proportion to their expected work.

    Each `take(work)` hands out the time still left times ``work / work still to come``, so
    time a fast sub-fit leaves over goes to the later ones. `seconds=None`: no limit.
    """

    def __init__(self, seconds: float | None, total_work: float) -> None:
        self.seconds = seconds
        self.started = time.perf_counter()
        self.work_left = max(float(total_work), 0.0)

    def left(self) -> float | None:
        """Seconds left of the whole budget (never negative), None without a limit."""
        if self.seconds is None:
            return None
        return max(0.0, self.seconds - (time.perf_counter() - self.started))

    def take(self, work: float) -> float | None:
        """The seconds a sub-fit of `work` units may spend now."""
        left = self.left()
        share = min(1.0, work / self.work_left) if self.work_left > 0 else 1.0
        self.work_left = max(0.0, self.work_left - work)
        return None if left is None else left * share


def fold_work(sample: Sample, n_folds: int) -> list[int]:
    """Rows each fold's model trains on (its share of the work), in fold order."""
    return [len(fold.train_index) for fold in purged_folds(sample, n_folds)]

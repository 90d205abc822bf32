"""The walk-forward engine: refit a family per window and collect out-of-sample probabilities.

Each window refits the family with the given parameters on its purged training rows (early
stopping on the latest part of them, never on the test rows) and predicts its test rows.
When windows overlap (step shorter than test), a row is predicted by the freshest window
holding it: window k predicts only up to window k+1's test start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from alphafactory.backtest.trades import PROBABILITY_COLUMNS
from alphafactory.backtest.windows import Window, WindowSpec, make_windows, window_rows
from alphafactory.data.splits import enough_rows
from alphafactory.errors import AlphaFactoryError
from alphafactory.models import FitBudget, Sample, family

log = logging.getLogger(__name__)

FITTED, TOO_FEW_ROWS, SINGLE_CLASS, NO_TEST_ROWS, FAILED = (
    "fitted", "too_few_rows", "single_class", "no_test_rows", "failed"
)  # fmt: skip


@dataclass
class WindowRecord:
    """What one window did: its rows, whether it refitted, and why not."""

    window: Window
    n_fit: int
    n_valid: int
    n_test: int
    status: str
    reason: str = ""
    best_iteration: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.window.to_dict(),
            "n_fit": self.n_fit,
            "n_valid": self.n_valid,
            "n_test": self.n_test,
            "status": self.status,
            "reason": self.reason,
            "best_iteration": self.best_iteration,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class WalkForwardResult:
    """Every window's record and the out-of-sample predictions of all test rows."""

    family: str
    records: list[WindowRecord]
    predictions: pl.DataFrame = field(repr=False)

    @property
    def refits(self) -> int:
        return sum(record.status == FITTED for record in self.records)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "windows": len(self.records),
            "refits": self.refits,
            "predicted_rows": self.predictions.height,
            "records": [record.to_dict() for record in self.records],
        }


def _subset(sample: Sample, mask: np.ndarray) -> Sample:
    rows = np.flatnonzero(mask)

    def pick(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[rows]

    return Sample(
        sample.features[rows], sample.labels[rows], sample.feature_names,
        weights=pick(sample.weights), timestamps=pick(sample.timestamps),
        label_ends=pick(sample.label_ends),
        aux={name: values[rows] for name, values in sample.aux.items()},
    )  # fmt: skip


def _empty_predictions() -> pl.DataFrame:
    schema: dict[str, Any] = {"timestamp": pl.Datetime("us"), "window": pl.Int32}
    schema.update({"label": pl.Int8, **{name: pl.Float64 for name in PROBABILITY_COLUMNS}})
    return pl.DataFrame(schema=schema)


def walk_forward(
    sample: Sample,
    timeline: np.ndarray,
    spec: WindowSpec,
    family_name: str,
    params: Mapping[str, Any],
    budget: FitBudget,
    *,
    start: np.datetime64 | None = None,
    end: np.datetime64 | None = None,
    progress: Callable[[WindowRecord], None] | None = None,
) -> WalkForwardResult:
    """Refit `family_name` per window of `timeline` on `sample`'s rows; predict each test part.

    `sample` holds one variant's event rows with timestamps and label ends; `timeline` the
    bars of its symbol (window lengths in bars count them; the embargo moves label ends on
    it). `progress` is called after each window.
    """
    if sample.timestamps is None or sample.label_ends is None:
        raise AlphaFactoryError("walk_forward needs the sample's timestamps and label ends")
    windows = make_windows(timeline, spec, start, end)
    chosen = family(family_name)
    records, frames = [], [_empty_predictions()]
    for position, window in enumerate(windows):
        following = windows[position + 1].test_start if position + 1 < len(windows) else None
        rows = window_rows(window, sample.timestamps, sample.label_ends, spec, timeline, following)
        record = WindowRecord(
            window, int(rows.fit.sum()), int(rows.valid.sum()), int(rows.test.sum()), FITTED
        )
        fit, valid, test = (_subset(sample, mask) for mask in (rows.fit, rows.valid, rows.test))
        record.status = _skip_reason(fit, valid, test, spec.min_train_rows) or FITTED
        if record.status == FITTED:
            started = time.perf_counter()
            try:
                model = chosen.fit(fit, valid, params, budget)
                probabilities = model.predict_proba(test.features)
                record.best_iteration = model.best_iteration
                frames.append(_frame(test, window.index, probabilities))
            except AlphaFactoryError as exc:
                log.warning("walk-forward window %d: fit failed: %s", window.index, exc)
                record.status, record.reason = FAILED, str(exc)
            record.seconds = time.perf_counter() - started
        records.append(record)
        if progress is not None:
            progress(record)
    predictions = pl.concat(frames).sort("timestamp")
    return WalkForwardResult(family_name, records, predictions)


def _skip_reason(fit: Sample, valid: Sample, test: Sample, min_rows: int) -> str | None:
    if len(test) == 0:
        return NO_TEST_ROWS
    if not enough_rows(len(fit), len(valid), min_rows):
        return TOO_FEW_ROWS
    if len(np.unique(fit.labels)) < 2 or len(np.unique(valid.labels)) < 2:
        return SINGLE_CLASS
    return None


def _frame(test: Sample, window: int, probabilities: np.ndarray) -> pl.DataFrame:
    assert test.timestamps is not None
    columns: dict[str, Any] = {
        "timestamp": pl.Series(test.timestamps).cast(pl.Datetime("us")),
        "window": pl.Series(np.full(len(test), window), dtype=pl.Int32),
        "label": pl.Series(test.labels, dtype=pl.Int8),
    }
    for index, name in enumerate(PROBABILITY_COLUMNS):
        columns[name] = pl.Series(probabilities[:, index], dtype=pl.Float64)
    return pl.DataFrame(columns)

"""The run's three chronological periods (train, selection, test) and leak-free row masks.

A row at bar t of a symbol is labelled from that symbol's bars t+1 .. t+h, so its label is
known only at the h-th next bar of the symbol: its *label end* (a conservative bound when a
barrier is hit earlier). Rows are purged on label ends, never on a clock interval, so
weekday sessions, outages and symbols of different frequencies purge correctly:

* train     — rows whose label ends before the selection period starts;
* selection — rows from the selection start whose label ends before the test period starts;
* test      — rows from the test start; touched once, by the final score of each model.

An embargo of e bars moves each label end e bars later on the symbol's own timeline, so e
more bars are dropped before each boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import numpy as np
import polars as pl

from alphafactory.errors import DataError


def enough_rows(n_train: int, n_valid: int, min_rows: int) -> bool:
    """Whether a fit has enough rows: `min_rows` to train, a fifth of that (at least 10) to
    score on. One rule for every fit, split or fold."""
    return n_train >= min_rows and n_valid >= max(10, min_rows // 5)


#: Label end of rows whose h-th next bar lies past the data: never before any boundary.
BEYOND_DATA = np.datetime64("9999-12-31T00:00:00", "us")
#: (fit_mask, score_mask) over a targets frame's rows, for one variant.
RowSplit = Callable[[pl.DataFrame, str, int], tuple[np.ndarray, np.ndarray]]


def label_end_column(horizon: int) -> str:
    """Name of the targets column holding each row's label end for horizon `horizon`."""
    return f"label_end_h{horizon}"


def bars_ahead(timestamps: np.ndarray, steps: int) -> np.ndarray:
    """Timestamp of the `steps`-th next bar of each bar (one symbol's sorted bars).

    Bars with fewer than `steps` bars after them get BEYOND_DATA.
    """
    stamps = np.asarray(timestamps).astype("datetime64[us]")
    ahead = np.full(len(stamps), BEYOND_DATA)
    if steps < len(stamps):
        ahead[: len(stamps) - steps] = stamps[steps:]
    return ahead


def shift_ends(symbol_timeline: np.ndarray, ends: np.ndarray, bars: int) -> np.ndarray:
    """Label ends moved `bars` bars later on the symbol's own timeline (the embargo)."""
    if bars == 0:
        return ends
    timeline = np.asarray(symbol_timeline).astype("datetime64[us]")
    position = np.searchsorted(timeline, ends) + bars
    inside = position < len(timeline)
    return np.where(inside, timeline[np.minimum(position, len(timeline) - 1)], BEYOND_DATA)


@dataclass(frozen=True)
class Periods:
    """The first timestamps of the selection and the test periods."""

    selection_start: np.datetime64
    test_start: np.datetime64

    def to_dict(self) -> dict[str, str]:
        return {
            "selection_start": iso_time(self.selection_start),
            "test_start": iso_time(self.test_start),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Periods:
        return cls(parse_time(raw["selection_start"]), parse_time(raw["test_start"]))


def iso_time(moment: np.datetime64) -> str:
    """An ISO-8601 UTC string of a naive-UTC datetime64."""
    value = np.asarray(moment).astype("datetime64[us]").item()
    return str(value.replace(tzinfo=UTC).isoformat())


def parse_time(text: str) -> np.datetime64:
    return np.datetime64(str(text).replace("+00:00", ""), "us")


def make_periods(timeline: np.ndarray, selection_fraction: float, test_fraction: float) -> Periods:
    """Selection and test starts: the test period is the last `test_fraction` of the distinct
    timestamps, the selection period the `selection_fraction` before it."""
    ordered = np.unique(np.asarray(timeline).astype("datetime64[us]"))
    n = len(ordered)
    # The small tolerance keeps 100 x (1 - 0.15 - 0.2) at 65, not 64.99...
    test_index = int(np.floor(n * (1.0 - test_fraction) + 1e-9))
    selection_index = int(np.floor(n * (1.0 - test_fraction - selection_fraction) + 1e-9))
    if not 0 < selection_index < test_index < n:
        raise DataError(
            f"{n} timestamps cannot hold train, selection and test periods with "
            f"split.selection_fraction={selection_fraction} and "
            f"split.test_fraction={test_fraction}; supply more bars"
        )
    return Periods(ordered[selection_index], ordered[test_index])


def tuning_periods(timeline: np.ndarray, periods: Periods, selection_fraction: float) -> Periods:
    """The periods of the parameter search (tune stages 2 and 4), inside the training period.

    Its own train and validation split: the last `selection_fraction` of the training
    period's timestamps validates, and the run's selection period plays the test period. So
    the search never scores on the selection period, which then judges, untouched by it,
    whether the tuned parameters beat the defaults.
    """
    stamps = np.asarray(timeline).astype("datetime64[us]")
    inside = np.unique(stamps[stamps < periods.selection_start])
    index = int(np.floor(len(inside) * (1.0 - selection_fraction) + 1e-9))
    if not 0 < index < len(inside):
        raise DataError(
            f"the training period has {len(inside)} timestamps: too few to tune on; "
            "supply more bars"
        )
    return Periods(inside[index], periods.selection_start)


@dataclass(frozen=True)
class PeriodMasks:
    """Boolean masks over one variant's rows: which rows serve which period, and the label
    ends (embargo included) they were purged on."""

    train: np.ndarray
    selection: np.ndarray
    test: np.ndarray
    label_ends: np.ndarray


def period_masks(stamps: np.ndarray, label_ends: np.ndarray, periods: Periods) -> PeriodMasks:
    """Rows of each period, purged so that no label reaches into a later period."""
    times = np.asarray(stamps).astype("datetime64[us]")
    ends = np.asarray(label_ends).astype("datetime64[us]")
    return PeriodMasks(
        train=ends < periods.selection_start,
        selection=(times >= periods.selection_start) & (ends < periods.test_start),
        test=times >= periods.test_start,
        label_ends=ends,
    )


def variant_masks(
    targets: pl.DataFrame, variant_id: str, horizon: int, periods: Periods, embargo_bars: int = 0
) -> PeriodMasks:
    """Period masks of one variant's labelled rows in its group's targets frame.

    The frame holds one row per bar of the symbol, `timestamp`, the variant's label column
    and `label_end_h{horizon}` (see :func:`label_end_column`).
    """
    column = label_end_column(horizon)
    if column not in targets.columns:
        raise DataError(f"targets have no {column} column; re-run prepare to rebuild the targets")
    stamps = targets["timestamp"].cast(pl.Datetime("us")).to_numpy()
    ends = targets[column].cast(pl.Datetime("us")).to_numpy()
    masks = period_masks(stamps, shift_ends(stamps, ends, embargo_bars), periods)
    labelled = targets[variant_id].is_not_null().to_numpy()
    return PeriodMasks(
        masks.train & labelled, masks.selection & labelled, masks.test & labelled, masks.label_ends
    )


def selection_split(periods: Periods, embargo_bars: int = 0) -> RowSplit:
    """Fit on the train period, score (and early-stop) on the selection period."""

    def split(
        targets: pl.DataFrame, variant_id: str, horizon: int
    ) -> tuple[np.ndarray, np.ndarray]:
        masks = variant_masks(targets, variant_id, horizon, periods, embargo_bars)
        return masks.train, masks.selection

    return split

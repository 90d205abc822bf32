"""Leak-free chronological splits: a training label window never reaches into validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np


@dataclass(frozen=True)
class ChronologicalSplit:
    """Boolean masks over one variant's rows (aligned with its timestamps)."""

    train: np.ndarray
    valid: np.ndarray


def split_cutoff(timeline: np.ndarray, validation_fraction: float) -> np.datetime64:
    """The first timestamp of the validation period: the last `validation_fraction` of time."""
    ordered = np.sort(timeline)
    index = int(np.floor(len(ordered) * (1.0 - validation_fraction)))
    return np.datetime64(ordered[min(index, len(ordered) - 1)], "us")


def chronological_split(
    timestamps: np.ndarray,
    cutoff: np.datetime64,
    label_horizon: timedelta,
    embargo: timedelta = timedelta(0),
) -> ChronologicalSplit:
    """Train on rows whose label window ends before `cutoff`; validate after cutoff + embargo.

    A row at t is labelled from bars in (t, t + label_horizon], so rows with
    ``t + label_horizon >= cutoff`` are purged from training.
    """
    stamps = timestamps.astype("datetime64[us]")
    horizon = np.timedelta64(int(label_horizon / timedelta(microseconds=1)), "us")
    gap = np.timedelta64(int(embargo / timedelta(microseconds=1)), "us")
    train = np.asarray(stamps + horizon < cutoff)
    valid = np.asarray(stamps >= cutoff + gap)
    return ChronologicalSplit(train=train, valid=valid)

"""Leak-free CV folds: no training label window reaches into a fold's validation period."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from alphafactory.data.folds import (
    purge_training,
    purged_kfold_folds,
    rolling_folds,
    walk_forward_folds,
)
from alphafactory.errors import DataError

START = np.datetime64("2024-01-01T00:00", "us")
HOUR = np.timedelta64(1, "h")


def hourly(n: int) -> np.ndarray:
    return START + np.arange(n) * HOUR


def random_stamps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Irregular, unsorted, partly repeated bar times (several symbols share a bar)."""
    offsets = np.sort(rng.choice(5 * n, size=n, replace=True))
    return (START + offsets * np.timedelta64(15, "m"))[rng.permutation(n)]


def ends_after(stamps: np.ndarray, horizon: timedelta) -> np.ndarray:
    """Label ends of rows labelled over (t, t + horizon]."""
    return stamps.astype("datetime64[us]") + np.timedelta64(horizon, "us")


def assert_leak_free(stamps: np.ndarray, folds: list, ends: np.ndarray) -> None:
    stamps = stamps.astype("datetime64[us]")
    previous_end = None
    for train, valid in folds:
        assert train.any() and valid.any()
        assert not (train & valid).any()
        v_start, v_end = stamps[valid].min(), stamps[valid].max()
        inside = (stamps >= v_start) & (stamps <= v_end)
        assert np.array_equal(inside, valid)  # a validation block is one contiguous period
        t, end = stamps[train], ends[train]
        # label window (t, end] intersects [v_start, v_end] iff t < v_end and end >= v_start
        assert not np.any((t < v_end) & (end >= v_start))
        # rows after the block start past every validation label
        assert np.all(t[t > v_end] > ends[valid].max())
        if previous_end is not None:
            assert v_start > previous_end  # chronological and disjoint
        previous_end = v_end


CONFIGS = [(seed, n_folds, hours) for seed in range(4) for n_folds in (2, 3, 5) for hours in (1, 6)]


@pytest.mark.parametrize(("seed", "n_folds", "horizon_hours"), CONFIGS)
def test_walk_forward_and_rolling_folds_never_leak(
    seed: int, n_folds: int, horizon_hours: int
) -> None:
    rng = np.random.default_rng(seed)
    stamps = random_stamps(rng, 600)
    horizon = timedelta(hours=horizon_hours)
    embargo = timedelta(minutes=int(rng.integers(0, 120)))
    ends = ends_after(stamps, horizon + embargo)
    for make in (walk_forward_folds, rolling_folds, purged_kfold_folds):
        folds = make(stamps, n_folds, label_ends=ends)
        assert len(folds) == n_folds
        assert_leak_free(stamps, folds, ends)


def test_walk_forward_hand_example() -> None:
    folds = walk_forward_folds(hourly(12), 2, label_ends=hourly(12) + HOUR)
    indices = [(np.flatnonzero(tr).tolist(), np.flatnonzero(va).tolist()) for tr, va in folds]
    # blocks [0-3] [4-7] [8-11]; row t is purged when t + 1h reaches the validation start
    assert indices == [([0, 1, 2], [4, 5, 6, 7]), ([0, 1, 2, 3, 4, 5, 6], [8, 9, 10, 11])]


def test_rolling_hand_example_uses_a_window_before_each_block() -> None:
    folds = rolling_folds(hourly(12), 2, label_ends=hourly(12) + HOUR)
    indices = [(np.flatnonzero(tr).tolist(), np.flatnonzero(va).tolist()) for tr, va in folds]
    assert indices == [([0, 1, 2], [4, 5, 6, 7]), ([4, 5, 6], [8, 9, 10, 11])]
    wide = rolling_folds(hourly(12), 2, timedelta(hours=6), label_ends=hourly(12) + HOUR)
    assert np.flatnonzero(wide[1][0]).tolist() == [2, 3, 4, 5, 6]


def test_purged_kfold_embargoes_rows_after_the_block() -> None:
    folds = purged_kfold_folds(hourly(12), 2, label_ends=hourly(12) + 2 * HOUR)
    # labels end 1 bar ahead, embargoed 1 bar more (end = t + 2h): before block 4-7 keep
    # t + 2h < 4h; after it, the last validation end is 9h -> keep t > 9h
    assert np.flatnonzero(folds[0][0]).tolist() == [0, 1, 10, 11]


def test_purge_training_purges_on_label_ends_on_both_sides() -> None:
    stamps = hourly(10)
    everything = np.ones(10, dtype=bool)
    valid = (stamps >= stamps[4]) & (stamps <= stamps[5])
    kept = purge_training(stamps, stamps + 3 * HOUR, everything & ~valid, valid)
    # before: t + 3h < 4h keeps 0; after: t > 5h + 3h keeps 9
    assert np.flatnonzero(kept).tolist() == [0, 9]


def test_uneven_label_ends_purge_more_than_a_clock_horizon() -> None:
    stamps = hourly(12)
    ends = stamps + HOUR
    ends[3] = stamps[3] + 30 * HOUR  # an outage: bar 3's next bar comes a day later
    folds = walk_forward_folds(stamps, 2, label_ends=ends)
    assert 3 not in np.flatnonzero(folds[0][0]).tolist()
    assert 3 not in np.flatnonzero(folds[1][0]).tolist()


def test_too_many_folds_is_a_data_error() -> None:
    with pytest.raises(DataError, match="cannot make 5 folds from 4 distinct timestamps"):
        walk_forward_folds(hourly(4), 5, label_ends=hourly(4) + HOUR)
    with pytest.raises(DataError, match="fold 0 has no training rows"):
        walk_forward_folds(hourly(12), 2, label_ends=hourly(12) + 10 * HOUR)

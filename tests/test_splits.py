"""Tests of the leak-free chronological split: purge before the cutoff, embargo after it."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from alphafactory.data.splits import chronological_split, split_cutoff

HOUR = np.timedelta64(1, "h")
START = np.datetime64("2024-01-01T00:00:00", "us")


def hourly(n: int) -> np.ndarray:
    return START + np.arange(n) * HOUR


def test_split_cutoff_is_first_timestamp_of_last_fraction() -> None:
    timeline = hourly(100)
    assert split_cutoff(timeline, 0.2) == timeline[80]
    assert split_cutoff(timeline, 0.25) == timeline[75]
    assert split_cutoff(timeline, 0.001) == timeline[99]
    assert split_cutoff(timeline, 0.2).dtype == np.dtype("datetime64[us]")


def test_split_cutoff_sorts_its_input() -> None:
    timeline = hourly(10)
    shuffled = np.random.default_rng(0).permutation(timeline)
    assert split_cutoff(shuffled, 0.3) == timeline[7]


def test_split_cutoff_of_single_row() -> None:
    assert split_cutoff(hourly(1), 0.2) == START


def test_chronological_split_hand_example() -> None:
    stamps = hourly(10)
    split = chronological_split(stamps, stamps[6], timedelta(hours=2), timedelta(hours=1))
    # Train rows t with t + 2h < cutoff (bar 6): bars 0..3. Bars 4, 5 are purged.
    assert np.flatnonzero(split.train).tolist() == [0, 1, 2, 3]
    # Validation rows t >= cutoff + 1h: bars 7..9. Bar 6 is embargoed.
    assert np.flatnonzero(split.valid).tolist() == [7, 8, 9]


def test_zero_horizon_and_embargo_touch_the_cutoff() -> None:
    stamps = hourly(10)
    split = chronological_split(stamps, stamps[6], timedelta(0))
    assert np.flatnonzero(split.train).tolist() == [0, 1, 2, 3, 4, 5]
    assert np.flatnonzero(split.valid).tolist() == [6, 7, 8, 9]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("horizon_hours", [0, 1, 6, 48])
@pytest.mark.parametrize("embargo_hours", [0, 3, 24])
def test_random_timestamps_never_leak(seed: int, horizon_hours: int, embargo_hours: int) -> None:
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, 24 * 60 * 90, size=2000)  # minutes within ~90 days, unsorted
    stamps = (START + offsets.astype("timedelta64[m]")).astype("datetime64[us]")
    horizon = timedelta(hours=horizon_hours)
    embargo = timedelta(hours=embargo_hours)
    cutoff = split_cutoff(stamps, 0.2)
    split = chronological_split(stamps, cutoff, horizon, embargo)

    label_end = stamps + np.timedelta64(horizon_hours, "h")
    # No training row's label window (t, t + h] reaches the cutoff.
    assert np.all(label_end[split.train] < cutoff)
    # Every validation row starts at or after cutoff + embargo.
    assert np.all(stamps[split.valid] >= cutoff + np.timedelta64(embargo_hours, "h"))
    assert not np.any(split.train & split.valid)
    # Nothing is dropped beyond what purge and embargo require.
    np.testing.assert_array_equal(split.train, label_end < cutoff)
    np.testing.assert_array_equal(
        split.valid, stamps >= cutoff + np.timedelta64(embargo_hours, "h")
    )
    assert split.train.sum() > 0 and split.valid.sum() > 0
    # Roughly the last 20% of time (before the embargo) is on the validation side.
    assert np.mean(stamps >= cutoff) == pytest.approx(0.2, abs=0.01)


def test_split_accepts_other_datetime_units() -> None:
    stamps_ns = hourly(10).astype("datetime64[ns]")
    split = chronological_split(stamps_ns, hourly(10)[6], timedelta(hours=2))
    assert np.flatnonzero(split.train).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(split.valid).tolist() == [6, 7, 8, 9]

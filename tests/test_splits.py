"""The three periods and their purge by label end: hand examples, uneven bars, random data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from alphafactory.data.splits import (
    BEYOND_DATA,
    Periods,
    bars_ahead,
    label_end_column,
    make_periods,
    period_masks,
    selection_split,
    shift_ends,
    tuning_periods,
    variant_masks,
)
from alphafactory.errors import DataError

HOUR = np.timedelta64(1, "h")
START = np.datetime64("2024-01-01T00:00:00", "us")


def hourly(n: int) -> np.ndarray:
    return START + np.arange(n) * HOUR


def test_make_periods_takes_fractions_of_the_distinct_timestamps() -> None:
    timeline = hourly(100)
    periods = make_periods(np.concatenate([timeline, timeline[::-1]]), 0.2, 0.15)
    assert periods.test_start == timeline[85]
    assert periods.selection_start == timeline[65]
    assert Periods.from_dict(periods.to_dict()) == periods
    assert periods.to_dict()["test_start"] == "2024-01-04T13:00:00+00:00"


def test_tuning_periods_lie_inside_the_training_period() -> None:
    timeline = hourly(100)
    periods = make_periods(timeline, 0.2, 0.15)  # selection from bar 65
    inner = tuning_periods(timeline, periods, 0.2)
    assert inner.selection_start == timeline[52]  # the last 20 % of bars 0..64
    assert inner.test_start == periods.selection_start
    frame = group_frame(timeline, 3)
    masks = variant_masks(frame, "v", 3, inner)
    # the search validates on bars whose labels end before the run's selection period
    assert np.flatnonzero(masks.selection).tolist() == list(range(52, 62))
    assert np.flatnonzero(masks.train).max() == 48


def test_make_periods_refuses_too_few_timestamps() -> None:
    with pytest.raises(DataError, match="2 timestamps cannot hold train, selection and test"):
        make_periods(hourly(2), 0.2, 0.15)


def test_bars_ahead_and_shift_ends_hand_example() -> None:
    stamps = hourly(5)
    np.testing.assert_array_equal(
        bars_ahead(stamps, 2), [stamps[2], stamps[3], stamps[4], BEYOND_DATA, BEYOND_DATA]
    )
    ends = bars_ahead(stamps, 1)
    np.testing.assert_array_equal(
        shift_ends(stamps, ends, 2), [stamps[3], stamps[4], BEYOND_DATA, BEYOND_DATA, BEYOND_DATA]
    )
    assert shift_ends(stamps, ends, 0) is ends


def test_period_masks_hand_example() -> None:
    stamps = hourly(12)
    periods = Periods(stamps[6], stamps[9])
    masks = period_masks(stamps, bars_ahead(stamps, 2), periods)
    # label of bar t ends at bar t+2: train keeps t+2 < 6, selection keeps 6 <= t, t+2 < 9
    assert np.flatnonzero(masks.train).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(masks.selection).tolist() == [6]
    assert np.flatnonzero(masks.test).tolist() == [9, 10, 11]


def group_frame(
    stamps: np.ndarray, horizon: int, labelled: np.ndarray | None = None
) -> pl.DataFrame:
    labels = np.ones(len(stamps), dtype=np.int8) if labelled is None else labelled
    return pl.DataFrame(
        {
            "timestamp": pl.Series(stamps).cast(pl.Datetime("us", "UTC")),
            "v": pl.Series(labels, dtype=pl.Int8),
            label_end_column(horizon): pl.Series(bars_ahead(stamps, horizon)),
        }
    ).with_columns(pl.col("v").replace(-1, None))


def test_variant_masks_embargo_and_unlabelled_rows() -> None:
    stamps = hourly(12)
    labels = np.array([1, -1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=np.int8)
    frame = group_frame(stamps, 2, labels)
    periods = Periods(stamps[6], stamps[9])
    masks = variant_masks(frame, "v", 2, periods, embargo_bars=1)
    # the embargo moves each label end one bar later: train t+3 < 6, bar 1 is unlabelled
    assert np.flatnonzero(masks.train).tolist() == [0, 2]
    assert np.flatnonzero(masks.selection).tolist() == []
    assert np.flatnonzero(masks.test).tolist() == [9, 10, 11]
    fit, score = selection_split(periods, 0)(frame, "v", 2)
    assert np.flatnonzero(fit).tolist() == [0, 2, 3] and np.flatnonzero(score).tolist() == [6]


def test_variant_masks_without_label_ends_names_the_fix() -> None:
    frame = group_frame(hourly(12), 2).drop(label_end_column(2))
    with pytest.raises(DataError, match="no label_end_h2 column; re-run prepare"):
        variant_masks(frame, "v", 2, Periods(START, START + HOUR))


def session_bars(days: int) -> np.ndarray:
    """Hourly bars 09:00-16:00 on weekdays only: nights and weekends are gaps."""
    hours = np.arange(days * 24)
    stamps = START + hours * HOUR
    day = (stamps.astype("datetime64[D]").view("int64") - 4) % 7  # 0 = Monday
    hour = hours % 24
    return stamps[(day < 5) & (hour >= 9) & (hour <= 16)]


def outage_bars(n: int, boundary: int, gap_hours: int) -> np.ndarray:
    """Hourly bars with an outage of `gap_hours` just before bar `boundary`."""
    stamps = hourly(n)
    stamps[boundary:] += np.timedelta64(gap_hours, "h")
    return stamps


def median_rule_train(stamps: np.ndarray, horizon: int, boundary: np.datetime64) -> np.ndarray:
    """The old purge, t + median interval × h < boundary: wrong for uneven bars."""
    interval = np.median(np.diff(stamps).astype("int64"))
    return stamps + (interval * horizon).astype("timedelta64[us]") < boundary


@pytest.mark.parametrize(
    ("case", "stamps", "horizon"),
    [
        ("session", session_bars(120), 6),
        ("outage", outage_bars(1200, 1000, 30), 12),
        ("daily", START + np.arange(400) * np.timedelta64(1, "D"), 5),
    ],
)
def test_uneven_bars_never_leave_a_label_across_a_boundary(
    case: str, stamps: np.ndarray, horizon: int
) -> None:
    boundary_index = int(len(stamps) * 0.7)
    boundary = stamps[boundary_index]
    if case == "outage":
        boundary = stamps[1000]  # the outage ends right at the boundary
    periods = Periods(boundary, stamps[-1])
    frame = group_frame(stamps, horizon)
    masks = variant_masks(frame, "v", horizon, periods)
    true_end = stamps[np.minimum(np.arange(len(stamps)) + horizon, len(stamps) - 1)]
    assert masks.train.sum() > 0
    assert not np.any(true_end[masks.train] >= boundary)
    # every row whose label ends before the boundary is kept: the purge is exact
    has_end = np.arange(len(stamps)) + horizon < len(stamps)
    np.testing.assert_array_equal(masks.train, has_end & (true_end < boundary))
    if case != "daily":  # evenly spaced bars: the old rule was right there
        leaked = median_rule_train(stamps, horizon, boundary) & (true_end >= boundary)
        assert leaked.sum() > 0, f"{case}: the median-interval rule should leak here"


def test_mixed_frequencies_purge_each_symbol_on_its_own_bars() -> None:
    hourly_stamps = hourly(24 * 60)
    daily_stamps = START + np.arange(60) * np.timedelta64(1, "D")
    timeline = np.unique(np.concatenate([hourly_stamps, daily_stamps]))
    periods = make_periods(timeline, 0.2, 0.15)
    for stamps, horizon in ((hourly_stamps, 24), (daily_stamps, 3)):
        masks = variant_masks(group_frame(stamps, horizon), "v", horizon, periods)
        ends = bars_ahead(stamps, horizon)
        assert masks.train.sum() > 0 and masks.selection.sum() > 0
        assert np.all(ends[masks.train] < periods.selection_start)
        assert np.all(ends[masks.selection] < periods.test_start)
        assert np.all(stamps[masks.selection] >= periods.selection_start)
    # the daily symbol's label (3 days) reaches much further than 3 hourly bars would
    daily = variant_masks(group_frame(daily_stamps, 3), "v", 3, periods)
    last_train = daily_stamps[daily.train].max()
    assert periods.selection_start - last_train > np.timedelta64(2, "D")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("embargo", [0, 3])
def test_random_uneven_bars_never_leak(seed: int, embargo: int) -> None:
    rng = np.random.default_rng(seed)
    gaps = rng.choice([1, 1, 1, 2, 5, 48], size=3000).astype("timedelta64[h]")
    stamps = START + np.cumsum(gaps).astype("timedelta64[us]")
    horizon = int(rng.integers(1, 30))
    periods = make_periods(stamps, 0.2, 0.15)
    masks = variant_masks(group_frame(stamps, horizon), "v", horizon, periods, embargo)
    index = np.arange(len(stamps))
    end = np.where(
        index + horizon + embargo < len(stamps),
        stamps[np.minimum(index + horizon + embargo, len(stamps) - 1)],
        BEYOND_DATA,
    )
    assert masks.train.sum() > 0 and masks.selection.sum() > 0 and masks.test.sum() > 0
    assert not (masks.train & masks.selection).any() and not (masks.selection & masks.test).any()
    np.testing.assert_array_equal(masks.train, end < periods.selection_start)
    np.testing.assert_array_equal(
        masks.selection, (stamps >= periods.selection_start) & (end < periods.test_start)
    )
    np.testing.assert_array_equal(masks.test, stamps >= periods.test_start)

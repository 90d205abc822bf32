"""Walk-forward windows: exact boundaries in bars and calendar time, purging and the embargo."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from alphafactory.backtest.windows import WindowSpec, make_windows, window_rows
from alphafactory.errors import ConfigError, DataError

HOUR = np.timedelta64(1, "h")
T0 = np.datetime64("2024-01-01T00:00", "us")


def hourly(n: int) -> np.ndarray:
    return T0 + np.arange(n) * HOUR


def test_rolling_bar_windows_tile_the_rest_of_the_timeline() -> None:
    bars = hourly(20)
    windows = make_windows(bars, WindowSpec(train=8, test=4))
    assert [(w.train_start, w.test_start, w.test_end) for w in windows] == [
        (bars[0], bars[8], bars[12]),
        (bars[4], bars[12], bars[16]),
        (bars[8], bars[16], bars[19] + np.timedelta64(1, "us")),
    ]
    assert [w.index for w in windows] == [0, 1, 2]


def test_expanding_windows_train_from_the_first_bar_and_step_can_overlap() -> None:
    bars = hourly(14)
    windows = make_windows(bars, WindowSpec(train=8, test=4, step=2, expanding=True))
    assert [w.test_start for w in windows] == [bars[8], bars[10], bars[12]]
    assert all(w.train_start == bars[0] for w in windows)
    assert windows[0].test_end == bars[12]  # 4 bars, overlapping the next window's test


def test_start_and_end_bound_the_test_parts() -> None:
    bars = hourly(40)
    windows = make_windows(bars, WindowSpec(train=10, test=5), start=bars[25], end=bars[37])
    assert [(w.test_start, w.test_end) for w in windows] == [
        (bars[25], bars[30]),
        (bars[30], bars[35]),
        (bars[35], bars[37]),
    ]
    assert windows[0].train_start == bars[15]


def test_calendar_windows_follow_the_clock_over_gaps() -> None:
    # 10 bars, a 2-day outage, 10 more: calendar windows do not count bars
    bars = np.concatenate([hourly(10), T0 + np.timedelta64(58, "h") + np.arange(10) * HOUR])
    spec = WindowSpec(train=timedelta(hours=6), test=timedelta(hours=4))
    windows = make_windows(bars, spec)
    hours = [int((w.test_start - T0) / HOUR) for w in windows]
    assert hours == [6, 58, 62, 66]  # 10h-54h fall in the outage: no bar, left out
    assert windows[-1].test_end == bars[-1] + np.timedelta64(1, "us")
    assert all(w.test_start - w.train_start == np.timedelta64(6, "h") for w in windows)
    assert [w.index for w in windows] == [0, 1, 2, 3]


def test_purging_drops_training_rows_whose_label_ends_in_the_test_part() -> None:
    bars = hourly(30)
    spec = WindowSpec(train=20, test=5, valid_fraction=0.25)
    window = make_windows(bars, spec)[0]  # trains on bars 0-19, tests 20-24
    stamps = bars
    ends = bars + 3 * HOUR  # each label is known 3 bars later
    ends[-3:] = np.datetime64("9999-12-31", "us")
    rows = window_rows(window, stamps, ends, spec, bars)
    training = np.flatnonzero(rows.fit | rows.valid)
    assert training.max() == 16  # row 17's label ends at bar 20 = the test start: purged
    assert np.array_equal(np.flatnonzero(rows.test), np.arange(20, 25))
    # the early-stopping rows are the latest quarter, and fit rows end before them
    assert np.array_equal(np.flatnonzero(rows.valid), np.arange(12, 17))
    assert np.array_equal(np.flatnonzero(rows.fit), np.arange(0, 9))  # 9-11 end at >= bar 12
    assert not (rows.fit & rows.valid).any() and not ((rows.fit | rows.valid) & rows.test).any()


def test_the_embargo_moves_label_ends_later_on_the_symbol_timeline() -> None:
    bars = hourly(30)
    spec = WindowSpec(train=20, test=5, embargo_bars=2)
    window = make_windows(bars, spec)[0]
    rows = window_rows(window, bars, bars + 3 * HOUR, spec, bars)
    assert np.flatnonzero(rows.fit | rows.valid).max() == 14  # 2 more rows than without


def test_predict_until_cuts_an_overlapping_test_part() -> None:
    bars = hourly(30)
    spec = WindowSpec(train=10, test=6, step=3)
    windows = make_windows(bars, spec)
    rows = window_rows(windows[0], bars, bars, spec, bars, windows[1].test_start)
    assert np.array_equal(np.flatnonzero(rows.test), np.arange(10, 13))


def test_bad_specs_and_timelines_are_refused() -> None:
    with pytest.raises(ConfigError, match="all be bars or all be calendar time"):
        WindowSpec(train=10, test=timedelta(hours=2))
    with pytest.raises(ConfigError, match=r"backtest\.test must be positive"):
        WindowSpec(train=10, test=0)
    with pytest.raises(ConfigError, match="valid_fraction"):
        WindowSpec(train=10, test=2, valid_fraction=1.0)
    with pytest.raises(DataError, match="no test window fits 10 bars"):
        make_windows(hourly(10), WindowSpec(train=10, test=2))
    with pytest.raises(DataError, match="sorted, unique"):
        make_windows(hourly(5)[::-1], WindowSpec(train=2, test=1))


def test_an_explicit_start_with_short_history_trains_on_what_there_is() -> None:
    bars = hourly(30)
    windows = make_windows(bars, WindowSpec(train=100, test=10), start=bars[12])
    assert [(w.train_start, w.test_start) for w in windows] == [
        (bars[0], bars[12]),
        (bars[0], bars[22]),
    ]
    calendar = make_windows(
        bars, WindowSpec(train=timedelta(hours=100), test=timedelta(hours=10)), start=bars[12]
    )
    assert [(w.train_start, w.test_start) for w in calendar] == [
        (bars[0], bars[12]),
        (bars[0], bars[22]),
    ]

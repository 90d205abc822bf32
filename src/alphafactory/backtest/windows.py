"""Walk-forward windows over a bar timeline, and the purged rows each window trains on.

A window trains on the rows of `[train_start, test_start)` whose label (moved later by the
embargo) ends before `test_start`, and predicts the rows of `[test_start, test_end)`. The
lengths are bars of the timeline (ints) or calendar time (timedeltas); windows advance by
`step` (default: the test length) and, with `expanding`, always train from the first bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from alphafactory.data.splits import iso_time, shift_ends
from alphafactory.errors import ConfigError, DataError

#: A window length: a number of bars, or calendar time.
Length = int | timedelta


@dataclass(frozen=True)
class WindowSpec:
    """How windows are cut: lengths, rolling or expanding, embargo and the refit's own split.

    Attributes:
        valid_fraction: the latest share of each window's training rows held out (purged)
            for the refit's early stopping, so no stopping decision sees the test rows.
        min_train_rows: a window with fewer fit rows is skipped (recorded, not refitted).
    """

    train: Length
    test: Length
    step: Length | None = None
    expanding: bool = False
    embargo_bars: int = 0
    valid_fraction: float = 0.2
    min_train_rows: int = 100

    def __post_init__(self) -> None:
        lengths = {"train": self.train, "test": self.test, "step": self.stride}
        kinds = {isinstance(value, timedelta) for value in lengths.values()}
        if len(kinds) > 1:
            raise ConfigError(
                "backtest: train, test and step must all be bars or all be calendar time; "
                f"got {lengths}"
            )
        for name, value in lengths.items():
            if (value <= timedelta(0)) if isinstance(value, timedelta) else value < 1:
                raise ConfigError(f"backtest.{name} must be positive, got {value}")
        if self.embargo_bars < 0:
            raise ConfigError(f"backtest.embargo_bars must be >= 0, got {self.embargo_bars}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ConfigError(
                f"backtest.valid_fraction must be in (0, 1), got {self.valid_fraction}"
            )

    @property
    def stride(self) -> Length:
        return self.test if self.step is None else self.step

    @property
    def in_bars(self) -> bool:
        return not isinstance(self.test, timedelta)


@dataclass(frozen=True)
class Window:
    """One refit: trains before `test_start`, predicts `[test_start, test_end)`."""

    index: int
    train_start: np.datetime64
    test_start: np.datetime64
    test_end: np.datetime64

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "train_start": iso_time(self.train_start),
            "test_start": iso_time(self.test_start),
            "test_end": iso_time(self.test_end),
        }


def _us(values: Any) -> np.ndarray:
    return np.asarray(values).astype("datetime64[us]")


def make_windows(
    timeline: np.ndarray,
    spec: WindowSpec,
    start: np.datetime64 | None = None,
    end: np.datetime64 | None = None,
) -> list[Window]:
    """Chronological windows whose test parts tile `[start, end)` of `timeline`.

    `timeline` holds the bar timestamps (sorted, unique). The first test part starts at
    `start` (default: as soon as a whole training window fits; an explicit start with less
    history before it trains on what there is) and no test part reaches past `end` (default:
    after the last bar). A test part holding no bar is left out.
    """
    bars = _us(timeline)
    if len(bars) < 2 or np.any(np.diff(bars) <= np.timedelta64(0, "us")):
        raise DataError("backtest: the bar timeline must hold at least 2 sorted, unique bars")
    last_bar: Any = bars[-1]
    stop: Any = last_bar + np.timedelta64(1, "us") if end is None else _us(end)[()]
    windows = _bar_windows(bars, spec, start, stop) if spec.in_bars else _time_windows(
        bars, spec, start, stop
    )  # fmt: skip
    kept = [w for w in windows if np.any((bars >= w.test_start) & (bars < w.test_end))]
    if not kept:
        raise DataError(
            f"backtest: no test window fits {len(bars)} bars with train={spec.train}, "
            f"test={spec.test}; use shorter windows or more data"
        )
    return [Window(i, w.train_start, w.test_start, w.test_end) for i, w in enumerate(kept)]


def _bar_windows(
    bars: np.ndarray, spec: WindowSpec, start: np.datetime64 | None, stop: np.datetime64
) -> list[Window]:
    assert isinstance(spec.train, int) and isinstance(spec.test, int)
    assert isinstance(spec.stride, int)
    first = spec.train if start is None else max(1, int(np.searchsorted(bars, _us(start))))
    last = int(np.searchsorted(bars, stop))
    windows: list[Window] = []
    for position in range(first, last, spec.stride):
        test_end = bars[position + spec.test] if position + spec.test < last else stop
        train_from = 0 if spec.expanding else max(0, position - spec.train)
        windows.append(Window(len(windows), bars[train_from], bars[position], test_end))
    return windows


def _time_windows(
    bars: np.ndarray, spec: WindowSpec, start: np.datetime64 | None, stop: np.datetime64
) -> list[Window]:
    train, test, stride = (np.timedelta64(_delta(x), "us") for x in (spec.train, spec.test,
                                                                    spec.stride))  # fmt: skip
    test_start = bars[0] + train if start is None else max(_us(start)[()], bars[1])
    windows: list[Window] = []
    while test_start < stop:
        train_start = bars[0] if spec.expanding else max(bars[0], test_start - train)
        windows.append(Window(len(windows), train_start, test_start, min(test_start + test, stop)))
        test_start = test_start + stride
    return windows


def _delta(value: Length) -> timedelta:
    assert isinstance(value, timedelta)
    return value


@dataclass(frozen=True)
class WindowRows:
    """Boolean masks over the event rows: fit and early-stopping rows (both before the test
    part, purged), and the rows this window predicts."""

    fit: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def window_rows(
    window: Window,
    timestamps: np.ndarray,
    label_ends: np.ndarray,
    spec: WindowSpec,
    timeline: np.ndarray,
    predict_until: np.datetime64 | None = None,
) -> WindowRows:
    """The rows of `window`: training rows purged by label end (after the embargo on the
    symbol's `timeline`), their latest `valid_fraction` held out for early stopping (purged
    again at that cut), and the test rows up to `predict_until` (default the test end)."""
    stamps = _us(timestamps)
    ends = shift_ends(_us(timeline), _us(label_ends), spec.embargo_bars)
    inside = (stamps >= window.train_start) & (stamps < window.test_start)
    training = inside & (ends < window.test_start)
    until = window.test_end if predict_until is None else min(window.test_end, predict_until)
    test = (stamps >= window.test_start) & (stamps < until)
    if not training.any():
        return WindowRows(training, training.copy(), test)
    ordered = np.sort(stamps[training])
    cut = ordered[min(len(ordered) - 1, int(len(ordered) * (1.0 - spec.valid_fraction)))]
    valid = training & (stamps >= cut)
    fit = training & (stamps < cut) & (ends < cut)
    return WindowRows(fit, valid, test)

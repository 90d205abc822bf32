"""A learnable precursor planted in synthetic bars, and its ground truth.

The plain generator holds no signal for the swing labels, so a run on it cannot tell a working
model factory from a broken one. Planting gives chosen symbols a known signal: at a share of
the bars that make a new two-bar high (low), the bar is marked by its own volume and the price
continues or reverses over the following bars:

* breakout: volume of the bar times 4 (a spike), then the log returns of the next
  ``drift_bars`` bars each get ``drift_sigmas * vol_t / drift_bars`` in the swing's direction
  (up after a new high, down after a new low);
* reversion: volume times 0.25 (a drought) and the same drift the other way.

The marker is the volume of bar t, so features see it at t; the drift starts at bar t+1 and
never touches bar t or earlier. A move runs to its end before the next one can start, and the
planting draws from its own random stream, so unplanted symbols and the main stream of the
generator stay byte-identical to an unplanted run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from alphafactory.config.schema import PlantConfig
from alphafactory.targets.variants import group_id

__all__ = [
    "BREAKOUT",
    "DROUGHT_MULTIPLIER",
    "MARK_KINDS",
    "NO_MARK",
    "REVERSION",
    "SPIKE_MULTIPLIER",
    "TRIGGER_WINDOW",
    "PlantedSeries",
    "mark_counts",
    "plant_precursor",
    "planted_ground_truth",
]

# Mark codes per bar: 0 unmarked, +1/-1 breakout after a new high/low, +2/-2 reversion.
NO_MARK = 0
BREAKOUT = 1
REVERSION = 2
SPIKE_MULTIPLIER = 4.0
DROUGHT_MULTIPLIER = 0.25
TRIGGER_WINDOW = 2
# First bar that may be marked: it needs two earlier bars to compare with.
_WARMUP_BARS = 3
MARK_KINDS = {BREAKOUT: "breakout", REVERSION: "reversion"}


@dataclass(frozen=True)
class PlantedSeries:
    """One symbol's series after planting.

    Attributes:
        log_returns: Log returns with the planted drifts added (bar t+1 .. t+drift_bars).
        volumes: Volumes with spikes (x4) and droughts (x0.25) at the marked bars.
        marks: Int8 per bar: 0 unmarked, sign = swing direction (+1 after a new high, -1
            after a new low), magnitude = kind (1 breakout, 2 reversion).
    """

    log_returns: np.ndarray
    volumes: np.ndarray
    marks: np.ndarray


def plant_precursor(
    log_returns: np.ndarray,
    conditional_vols: np.ndarray,
    volumes: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    rng: np.random.Generator,
    planted: PlantConfig,
) -> PlantedSeries:
    """Plant volume-marked breakouts and reversions into one symbol's generated series.

    Args:
        log_returns: Close-to-close log returns per bar, shape (n_bars,).
        conditional_vols: Conditional volatility of each bar's log return, shape (n_bars,).
        volumes: Unplanted volumes, shape (n_bars,).
        upper: Log excursion of the high above max(open, close) per bar (>= 0).
        lower: Log excursion of the low below min(open, close) per bar (>= 0).
        rng: The planting's own generator (never the main stream of the generator).
        planted: Trigger share, drift size and length.

    Returns:
        The planted series; the inputs are not modified.

    The loop is sequential because a planted drift moves every later high and low. Highs and
    lows are compared in log space, where the start price is only an offset.
    """
    n_bars = log_returns.shape[0]
    drift_bars = planted.drift_bars
    # One uniform per bar for the trigger and one for the kind: fixed draws keep the stream
    # independent of how many bars trigger.
    trigger_draws = rng.random(size=(n_bars,)).tolist()
    kind_draws = rng.random(size=(n_bars,)).tolist()
    returns_list = np.asarray(log_returns, dtype=np.float64).tolist()
    vols_list = conditional_vols.tolist()
    up_list = upper.tolist()
    down_list = lower.tolist()
    marks = np.zeros(n_bars, dtype=np.int8)
    last_bar_with_room = n_bars - 1 - drift_bars
    share = planted.trigger_share

    log_close = 0.0  # the first bar opens at the start price: log 0 relative to it
    highs = [0.0] * n_bars
    lows = [0.0] * n_bars
    free_from = _WARMUP_BARS  # no move is running from this bar on
    for t in range(n_bars):
        previous_close = log_close
        log_close = previous_close + returns_list[t]
        highs[t] = max(previous_close, log_close) + up_list[t]
        lows[t] = min(previous_close, log_close) - down_list[t]
        if t < free_from or t > last_bar_with_room:
            continue
        new_high = highs[t] >= max(highs[t - 1], highs[t - 2])
        new_low = lows[t] <= min(lows[t - 1], lows[t - 2])
        if new_high == new_low or trigger_draws[t] >= share:
            continue
        direction = 1 if new_high else -1
        kind = BREAKOUT if kind_draws[t] < 0.5 else REVERSION
        sign = direction if kind == BREAKOUT else -direction
        step = sign * planted.drift_sigmas * vols_list[t] / drift_bars
        for ahead in range(t + 1, t + 1 + drift_bars):
            returns_list[ahead] += step
        marks[t] = direction * kind
        free_from = t + drift_bars
    returns = np.asarray(returns_list, dtype=np.float64)
    kinds = np.abs(marks)
    multipliers = np.where(
        kinds == BREAKOUT,
        SPIKE_MULTIPLIER,
        np.where(kinds == REVERSION, DROUGHT_MULTIPLIER, 1.0),
    )
    planted_volumes = np.where(marks != NO_MARK, volumes * multipliers, volumes)
    return PlantedSeries(log_returns=returns, volumes=planted_volumes, marks=marks)


def mark_counts(marks: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Realised planted events per symbol and kind from a marks frame of the generator."""
    counts: dict[str, dict[str, int]] = {}
    for symbol, kind, swing_type in marks.select("symbol", "kind", "swing_type").iter_rows():
        per_symbol = counts.setdefault(
            symbol, {"breakout": 0, "reversion": 0, "high": 0, "low": 0, "total": 0}
        )
        per_symbol[kind] += 1
        per_symbol[swing_type] += 1
        per_symbol["total"] += 1
    return counts


def planted_ground_truth(
    planted: PlantConfig,
    symbols: Sequence[str],
    windows: Sequence[int],
    swing_types: Sequence[str] = ("high", "low"),
    marks: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """JSON-friendly ground truth: planted symbols, mechanism, and planted/noise per group id.

    Args:
        planted: The plant configuration the bars were generated with.
        symbols: Every symbol of the run (planted or not).
        windows: Swing windows of the grid.
        swing_types: Swing types of the grid.
        marks: The marks frame of the generation (`generate_bars_with_marks`); when given, the
            realised events per symbol and kind are added under ``"events"``.

    Returns:
        A dict of plain str/int/float/list/dict values, ready for ``json.dumps``.
    """
    planted_symbols = [s for s in symbols if s in set(planted.symbols)]
    groups = {
        group_id(symbol, window, swing_type): ("planted" if symbol in planted_symbols else "noise")
        for symbol in symbols
        for window in windows
        for swing_type in swing_types
    }
    truth: dict[str, Any] = {
        "mechanism": (
            f"at a share of new {TRIGGER_WINDOW}-bar highs (lows): volume spike "
            f"(x{SPIKE_MULTIPLIER:g}) then a drift in the swing's direction (breakout), or "
            f"volume drought (x{DROUGHT_MULTIPLIER:g}) then the same drift the other way "
            "(reversion); the marker is visible at bar t, the drift starts at bar t+1"
        ),
        "planted_symbols": planted_symbols,
        "noise_symbols": [s for s in symbols if s not in planted_symbols],
        "parameters": {
            "trigger_window": TRIGGER_WINDOW,
            "trigger_share": planted.trigger_share,
            "drift_sigmas": planted.drift_sigmas,
            "drift_bars": planted.drift_bars,
            "breakout_probability": 0.5,
            "spike_volume_multiplier": SPIKE_MULTIPLIER,
            "drought_volume_multiplier": DROUGHT_MULTIPLIER,
        },
        "groups": groups,
    }
    if marks is not None:
        counts = mark_counts(marks)
        empty = {"breakout": 0, "reversion": 0, "high": 0, "low": 0, "total": 0}
        truth["events"] = {s: counts.get(s, dict(empty)) for s in planted_symbols}
    return truth

"""One variant's walk-forward backtest: refits per window, trades from the out-of-sample
probabilities, and trading metrics over the backtested bars, in all and per window."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from alphafactory.backtest.engine import (
    PROBABILITY_COLUMNS,
    WalkForwardResult,
    WindowRecord,
    walk_forward,
)
from alphafactory.backtest.metrics import TradingMetrics, periods_per_year, trading_metrics
from alphafactory.backtest.trades import TradeLog, TradeRule, simulate_trades
from alphafactory.backtest.windows import WindowSpec
from alphafactory.models import FitBudget, Sample
from alphafactory.targets.variants import Variant

Calendar = Literal["crypto", "equity"]


@dataclass
class VariantBacktest:
    """A variant's backtest: the windows, the trades, and metrics over the tested bars."""

    variant: Variant
    walk: WalkForwardResult
    trades: TradeLog
    tested: np.ndarray  # bar mask: inside some window's predicted range
    metrics: TradingMetrics
    window_metrics: list[dict[str, Any]]

    @property
    def bar_returns(self) -> np.ndarray:
        return self.trades.bar_returns[self.tested]

    @property
    def timestamps(self) -> np.ndarray:
        return _stamps(self.trades)[self.tested]

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant.to_dict(),
            "walk_forward": self.walk.to_dict(),
            "metrics": self.metrics.to_dict(),
            "windows": self.window_metrics,
            "skipped_busy": self.trades.skipped_busy,
            "skipped_flat": self.trades.skipped_flat,
            "skipped_unusable": self.trades.skipped_unusable,
        }


def backtest_variant(
    bars: pl.DataFrame,
    sample: Sample,
    variant: Variant,
    family_name: str,
    params: Mapping[str, Any],
    spec: WindowSpec,
    rule: TradeRule,
    budget: FitBudget,
    *,
    calendar: Calendar = "crypto",
    start: np.datetime64 | None = None,
    end: np.datetime64 | None = None,
    progress: Callable[[WindowRecord], None] | None = None,
) -> VariantBacktest:
    """Walk forward over `bars` (one symbol's `timestamp, open, high, low, close`) with the
    variant's event rows `sample`, trade every out-of-sample probability by `rule`, and
    measure. Metrics count only the bars some window predicted (flat bars there count too).
    """
    timeline = bars["timestamp"].cast(pl.Datetime("us")).to_numpy()
    walk = walk_forward(
        sample, timeline, spec, family_name, params, budget, start=start, end=end,
        progress=progress,
    )  # fmt: skip
    events = walk.predictions.select("timestamp", *PROBABILITY_COLUMNS)
    log = simulate_trades(bars, events, variant, rule)
    windows = [record.window for record in walk.records]
    ranges = [
        (w.test_start, windows[i + 1].test_start if i + 1 < len(windows) else w.test_end)
        for i, w in enumerate(windows)
    ]
    stamps = _stamps(log)
    tested = (stamps >= ranges[0][0]) & (stamps < ranges[-1][1])
    yearly = periods_per_year(timeline, calendar)
    metrics = _measure(log, tested, yearly, (ranges[0][0], ranges[-1][1]))
    per_window = []
    for record, (low, high) in zip(walk.records, ranges, strict=True):
        inside = (stamps >= low) & (stamps < high)
        measured = _measure(log, inside, yearly, (low, high)) if inside.sum() > 1 else None
        per_window.append(
            {
                "index": record.window.index,
                "status": record.status,
                "bars": int(inside.sum()),
                **(measured.to_dict() if measured is not None else {}),
            }
        )
    return VariantBacktest(variant, walk, log, tested, metrics, per_window)


def _stamps(log: TradeLog) -> np.ndarray:
    return log.timestamps.cast(pl.Datetime("us")).to_numpy()


def _measure(
    log: TradeLog, bars: np.ndarray, yearly: float, span: tuple[np.datetime64, np.datetime64]
) -> TradingMetrics:
    """Metrics of the bars in `bars` and the trades whose event lies in `span`."""
    events = log.trades["event_time"].cast(pl.Datetime("us")).to_numpy()
    chosen = (events >= span[0]) & (events < span[1])
    trade_returns = log.trades["net_return"].to_numpy()[chosen]
    return trading_metrics(log.bar_returns[bars], log.positions[bars], trade_returns, yearly)

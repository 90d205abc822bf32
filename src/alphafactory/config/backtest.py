"""Pydantic model of the `backtest:` section: walk-forward windows, the trade rule, costs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from alphafactory.config._strict import Strict


class BacktestConfig(Strict):
    """The walk-forward backtest of each group's champion over the untouched test period.

    Attributes:
        enabled: run the backtest stage (the report and the promotion gates need it).
        train_bars: bars of history each window refits on (`expanding`: all history).
        test_bars: bars each window predicts; windows advance by `step_bars` (default
            `test_bars`); overlapping windows hand each bar to the freshest refit.
        train_days, test_days, step_days: the same lengths in calendar days instead (the
            users' `WalkForwardEngine(train_days=252, test_days=63, step_days=21)`); when
            `train_days` and `test_days` are set they replace the bar lengths.
        valid_fraction: latest share of a window's training rows for early stopping.
        min_train_rows: a window with fewer fit rows is skipped and recorded.
        min_confidence: trade only when the predicted class's probability reaches it.
        fee_bps, slippage_bps: costs per side, in basis points of the traded notional.
        calendar: annualisation: `crypto` trades 365 days a year, `equity` 252 sessions.
        pbo_splits: blocks of the combinatorially symmetric cross-validation (even).
        significance: a deflated Sharpe probability at or above it passes the gate.
    """

    enabled: bool = True
    train_bars: int = Field(default=4000, ge=10)
    test_bars: int = Field(default=500, ge=1)
    step_bars: int | None = Field(default=None, ge=1)
    train_days: float | None = Field(default=None, gt=0)
    test_days: float | None = Field(default=None, gt=0)
    step_days: float | None = Field(default=None, gt=0)
    expanding: bool = False
    valid_fraction: float = Field(default=0.2, gt=0, lt=1)
    min_train_rows: int = Field(default=100, ge=10)
    min_confidence: float = Field(default=0.0, ge=0, lt=1)
    fee_bps: float = Field(default=5.0, ge=0)
    slippage_bps: float = Field(default=2.0, ge=0)
    calendar: Literal["crypto", "equity"] = "crypto"
    pbo_splits: int = Field(default=16, ge=2, multiple_of=2)
    significance: float = Field(default=0.95, gt=0, lt=1)

    @model_validator(mode="after")
    def _calendar_lengths(self) -> BacktestConfig:
        days = {"train_days": self.train_days, "test_days": self.test_days}
        if (self.train_days is None) != (self.test_days is None):
            missing = next(name for name, value in days.items() if value is None)
            raise ValueError(f"set {missing} too: calendar windows need train_days and test_days")
        if self.step_days is not None and self.train_days is None:
            raise ValueError("step_days needs train_days and test_days")
        return self

    @property
    def in_days(self) -> bool:
        return self.train_days is not None

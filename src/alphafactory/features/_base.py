"""The feature-generator protocol, the scale presets, and small expression helpers.

Every helper builds a causal polars expression: backward rolling windows, ``ewm_mean`` and
``shift`` by a positive number of bars only, so a value at bar t never reads a bar after t.

Every division and log of a generator goes through :func:`safe_div` / :func:`safe_log`, so no
feature is ever ±inf: an undefined value (zero or non-finite denominator, log of a
non-positive number, an overflow) is NaN, which the models read as missing.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol, runtime_checkable

import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator

from alphafactory.errors import ConfigError

OPEN = pl.col("open")
HIGH = pl.col("high")
LOW = pl.col("low")
CLOSE = pl.col("close")
VOLUME = pl.col("volume")
LN2 = math.log(2.0)
NAN = float("nan")
_INFINITIES = (math.inf, -math.inf)


class FeatureScale(BaseModel):
    """Parameter lists that decide how many features each family emits.

    Attributes:
        windows: lookback lengths (bars) for rolling features of every family.
        swing_windows: windows of the swing flags/excursions (the target windows).
        macd_spans: (fast, slow, signal) EMA spans of the MACD variants.
        lags: extra copies of every per-symbol feature shifted back by these many bars.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    windows: tuple[int, ...]
    swing_windows: tuple[int, ...]
    macd_spans: tuple[tuple[int, int, int], ...] = ((12, 26, 9),)
    lags: tuple[int, ...] = ()

    @field_validator("windows")
    @classmethod
    def _windows_at_least_two(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if not values or any(v < 2 for v in values) or len(set(values)) != len(values):
            raise ValueError("must be distinct integers >= 2")
        return tuple(sorted(values))

    @field_validator("swing_windows", "lags")
    @classmethod
    def _positive(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if any(v < 1 for v in values) or len(set(values)) != len(values):
            raise ValueError("must be distinct integers >= 1")
        return tuple(sorted(values))


_PRESETS: dict[str, FeatureScale] = {
    "small": FeatureScale(
        windows=(5, 10, 20, 50, 100),
        swing_windows=(2, 3, 5, 10, 20, 50),
    ),
    "full": FeatureScale(
        windows=(3, 5, 8, 10, 14, 20, 30, 50, 75, 100, 150, 200),
        swing_windows=(2, 3, 5, 7, 10, 14, 20, 30, 50, 75, 100),
        macd_spans=((6, 13, 5), (12, 26, 9), (24, 52, 18)),
        lags=(1, 2, 3, 5),
    ),
}


def scale_preset(name: Literal["small", "full"]) -> FeatureScale:
    """Return a named feature scale.

    Args:
        name: ``"small"`` (a few hundred features per symbol) or ``"full"`` (thousands).

    Raises:
        ConfigError: the name is not a preset.
    """
    try:
        return _PRESETS[name]
    except KeyError:
        allowed = ", ".join(sorted(_PRESETS))
        raise ConfigError(
            f"features.scale: unknown scale {name!r}; use one of: {allowed}"
        ) from None


@runtime_checkable
class FeatureGenerator(Protocol):
    """A family of features computed from one symbol's bars sorted by time."""

    name: str

    def expressions(self, scale: FeatureScale) -> list[pl.Expr]:
        """Causal expressions over one symbol's bars, each aliased to a short feature name."""
        ...


def as_float(condition: pl.Expr) -> pl.Expr:
    """A boolean condition as 1.0/0.0, null where the condition is null (warm-up)."""
    return condition.cast(pl.Float64)


def finite_or_nan(expr: pl.Expr) -> pl.Expr:
    """``expr`` with ±inf replaced by NaN; nulls (warm-up) stay null."""
    # One reference to ``expr``: polars does not share rolling sub-expressions (no CSE), so
    # a when/then over ``expr`` would compute its windows again.
    return expr.replace(_INFINITIES, NAN)


def safe_div(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """``numerator / denominator``, NaN where the denominator is 0 or ±inf or the quotient
    overflows; null where either side is null."""
    # x/0 is ±inf and 0/0 NaN already; x/inf would be a finite 0 that means nothing.
    return finite_or_nan(numerator / finite_or_nan(denominator))


def safe_log(expr: pl.Expr) -> pl.Expr:
    """Natural log, NaN where ``expr`` is <= 0 or ±inf; null stays null."""
    return finite_or_nan(expr.log())


def log_return() -> pl.Expr:
    """Close-to-close log return; null on the first bar, NaN where a close is not positive."""
    return safe_log(safe_div(CLOSE, CLOSE.shift(1)))


def true_range() -> pl.Expr:
    """Wilder's true range; the first bar uses its own high-low range."""
    prev_close = CLOSE.shift(1)
    return pl.max_horizontal(HIGH - LOW, (HIGH - prev_close).abs(), (LOW - prev_close).abs())


def wilder(expr: pl.Expr, window: int) -> pl.Expr:
    """Wilder smoothing (EMA with alpha 1/window), null for the first ``window`` values."""
    return expr.ewm_mean(alpha=1.0 / window, adjust=False, min_samples=window)


def ema(expr: pl.Expr, span: int) -> pl.Expr:
    """Exponential moving average with the given span, null during its warm-up."""
    return expr.ewm_mean(span=span, adjust=False, min_samples=span)


def bars_since(flag: pl.Expr) -> pl.Expr:
    """Bars since ``flag`` was last true (0 on the bar itself); null before the first event."""
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    last_index = pl.when(flag.fill_null(False)).then(index).otherwise(None).forward_fill()
    return (index - last_index).cast(pl.Float64)


def run_length(flag: pl.Expr) -> pl.Expr:
    """How many consecutive bars up to and including this one have ``flag`` true."""
    is_true = flag.fill_null(False).cast(pl.Int64)
    running = is_true.cum_sum()
    at_last_false = pl.when(is_true == 0).then(running).otherwise(None).forward_fill()
    return (running - at_last_false.fill_null(0)).cast(pl.Float64)

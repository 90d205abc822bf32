"""Temporal features: calendar position of each bar's timestamp (cyclical encodings, flags).

They depend on the timestamp only, so the matrix builder emits them once for all symbols.
"""

from __future__ import annotations

import math

import polars as pl

from alphafactory.features._base import FeatureScale

TIMESTAMP = pl.col("timestamp")


def _cyclical(value: pl.Expr, period: float, name: str) -> list[pl.Expr]:
    angle = value.cast(pl.Float64) * (2.0 * math.pi / period)
    return [angle.sin().alias(f"{name}_sin"), angle.cos().alias(f"{name}_cos")]


def _minute_of_day() -> pl.Expr:
    return TIMESTAMP.dt.hour().cast(pl.Int32) * 60 + TIMESTAMP.dt.minute().cast(pl.Int32)


class TemporalFeatures:
    """Hour/day-of-week/month/day-of-year sin/cos, weekend and session flags."""

    name = "temporal"

    def expressions(self, scale: FeatureScale) -> list[pl.Expr]:
        weekday = TIMESTAMP.dt.weekday()  # Monday = 1 ... Sunday = 7
        hour = TIMESTAMP.dt.hour()
        return [
            *_cyclical(_minute_of_day(), 24 * 60, "time_of_day"),
            *_cyclical(hour, 24, "hour"),
            *_cyclical(weekday - 1, 7, "day_of_week"),
            *_cyclical(TIMESTAMP.dt.day() - 1, 31, "day_of_month"),
            *_cyclical(TIMESTAMP.dt.month() - 1, 12, "month"),
            *_cyclical(TIMESTAMP.dt.ordinal_day() - 1, 366, "day_of_year"),
            (weekday >= 6).cast(pl.Float64).alias("is_weekend"),
            (TIMESTAMP.dt.day() == 1).cast(pl.Float64).alias("is_month_start"),
            ((hour >= 0) & (hour < 8)).cast(pl.Float64).alias("session_asia"),
            ((hour >= 7) & (hour < 16)).cast(pl.Float64).alias("session_europe"),
            ((hour >= 13) & (hour < 22)).cast(pl.Float64).alias("session_us"),
        ]

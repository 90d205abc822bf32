"""Tests of the prepare stage's five feature hygiene filters on crafted frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from alphafactory.config import PrepareConfig
from alphafactory.stages.hygiene import (
    FILTERS,
    apply_hygiene,
    correlated_columns,
    missing_share,
    nan_share,
    same_value_share,
    variances,
)

N_ROWS = 1000


def with_nulls(values: np.ndarray, null_mask: np.ndarray) -> pl.Series:
    return pl.Series(
        [None if gone else float(v) for v, gone in zip(values, null_mask, strict=True)]
    )


@pytest.fixture(scope="module")
def crafted() -> pl.DataFrame:
    rng = np.random.default_rng(11)
    base = rng.normal(size=N_ROWS)
    noise = rng.normal(size=(4, N_ROWS))
    positions = rng.permutation(N_ROWS)

    missing_mask = np.zeros(N_ROWS, dtype=bool)
    missing_mask[positions[:800]] = True  # 80% null

    nan_values = rng.normal(size=N_ROWS)
    nan_values[positions[:950]] = np.nan  # 95% NaN, no nulls

    mixed_mask = np.zeros(N_ROWS, dtype=bool)
    mixed_mask[positions[:600]] = True  # 60% null (under 70%) ...
    mixed_values = rng.normal(size=N_ROWS)
    mixed_values[positions[600:950]] = np.nan  # ... plus 35% NaN -> 95% not a number

    same = np.full(N_ROWS, 1.0)
    same[positions[:30]] = rng.normal(size=30)  # 97% one value

    start = datetime(2024, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "timestamp": [start + timedelta(hours=i) for i in range(N_ROWS)],
            "base": base,
            "near_copy": base + 0.1425 * noise[0],  # corr ~0.99 with base
            "half_corr": 0.5 * base + np.sqrt(0.75) * noise[1],  # corr ~0.5 with base
            "missing80": with_nulls(noise[2], missing_mask),
            "nan95": nan_values,
            "null_and_nan": with_nulls(mixed_values, mixed_mask),
            "same97": same,
            "constant": np.full(N_ROWS, 5.0),
            "tiny": 1e-7 * noise[3],  # varied values, variance ~1e-14
        }
    )


def test_crafted_correlations_are_as_designed(crafted: pl.DataFrame) -> None:
    base = crafted["base"].to_numpy()
    assert np.corrcoef(base, crafted["near_copy"].to_numpy())[0, 1] == pytest.approx(
        0.99, abs=0.003
    )
    assert np.corrcoef(base, crafted["half_corr"].to_numpy())[0, 1] == pytest.approx(0.5, abs=0.05)


def test_measures(crafted: pl.DataFrame) -> None:
    features = crafted.drop("timestamp")
    missing = missing_share(features)
    assert missing["missing80"] == pytest.approx(0.80)
    assert missing["nan95"] == 0.0  # NaN is not null
    assert missing["null_and_nan"] == pytest.approx(0.60)
    nan = nan_share(features)
    assert nan["nan95"] == pytest.approx(0.95)
    assert nan["null_and_nan"] == pytest.approx(0.95)
    assert nan["base"] == 0.0
    same = same_value_share(features)
    assert same["same97"] == pytest.approx(0.97)
    assert same["constant"] == 1.0
    assert same["base"] == pytest.approx(1 / N_ROWS)
    var = variances(features)
    assert var["constant"] == 0.0
    assert 0 < var["tiny"] < 1e-12
    assert var["base"] == pytest.approx(float(np.var(crafted["base"].to_numpy(), ddof=1)))


def test_each_filter_drops_its_column(crafted: pl.DataFrame) -> None:
    report = apply_hygiene(crafted, PrepareConfig())
    assert report.dropped == {
        "missing": ["missing80"],
        "nan": ["nan95", "null_and_nan"],
        # A constant column is 100% one value: the same-value filter, applied before the
        # variance filter, reports it.
        "same_value": ["same97", "constant"],
        "low_variance": ["tiny"],
        "correlated": ["near_copy"],
    }
    assert report.kept == ["base", "half_corr"]
    assert report.counts() == {
        "missing": 1,
        "nan": 2,
        "same_value": 2,
        "low_variance": 1,
        "correlated": 1,
    }
    assert tuple(report.counts()) == FILTERS
    assert "timestamp" not in report.kept


def test_constant_column_alone_is_caught_by_low_variance_if_same_value_is_off(
    crafted: pl.DataFrame,
) -> None:
    # max_same = 1.0 can never be exceeded, so the constant falls through to low_variance.
    report = apply_hygiene(crafted, PrepareConfig(max_same=1.0))
    assert report.dropped["same_value"] == []
    assert report.dropped["low_variance"] == ["constant", "tiny"]


def test_thresholds_are_respected(crafted: pl.DataFrame) -> None:
    loose = PrepareConfig(
        max_missing=0.85, max_nan=0.96, max_same=0.98, min_variance=0.0, max_corr=0.999
    )
    report = apply_hygiene(crafted, loose)
    assert report.dropped["missing"] == []
    assert report.dropped["nan"] == []
    assert report.dropped["same_value"] == ["constant"]
    assert report.dropped["low_variance"] == []
    assert report.dropped["correlated"] == []
    assert report.kept == [
        "base",
        "near_copy",
        "half_corr",
        "missing80",
        "nan95",
        "null_and_nan",
        "same97",
        "tiny",
    ]


def test_max_corr_alone_keeps_the_099_pair(crafted: pl.DataFrame) -> None:
    report = apply_hygiene(crafted, PrepareConfig(max_corr=0.999))
    assert report.dropped["correlated"] == []
    assert report.kept == ["base", "near_copy", "half_corr"]
    strict = apply_hygiene(crafted, PrepareConfig(max_corr=0.4))
    assert strict.dropped["correlated"] == ["near_copy", "half_corr"]
    assert strict.kept == ["base"]


def test_correlated_keeps_the_earlier_column_and_uses_absolute_value() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=500)
    frame = pl.DataFrame(
        {
            "first": a,
            "independent": rng.normal(size=500),
            "negated": -a + 0.01 * rng.normal(size=500),
            "copy": a.copy(),
        }
    )
    assert correlated_columns(frame, 0.9, 20_000) == ["negated", "copy"]
    reordered = frame.select("copy", "independent", "first", "negated")
    assert correlated_columns(reordered, 0.9, 20_000) == ["first", "negated"]


def test_correlated_blocks_give_the_same_answer() -> None:
    rng = np.random.default_rng(8)
    base = rng.normal(size=(400, 3))
    columns = {
        "x0": base[:, 0],
        "x1": base[:, 1],
        "x2": base[:, 2],
        "x0_again": base[:, 0] + 0.01 * rng.normal(size=400),
        "x1_again": base[:, 1] * 3.0,
        "x3": rng.normal(size=400),
    }
    frame = pl.DataFrame(columns)
    expected = ["x0_again", "x1_again"]
    assert correlated_columns(frame, 0.9, 20_000) == expected
    for block in (1, 2, 4):
        assert correlated_columns(frame, 0.9, 20_000, block=block) == expected


def test_correlated_single_column_and_missing_values() -> None:
    assert correlated_columns(pl.DataFrame({"a": [1.0, 2.0, 3.0]}), 0.5, 100) == []
    values = np.arange(200, dtype=np.float64)
    with_gaps = values.copy()
    with_gaps[::20] = np.nan
    frame = pl.DataFrame({"a": values, "b": with_gaps})
    # Reference: Pearson on every 2nd row (200 rows // 100 sample rows), gaps mean-filled.
    sample = with_gaps[::2]
    filled = np.where(np.isnan(sample), np.nanmean(sample), sample)
    reference = np.corrcoef(values[::2], filled)[0, 1]
    assert 0.9 < reference < 0.99
    assert correlated_columns(frame, 0.9, 100) == ["b"]
    assert correlated_columns(frame, 0.99, 100) == []

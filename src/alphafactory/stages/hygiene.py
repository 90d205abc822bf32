"""Feature hygiene filters of the prepare stage; each returns the columns it drops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from alphafactory.config.schema import PrepareConfig

#: Filter names in the order they are applied; a column is reported under the first that drops it.
FILTERS = ("missing", "nan", "same_value", "low_variance", "correlated")


@dataclass
class HygieneReport:
    """Which columns each filter dropped, and which survived."""

    kept: list[str]
    dropped: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {name: len(self.dropped.get(name, [])) for name in FILTERS}


def missing_share(frame: pl.DataFrame) -> dict[str, float]:
    """Share of null values per column."""
    nulls = frame.null_count().row(0, named=True)
    return {name: count / max(frame.height, 1) for name, count in nulls.items()}


def nan_share(frame: pl.DataFrame) -> dict[str, float]:
    """Share of NaN-or-null values per column (a NaN is a value that could not be computed)."""
    shares = frame.select(
        ((pl.col(c).is_nan() | pl.col(c).is_null()).mean()).alias(c) for c in frame.columns
    )
    return {k: float(v or 0.0) for k, v in shares.row(0, named=True).items()}


def same_value_share(frame: pl.DataFrame) -> dict[str, float]:
    """Share of rows holding the most common non-missing value of each column."""
    result: dict[str, float] = {}
    for name in frame.columns:
        values = frame[name].fill_nan(None).drop_nulls()
        if values.len() == 0:
            result[name] = 1.0
            continue
        top = values.value_counts(sort=True)["count"][0]
        result[name] = float(top) / values.len()
    return result


def variances(frame: pl.DataFrame) -> dict[str, float]:
    """Variance of each column over its finite values (0 when fewer than two)."""
    row = frame.select(pl.col(c).fill_nan(None).var().alias(c) for c in frame.columns).row(
        0, named=True
    )
    return {k: float(v) if v is not None else 0.0 for k, v in row.items()}


def correlated_columns(
    frame: pl.DataFrame, max_corr: float, sample_rows: int, block: int = 512
) -> list[str]:
    """Greedy |corr| filter in column order: drop columns too correlated with a kept one.

    Correlation is Pearson over a chronological row sample, missing values filled with the
    column mean. Work goes in blocks so thousands of columns never need one F×F matrix.
    """
    if frame.width < 2:
        return []
    step = max(1, frame.height // sample_rows)
    values = frame.gather_every(step).to_numpy().astype(np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    means = np.nanmean(values, axis=0)
    values = np.where(np.isnan(values), means, values)
    std = values.std(axis=0)
    std[std == 0] = 1.0
    z = ((values - values.mean(axis=0)) / std / np.sqrt(len(values))).astype(np.float32)
    kept: list[int] = []
    dropped: list[str] = []
    for start in range(0, frame.width, block):
        indices = list(range(start, min(start + block, frame.width)))
        block_z = z[:, indices]
        against_kept = (
            np.abs(block_z.T @ z[:, kept]).max(axis=1)
            if kept
            else np.zeros(len(indices), dtype=np.float32)
        )
        within = np.abs(block_z.T @ block_z)
        kept_in_block: list[int] = []
        for position, column in enumerate(indices):
            too_close = against_kept[position] > max_corr or any(
                within[position, other] > max_corr for other in kept_in_block
            )
            if too_close:
                dropped.append(frame.columns[column])
            else:
                kept_in_block.append(position)
        kept.extend(indices[p] for p in kept_in_block)
    return dropped


def apply_hygiene(features: pl.DataFrame, settings: PrepareConfig) -> HygieneReport:
    """Run the five filters in order on the feature columns of `features`."""
    remaining = [c for c in features.columns if c != "timestamp"]
    report = HygieneReport(kept=[])
    threshold_filters = (
        ("missing", missing_share, lambda share: share > settings.max_missing),
        ("nan", nan_share, lambda share: share > settings.max_nan),
        ("same_value", same_value_share, lambda share: share > settings.max_same),
        ("low_variance", variances, lambda var: var <= settings.min_variance),
    )
    for name, measure, fails in threshold_filters:
        scores = measure(features.select(remaining)) if remaining else {}
        report.dropped[name] = [c for c in remaining if fails(scores[c])]
        remaining = _without(remaining, report.dropped[name])
    report.dropped["correlated"] = correlated_columns(
        features.select(remaining), settings.max_corr, settings.corr_sample_rows
    )
    report.kept = _without(remaining, report.dropped["correlated"])
    return report


def _without(columns: Sequence[str], dropped: Sequence[str]) -> list[str]:
    gone = set(dropped)
    return [c for c in columns if c not in gone]

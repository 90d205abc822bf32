"""What the fitting stages share: the prepared feature matrix as arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from alphafactory import io
from alphafactory.layout import RunLayout


@dataclass(frozen=True)
class Matrix:
    """The feature matrix as arrays: a sorted timeline and float32 values (rows × features)."""

    timeline: np.ndarray
    values: np.ndarray
    names: list[str]


def load_matrix(layout: RunLayout, columns: Sequence[str] | None = None) -> Matrix:
    """Load the prepared float32 matrix once (optionally only some columns)."""
    names = (
        list(columns)
        if columns is not None
        else [c for c in io.parquet_columns(layout.features) if c != "timestamp"]
    )
    frame = io.read_parquet(layout.features, ["timestamp", *names])
    timeline = frame["timestamp"].cast(pl.Datetime("us")).to_numpy()
    values = frame.select(names).to_numpy().astype(np.float32, copy=False)
    return Matrix(timeline=timeline, values=values, names=names)

"""Causal windows for the sequence families (CNN1D, LSTM, Transformer), in plain numpy.

For a row at matrix position t, its window is the `length` matrix rows t-length+1 … t,
oldest first, in the row's feature columns: the row itself is the last step and no row
after t is ever read. The matrix is the whole feature matrix (every bar, not only the
variant's events), which a `History` carries by reference with each row's position in it;
positions before the matrix's first row are NaN, i.e. missing.

`row_inputs` turns a sample's rows into the network's inputs: standardised with the
training rows' statistics (`ftrl.Scaler`, fitted on the training rows only), missing values
as 0 (the training mean), and, for a lookback above 1, each row's window (rows × length ×
columns) after checking that its last step is the row itself.
"""

from __future__ import annotations

import numpy as np

from alphafactory.errors import DataError
from alphafactory.models._base import History
from alphafactory.models.ftrl.ftrl import Scaler


def causal_windows(history: History, length: int) -> np.ndarray:
    """float32 windows (rows × `length` × columns): window i holds the matrix rows
    `history.rows[i] - length + 1` … `history.rows[i]` (oldest first) in `history.columns`;
    steps before the matrix's first row are NaN."""
    if length < 1:
        raise DataError(f"a window needs at least one row, got length {length}")
    values = np.asarray(history.values)
    rows = np.asarray(history.rows, dtype=np.int64)
    columns = np.asarray(history.columns, dtype=np.int64)
    if values.ndim != 2 or rows.ndim != 1 or columns.ndim != 1:
        raise DataError(
            f"history: values {values.shape}, rows {rows.shape} and columns {columns.shape} "
            "must be a matrix and two index vectors"
        )
    if len(rows) and (rows.min() < 0 or rows.max() >= len(values)):
        raise DataError(
            f"history: row positions {int(rows.min())}..{int(rows.max())} lie outside the "
            f"matrix's {len(values)} rows"
        )
    if len(columns) and (columns.min() < 0 or columns.max() >= values.shape[1]):
        raise DataError(f"history: column positions lie outside the matrix's {values.shape[1]}")
    steps = rows[:, None] + np.arange(1 - length, 1)[None, :]
    windows = values[np.maximum(steps, 0)[:, :, None], columns[None, None, :]]
    windows = windows.astype(np.float32, copy=False)
    windows[steps < 0] = np.nan
    return windows


def sample_windows(
    features: np.ndarray, history: History | None, length: int, what: str
) -> np.ndarray:
    """The causal windows of `features`' rows from their `history`; refused when the history
    is missing or its rows are not these rows (the window's last step must be the row)."""
    if history is None:
        raise DataError(
            f"{what}: a model reading {length} rows per prediction needs the feature matrix "
            "the rows come from (models.History); pass the sample's history"
        )
    if len(history.rows) != len(features):
        raise DataError(
            f"{what}: history names {len(history.rows)} rows for {len(features)} feature rows"
        )
    windows = causal_windows(history, length)
    if not np.array_equal(windows[:, -1, :], features, equal_nan=True):
        raise DataError(
            f"{what}: the history's rows differ from the feature rows; build the history "
            "from the matrix and positions the rows were taken from"
        )
    return windows


def standardise(scaler: Scaler, values: np.ndarray) -> np.ndarray:
    """`values` (… × columns) standardised by `scaler`, missing values 0, as float32."""
    flat = values.reshape(-1, values.shape[-1])
    scaled = scaler.design(flat)[:, :-1]  # the trailing bias column is FTRL's, not ours
    return scaled.astype(np.float32).reshape(values.shape)


def row_inputs(
    scaler: Scaler,
    features: np.ndarray,
    history: History | None,
    lookback: int,
    what: str,
) -> np.ndarray:
    """Network inputs of rows: standardised rows (rows × columns) for a lookback of 1, else
    standardised causal windows (rows × lookback × columns)."""
    if lookback == 1:
        return standardise(scaler, np.asarray(features, dtype=np.float32))
    return standardise(scaler, sample_windows(features, history, lookback, what))

"""The causal sequence builder of the neural families and their scaler: a window for the row
at t holds the matrix rows up to t and never one after it; scaling statistics come from the
training rows only and travel in the bundle."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from alphafactory.errors import DataError
from alphafactory.models import FitBudget, History, Sample, family, preset_params, save_model
from alphafactory.models.neural import causal_windows, sample_windows
from tests.contract.conftest import NAMES, make_sample

NAN = np.nan
TINY = FitBudget(rounds=3, early_stopping=2, threads=1, seed=3)


def test_window_holds_the_rows_up_to_t_oldest_first_in_the_rows_columns() -> None:
    values = np.arange(30, dtype=np.float32).reshape(10, 3)  # row r, column c holds 3r + c
    history = History(values, np.array([0, 4, 9]), np.array([2, 0]))
    expected = np.array(
        [
            [[NAN, NAN], [NAN, NAN], [2, 0]],  # before the matrix's first row: missing
            [[8, 6], [11, 9], [14, 12]],  # rows 2, 3, 4
            [[23, 21], [26, 24], [29, 27]],  # rows 7, 8, 9
        ],
        dtype=np.float32,
    )
    windows = causal_windows(history, 3)
    assert windows.dtype == np.float32
    np.testing.assert_array_equal(windows, expected)
    np.testing.assert_array_equal(causal_windows(history, 1)[:, 0], values[[0, 4, 9]][:, [2, 0]])


def test_changing_any_row_after_t_leaves_the_window_of_t_unchanged() -> None:
    """The leak probe: for every event t, rows t+1.. replaced by other values give the very
    same window; the row just before t, replaced, does change it (the probe can see)."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(120, 4)).astype(np.float32)
    rows = np.sort(rng.choice(np.arange(1, 120), size=25, replace=False))
    columns = np.array([3, 1, 2])
    original = causal_windows(History(values, rows, columns), 8)
    checked = 0
    for i, t in enumerate(rows):
        later = values.copy()
        later[t + 1 :] = rng.normal(size=later[t + 1 :].shape) + 100.0
        probed = causal_windows(History(later, rows, columns), 8)
        np.testing.assert_array_equal(probed[: i + 1], original[: i + 1])
        earlier = values.copy()
        earlier[t - 1] += 1.0
        assert not np.array_equal(
            causal_windows(History(earlier, rows, columns), 8)[i], original[i]
        )
        checked += 1
    assert checked == len(rows) == 25


def test_rows_without_their_history_or_with_another_are_refused() -> None:
    sample = make_sample(50, seed=1)
    assert sample.history is not None
    with pytest.raises(DataError, match=r"rows: a model reading 4 rows per prediction needs"):
        sample_windows(sample.features, None, 4, "rows")
    shifted = History(sample.history.values, sample.history.rows[::-1], sample.history.columns)
    with pytest.raises(DataError, match=r"the history's rows differ from the feature rows"):
        sample_windows(sample.features, shifted, 4, "rows")
    with pytest.raises(DataError, match=r"history names 49 rows for 50 feature rows"):
        sample_windows(sample.features, sample.history.take(np.arange(49)), 4, "rows")
    outside = History(sample.history.values, sample.history.rows + 1, sample.history.columns)
    with pytest.raises(DataError, match=r"row positions 1\.\.50 lie outside the matrix's 50"):
        causal_windows(outside, 4)


def _timeline(rows: int, seed: int) -> tuple[Sample, Sample]:
    """Training rows 0..rows-1 of one matrix and validation rows after them, both holding
    the whole matrix (training, then validation rows) as history."""
    train, valid = make_sample(rows, seed=seed), make_sample(rows // 2, seed=seed + 1)
    values = np.concatenate([train.features, valid.features])
    columns = np.arange(len(NAMES))
    train = dataclasses.replace(train, history=History(values, np.arange(rows), columns))
    positions = np.arange(rows, len(values))
    return train, dataclasses.replace(valid, history=History(values, positions, columns))


@pytest.mark.parametrize("name", ["mlp", "lstm"])
def test_scaler_is_fitted_on_the_training_rows_only_and_saved(name: str, tmp_path: Path) -> None:
    train, valid = _timeline(300, seed=4)
    params = preset_params(name, "conservative")
    model = family(name).fit(train, valid, params, TINY)
    # oracle: numpy's NaN-aware mean and population standard deviation of the training rows
    np.testing.assert_allclose(model.scaler.mean, np.nanmean(train.features, axis=0), rtol=1e-6)
    np.testing.assert_allclose(model.scaler.scale, np.nanstd(train.features, axis=0), rtol=1e-5)
    # validation rows (and the matrix after the training period) scaled by 100: same statistics
    values = valid.history.values.copy() if valid.history else None
    assert values is not None
    values[len(train) :] *= 100.0
    louder = dataclasses.replace(
        valid,
        features=values[len(train) :],
        history=History(values, valid.history.rows, valid.history.columns),
    )
    other = family(name).fit(train, louder, params, TINY)
    np.testing.assert_array_equal(other.scaler.mean, model.scaler.mean)
    np.testing.assert_array_equal(other.scaler.scale, model.scaler.scale)
    with zipfile.ZipFile(save_model(model, family(name), tmp_path / "m.zip")) as bundle:
        stored = json.loads(bundle.read("network.json"))
    assert stored["scaler"] == {"mean": model.scaler.mean.tolist(),
                                "scale": model.scaler.scale.tolist()}  # fmt: skip
    assert stored["lookback"] == params.get("lookback", 1)

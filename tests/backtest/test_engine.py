"""The walk-forward engine on a planted signal: coverage, freshness, and no look-ahead."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from alphafactory.backtest.engine import FITTED, TOO_FEW_ROWS, walk_forward
from alphafactory.backtest.windows import WindowSpec, make_windows, window_rows
from alphafactory.metrics import average_precision
from alphafactory.models import FitBudget, Sample

HOUR = np.timedelta64(1, "h")
T0 = np.datetime64("2024-01-01T00:00", "us")
HORIZON = 4
BUDGET = FitBudget(rounds=40, early_stopping=10, threads=1, seed=3)
PARAMS = {"num_leaves": 7, "learning_rate": 0.2}


def planted_sample(
    n: int = 3000, seed: int = 0, horizon: int = HORIZON
) -> tuple[Sample, np.ndarray]:
    """One event per bar; class 1 when feature 0 is high, 2 when low, else mostly 0."""
    rng = np.random.default_rng(seed)
    bars = T0 + np.arange(n) * HOUR
    features = rng.normal(size=(n, 5)).astype(np.float32)
    labels = np.where(features[:, 0] > 0.6, 1, np.where(features[:, 0] < -0.6, 2, 0))
    flip = rng.random(n) < 0.2
    labels[flip] = rng.integers(0, 3, flip.sum())
    sample = Sample(
        features, labels.astype(np.int32), tuple(f"f{i}" for i in range(5)),
        timestamps=bars, label_ends=bars + horizon * HOUR,
    )  # fmt: skip
    return sample, bars


def test_every_test_row_is_predicted_once_by_the_freshest_window() -> None:
    sample, bars = planted_sample()
    spec = WindowSpec(train=1000, test=600, step=400, min_train_rows=100)
    result = walk_forward(sample, bars, spec, "lightgbm", PARAMS, BUDGET)
    windows = make_windows(bars, spec)
    assert len(result.records) == len(windows) == 5 and result.refits == 5
    predicted = result.predictions
    assert predicted["timestamp"].is_unique().all()
    assert predicted.height == len(bars) - 1000  # every row after the first training window
    for position, window in enumerate(windows):
        mine = predicted.filter(pl.col("window") == window.index)["timestamp"].to_numpy()
        following = windows[position + 1].test_start if position + 1 < len(windows) else None
        assert mine.min() == window.test_start
        if following is not None:  # overlap: the next, fresher window takes over
            assert mine.max() < following
        assert result.records[position].n_test == len(mine)
    sums = predicted.select(pl.sum_horizontal("p_neither", "p_breakout", "p_reversion"))
    assert np.allclose(sums.to_series().to_numpy(), 1.0)
    # a real signal out of sample: AP well above the share of events that break out
    labels = predicted["label"].to_numpy()
    breakout = average_precision(
        labels, predicted.select("p_neither", "p_breakout", "p_reversion").to_numpy()
    )
    assert breakout > 0.6


def test_records_count_rows_and_skip_windows_with_too_few() -> None:
    sample, bars = planted_sample(n=800)
    spec = WindowSpec(train=300, test=200, expanding=True, min_train_rows=250)
    result = walk_forward(sample, bars, spec, "lightgbm", PARAMS, BUDGET)
    first = result.records[0]
    assert first.status == TOO_FEW_ROWS and first.best_iteration is None
    # 300 training bars, labels 4 bars long: 296 known before the test; 20 % held out
    assert (first.n_fit + first.n_valid, first.n_test) == (296 - HORIZON, 200)
    assert [r.status for r in result.records[1:]] == [FITTED, FITTED]
    assert result.predictions["window"].unique().sort().to_list() == [1, 2]
    rows = window_rows(result.records[2].window, sample.timestamps, sample.label_ends, spec, bars)
    assert (
        result.records[2].n_fit == rows.fit.sum() and result.records[2].n_valid == rows.valid.sum()
    )


@pytest.mark.parametrize("family_name", ["lightgbm", "ftrl"])
def test_changing_labels_from_a_test_start_on_leaves_that_window_unchanged(
    family_name: str,
) -> None:
    """No look-ahead: window k's predictions depend only on labels known before its test
    start. Labels of rows whose label ends at or after it (the purge zone and everything
    later) are scrambled; window k predicts exactly as before."""
    sample, bars = planted_sample(n=1600, seed=1)
    spec = WindowSpec(train=600, test=300, min_train_rows=100)
    before = walk_forward(sample, bars, spec, family_name, PARAMS_OF[family_name], BUDGET)
    checked = 0
    for record in before.records:
        start = record.window.test_start
        scrambled = sample.labels.copy()
        unknown = sample.label_ends >= start  # not yet known at the test start
        scrambled[unknown] = np.random.default_rng(5).integers(0, 3, unknown.sum())
        changed = Sample(
            sample.features, scrambled, sample.feature_names,
            timestamps=sample.timestamps, label_ends=sample.label_ends,
        )  # fmt: skip
        after = walk_forward(changed, bars, spec, family_name, PARAMS_OF[family_name], BUDGET)
        mine = pl.col("window") == record.window.index
        left = before.predictions.filter(mine).drop("label")
        right = after.predictions.filter(mine).drop("label")
        assert left.height > 0 and left.equals(right)
        checked += 1
    assert checked == 4


PARAMS_OF = {"lightgbm": PARAMS, "ftrl": {}}

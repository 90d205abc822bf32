"""The stage recipe end to end on tiny data: folds → per-fold GroupData → fit_variant → study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from alphafactory.data.folds import rolling_folds
from alphafactory.models.lightgbm.family import fixed_params
from alphafactory.models.lightgbm.shard import GroupData, build_group, fit_variant
from alphafactory.tuning import (
    Budget,
    TrialFit,
    broad_space,
    cv_objective,
    enqueue_params,
    focused_space,
    fold_pruner,
    open_study,
    run_trials,
    split_objective,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
DATASET = {"max_bin": 63, "feature_pre_filter": False, "verbosity": -1}


def tiny_variant(n: int = 1500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(n, 6)).astype(np.float32)
    labels = np.argmax(matrix[:, :3] + 0.8 * rng.normal(size=(n, 3)), axis=1).astype(np.int32)
    stamps = np.datetime64("2024-01-01T00:00", "us") + np.arange(n) * np.timedelta64(1, "h")
    return matrix, labels, stamps


def fold_group(
    matrix: np.ndarray, labels: np.ndarray, train: np.ndarray, valid: np.ndarray
) -> GroupData:
    train_rows, valid_rows = np.flatnonzero(train), np.flatnonzero(valid)
    per_variant = {"v": (train_rows, labels[train_rows], valid_rows, labels[valid_rows])}
    names = [f"f{i}" for i in range(matrix.shape[1])]
    return build_group("g", matrix, names, train_rows, valid_rows, per_variant, DATASET)


def fit_on(group: GroupData, early_stopping: int) -> TrialFit:
    def fit(params: dict[str, Any], callbacks: list[Any]) -> float:
        return fit_variant(group, "v", params, 40, early_stopping, min_rows=50).average_precision

    return fit


def test_stage3_rolling_cv_then_stage4_focus(tmp_path: Path) -> None:
    matrix, labels, stamps = tiny_variant()
    folds = rolling_folds(stamps, 5, label_ends=stamps + np.timedelta64(3, "h"))
    groups = [fold_group(matrix, labels, train, valid) for train, valid in folds]
    fixed = fixed_params(threads=1, seed=0, max_bin=63)
    budget = Budget(total_trials=40)

    stage3 = open_study("g-stage3", storage_path=tmp_path / "g.journal", pruner=fold_pruner())
    enqueue_params(
        stage3, [{"num_leaves": 31, "max_depth": 6, "learning_rate": 0.1}], broad_space()
    )
    objective = cv_objective(broad_space(), [fit_on(g, 40) for g in groups], 250, fixed)
    run3 = run_trials(stage3, objective, budget, 3, max_trials=4)
    assert run3.complete + run3.pruned == 4
    assert stage3.trials[0].params["num_leaves"] == 30  # the warm start, snapped onto the grid
    assert stage3.best_value > 0.45 and len(stage3.best_trial.user_attrs["fold_scores"]) == 5

    space4 = focused_space(broad_space(), stage3.best_params)
    stage4 = open_study("g-stage4", storage_path=tmp_path / "g.journal")
    enqueue_params(stage4, [stage3.best_params], space4)
    last = groups[-1]
    run4 = run_trials(stage4, split_objective(space4, fit_on(last, 50), 1200, fixed), budget, 4, 3)
    assert run4.complete == 3 and stage4.trials[0].state == TrialState.COMPLETE
    assert stage4.trials[0].params == stage3.best_params
    assert all(space4.contains(t.params) for t in stage4.trials)

"""Studies: budget-bound runs, LightGBM pruning, CV objectives, resume after a killed task."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from alphafactory.errors import ConfigError
from alphafactory.metrics import average_precision
from alphafactory.models.lightgbm.family import fixed_params
from alphafactory.tuning import (
    Budget,
    LightGBMPruningCallback,
    StudyFileMirror,
    TrialRun,
    broad_space,
    cv_objective,
    done_trials,
    enqueue_params,
    open_study,
    run_trials,
    split_objective,
    suggest_params,
)

WORKER = Path(__file__).with_name("_worker.py")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def point(**overrides: Any) -> dict[str, Any]:
    base = {"num_leaves": 30, "max_depth": 5, "feature_fraction": 0.7}
    return base | {"learning_rate": 0.1, "lambda_l1": 0.0} | overrides


def constant_objective(trial: optuna.Trial) -> float:
    params = suggest_params(trial, broad_space(), 1000)
    return float(params["num_leaves"]) / 100


def test_run_trials_stops_at_the_target_count() -> None:
    study = optuna.create_study(direction="maximize")
    run = run_trials(study, constant_objective, Budget(total_trials=1000), 2, max_trials=4)
    assert (run.complete, run.stopped_by, done_trials(study)) == (4, "target", 4)
    again = run_trials(study, constant_objective, Budget(total_trials=1000), 2, max_trials=4)
    assert again.started == 0 and again.stopped_by == "target"


def test_run_trials_stops_when_the_stage_budget_is_spent() -> None:
    budget = Budget(total_trials=20)
    budget.charge(1, 0.0, trials=3)  # stage 1 leaves 2 of its 5 trials to stage 2
    study = optuna.create_study(direction="maximize")
    run = run_trials(study, constant_objective, budget, 2, max_trials=100)
    assert (run.complete, run.stopped_by) == (3 + 2, "budget")
    assert budget.report()[1]["trials"] == 5


def test_run_trials_charges_wall_time_times_threads() -> None:
    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.05)
        return constant_objective(trial)

    budget = Budget(total_core_seconds=0.5 / 0.15, shares={1: 0.0, 2: 0.15})  # stage 2: 0.5 s
    run = run_trials(optuna.create_study(direction="maximize"), slow, budget, 2, 100, threads=4)
    assert run.stopped_by == "budget" and run.complete in (2, 3)
    assert budget.used(2) == pytest.approx(run.core_seconds) and budget.used(2) >= 0.5


def separable_data(seed: int) -> tuple[lgb.Dataset, lgb.Dataset, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(900, 5))
    labels = np.argmax(features[:, :3] + 0.3 * rng.normal(size=(900, 3)), axis=1)
    train = lgb.Dataset(features[:600], labels[:600], params={"verbosity": -1})
    valid = lgb.Dataset(features[600:], labels[600:], reference=train)
    return train, valid, features[600:], labels[600:]


def test_a_bad_trial_is_pruned_by_the_lightgbm_callback() -> None:
    train, valid, valid_x, valid_y = separable_data(0)

    def fit(params: dict[str, Any], callbacks: list[Any]) -> float:
        booster = lgb.train(
            params, train, 60, valid_sets=[valid],
            callbacks=[*callbacks, lgb.early_stopping(40, verbose=False)],
        )  # fmt: skip
        return average_precision(valid_y, np.asarray(booster.predict(valid_x)))

    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    enqueue_params(study, [point(), point(num_leaves=50), point(learning_rate=0.01)], broad_space())
    objective = split_objective(broad_space(), fit, 600, fixed_params(threads=1, seed=0))
    run_trials(study, objective, Budget(total_trials=100), 2, max_trials=3)
    states = [trial.state for trial in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    pruned = study.trials[2]
    assert max(pruned.intermediate_values) == 4  # first report (every 5 rounds) was enough
    assert all(value < 0 for value in pruned.intermediate_values.values())  # negated logloss


@pytest.mark.parametrize(("direction", "reported"), [("maximize", -0.9), ("minimize", 0.9)])
def test_pruning_callback_reports_in_the_study_direction(direction: str, reported: float) -> None:
    study = optuna.create_study(direction=direction)  # type: ignore[arg-type]
    trial = study.ask()
    callback = LightGBMPruningCallback(trial, report_every=1)
    env = lgb.callback.CallbackEnv(
        model=None, params={}, iteration=3, begin_iteration=0, end_iteration=10,
        evaluation_result_list=[("training", "multi_logloss", 0.1, False),
                                ("valid_0", "multi_logloss", 0.9, False)],
    )  # fmt: skip
    callback(env)
    study.tell(trial, 1.0)
    assert study.trials[0].intermediate_values == {3: reported}
    missing = dataclasses.replace(
        env, evaluation_result_list=[("valid_0", "multi_error", 0.5, False)]
    )
    with pytest.raises(ConfigError, match="pruning metric 'multi_logloss'"):
        LightGBMPruningCallback(study.ask(), report_every=1)(missing)


def test_cv_objective_averages_folds_and_prunes_between_them() -> None:
    def fold_fit(fold: int) -> Any:
        def fit(params: dict[str, Any], callbacks: list[Any]) -> float:
            return 0.8 + 0.01 * fold if params["num_leaves"] == 30 else 0.1

        return fit

    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    enqueue_params(study, [point(), point(num_leaves=80)], broad_space())
    objective = cv_objective(broad_space(), [fold_fit(k) for k in range(5)], 1000)
    run_trials(study, objective, Budget(total_trials=100), 3, max_trials=2)
    good, bad = study.trials
    assert good.state == TrialState.COMPLETE and good.value == pytest.approx(0.82)
    assert good.user_attrs["fold_scores"] == pytest.approx([0.8, 0.81, 0.82, 0.83, 0.84])
    assert bad.state == TrialState.PRUNED and bad.user_attrs["fold_scores"] == [0.1, 0.1]


@pytest.mark.parametrize(
    "filename", ["study.journal", pytest.param("study.db", marks=pytest.mark.slow)]
)  # SQLite: ~2 s schema setup per open
def test_a_killed_task_resumes_its_study(tmp_path: Path, filename: str) -> None:
    storage = tmp_path / "tune" / filename
    command = [sys.executable, str(WORKER), str(storage), "stage2-w5", "100", "--crash-after", "4"]
    died = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert died.returncode == 3, died.stderr
    resumed = open_study("stage2-w5", storage_path=storage, seed=1)
    before = [(t.number, t.state, t.value, t.params) for t in resumed.trials]
    assert [state for _, state, _, _ in before] == [TrialState.COMPLETE] * 4 + [TrialState.FAIL]
    run = run_trials(resumed, constant_objective, Budget(total_trials=100), 2, max_trials=10)
    assert run.complete == 6 and done_trials(resumed) == 10
    reopened = open_study("stage2-w5", storage_path=storage)
    assert [(t.number, t.state, t.value, t.params) for t in reopened.trials[:5]] == before
    assert len(reopened.trials) == 11


def test_a_study_file_mirrored_to_the_run_folder_survives_a_lost_disk(tmp_path: Path) -> None:
    uri = "memory://run-42/tune/stage2/w5.journal"
    first = StudyFileMirror(uri, tmp_path / "pod-a" / "w5.journal")
    assert not first.pull()
    study = open_study("w5", storage_path=first.local_path)
    budget, ledger = Budget(total_trials=100), "memory://run-42/tune/budget.json"

    def persist(run: TrialRun) -> None:
        first.push()
        budget.save(ledger)

    run_trials(study, constant_objective, budget, 2, max_trials=3, after_trial=persist)
    second = StudyFileMirror(uri, tmp_path / "pod-b" / "w5.journal")  # a fresh pod
    assert second.pull()
    resumed = open_study("w5", storage_path=second.local_path)
    assert [t.value for t in resumed.trials] == [t.value for t in study.trials]
    assert done_trials(resumed) == 3 and Budget.load(ledger).report()[1]["trials"] == 3

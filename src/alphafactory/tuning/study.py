"""Persistent Optuna studies that resume after preemption, run within a budget, and prune.

A study lives in a journal or SQLite file (one task that may be retried: finished trials
survive, the trial that was running when the task died is marked failed on reopen) or in a
database URL such as PostgreSQL (several workers share one study; a crashed worker's trial is
failed by the others through heartbeats).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from alphafactory.errors import ConfigError
from alphafactory.tuning.budget import Budget, core_seconds
from alphafactory.tuning.space import SearchSpace, snap_to_space, suggest_params

log = logging.getLogger(__name__)

Objective = Callable[[optuna.Trial], float]
#: fit(params, lightgbm_callbacks) -> validation score (average precision); higher is better.
TrialFit = Callable[[dict[str, Any], list[Callable[..., None]]], float]
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def make_storage(
    storage_url: str | None = None,
    storage_path: str | Path | None = None,
    heartbeat_interval: int | None = 60,
) -> BaseStorage:
    """Journal file (any path) or SQLite (``.db``/``.sqlite``) storage, or a database URL.

    URL storages get heartbeats, so a worker that dies mid-trial has it failed by the others.
    """
    if (storage_url is None) == (storage_path is None):
        raise ConfigError("open_study needs exactly one of storage_url and storage_path")
    if storage_path is not None:
        path = Path(storage_path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in SQLITE_SUFFIXES:
            return RDBStorage(f"sqlite:///{path}")
        return JournalStorage(JournalFileBackend(str(path)))
    grace = None if heartbeat_interval is None else 4 * heartbeat_interval
    with warnings.catch_warnings():  # heartbeats are "experimental" since optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            str(storage_url),
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=heartbeat_interval,
            grace_period=grace,
        )


def default_pruner() -> optuna.pruners.BasePruner:
    """Median pruning once a few trials finished and a fit had some rounds to settle."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10)


def fold_pruner() -> optuna.pruners.BasePruner:
    """For :func:`cv_objective` (one step per fold): prune from the second fold on."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def open_study(
    name: str,
    *,
    storage_url: str | None = None,
    storage_path: str | Path | None = None,
    direction: Literal["minimize", "maximize"] = "maximize",
    seed: int = 0,
    worker: int = 0,
    pruner: optuna.pruners.BasePruner | None = None,
    fail_running_trials: bool | None = None,
) -> optuna.Study:
    """Create the study `name`, or load it with all its finished trials if it exists.

    The TPE sampler's seed mixes `seed`, `worker` and the trials already in the study, so
    concurrent workers and a resumed task do not repeat each other's random start-up
    points. `fail_running_trials` (default: True for a file, False for a URL) marks trials
    left RUNNING by a killed task as FAIL; never enable it for a study other processes are
    working on.
    """
    storage = make_storage(storage_url, storage_path)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        pruner=pruner or default_pruner(),
        load_if_exists=True,
    )
    existing = study.get_trials(deepcopy=False)
    single_owner = storage_path is not None
    if single_owner if fail_running_trials is None else fail_running_trials:
        fail_running(study)
    study.sampler = optuna.samplers.TPESampler(
        seed=seed + 7919 * worker + len(existing), constant_liar=True
    )
    return study


def fail_running(study: optuna.Study) -> int:
    """Mark every RUNNING trial FAIL (their process is gone); returns how many."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    if running:
        log.warning(
            "study %s: %d interrupted trial(s) marked failed", study.study_name, len(running)
        )
    return len(running)


def done_trials(study: optuna.Study) -> int:
    """Trials that finished with a result (complete or pruned)."""
    return len(study.get_trials(deepcopy=False, states=DONE_STATES))


def enqueue_params(
    study: optuna.Study, points: Iterable[Mapping[str, Any]], space: SearchSpace
) -> None:
    """Warm-start: queue each point (snapped onto `space`) unless the study already has it."""
    for point in points:
        study.enqueue_trial(dict(snap_to_space(point, space)), skip_if_exists=True)


@dataclass
class TrialRun:
    """What one :func:`run_trials` call did and why it stopped."""

    stage: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    core_seconds: float = 0.0
    stopped_by: str = ""
    trial_numbers: list[int] = field(default_factory=list)

    @property
    def started(self) -> int:
        return self.complete + self.pruned + self.failed

    def record(self, trial: FrozenTrial) -> None:
        self.trial_numbers.append(trial.number)
        if trial.state == TrialState.COMPLETE:
            self.complete += 1
        elif trial.state == TrialState.PRUNED:
            self.pruned += 1
        else:
            self.failed += 1


def _stop_reason(
    study: optuna.Study,
    budget: Budget,
    stage: int,
    max_trials: int,
    run: TrialRun,
    max_failures: int,
) -> str:
    if done_trials(study) >= max_trials:
        return "target"
    if not budget.should_start_trial(stage):
        return "budget"
    if run.failed >= max_failures:
        return "failures"
    return ""


def run_trials(
    study: optuna.Study,
    objective: Objective,
    budget: Budget,
    stage: int,
    max_trials: int,
    *,
    threads: int = 1,
    catch: tuple[type[Exception], ...] = (),
    max_failures: int = 10,
    after_trial: Callable[[TrialRun], None] | None = None,
) -> TrialRun:
    """Run trials until the study holds `max_trials` done trials or the stage budget is spent.

    `max_trials` counts the study's complete and pruned trials, so a resumed task continues
    to the same target. Each trial's wall time × `threads` is charged to `stage` of `budget`;
    no trial starts once the stage's allowance is used up. `after_trial` runs after each
    trial is charged (e.g. push the study file and save the budget ledger to the run folder).
    """
    run = TrialRun(stage)
    while not (reason := _stop_reason(study, budget, stage, max_trials, run, max_failures)):
        started = time.perf_counter()
        study.optimize(
            objective, n_trials=1, catch=catch, callbacks=[lambda _, trial: run.record(trial)]
        )
        cost = core_seconds(time.perf_counter() - started, threads)
        budget.charge(stage, cost)
        run.core_seconds += cost
        if after_trial is not None:
            after_trial(run)
    run.stopped_by = reason
    log.info(
        "study %s stage %d: %d complete, %d pruned, %d failed; stopped by %s",
        study.study_name, stage, run.complete, run.pruned, run.failed, reason,
    )  # fmt: skip
    return run


class LightGBMPruningCallback:
    """LightGBM callback: report a validation metric to the trial each few rounds; prune.

    Lower-is-better metrics (multi_logloss) are negated for a maximising study, so the
    pruner always compares values in the study's own direction.
    """

    order = 20  # before early stopping (30): a pruned trial stops at once

    def __init__(
        self,
        trial: optuna.Trial,
        metric: str = "multi_logloss",
        valid_name: str | None = None,
        report_every: int = 5,
        step_offset: int = 0,
    ) -> None:
        self.trial, self.metric, self.valid_name = trial, metric, valid_name
        self.report_every, self.step_offset = max(1, report_every), step_offset
        self.maximize = trial.study.direction == StudyDirection.MAXIMIZE

    def _value(self, env: Any) -> float:
        for data_name, metric_name, value, higher_is_better, *_ in env.evaluation_result_list:
            if metric_name != self.metric or data_name == "training":
                continue
            if self.valid_name is None or data_name == self.valid_name:
                return float(value) if higher_is_better == self.maximize else -float(value)
        raise ConfigError(
            f"pruning metric '{self.metric}' on '{self.valid_name or 'a validation set'}' is "
            "not evaluated; add it to params['metric'] and pass valid_sets to lightgbm.train"
        )

    def __call__(self, env: Any) -> None:
        if (env.iteration + 1) % self.report_every:
            return
        value = self._value(env)
        step = self.step_offset + env.iteration
        self.trial.report(value, step=step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at round {env.iteration + 1} ({self.metric})")


def split_objective(
    space: SearchSpace,
    fit: TrialFit,
    n_train_rows: int | None,
    fixed: Mapping[str, Any] | None = None,
    *,
    prune: bool = True,
) -> Objective:
    """Objective on one train/valid split: fixed + suggested params → `fit` → its score.

    With `prune`, `fit` receives a :class:`LightGBMPruningCallback` to pass to lightgbm.train.
    """

    def objective(trial: optuna.Trial) -> float:
        params = {**(fixed or {}), **suggest_params(trial, space, n_train_rows)}
        callbacks: list[Callable[..., None]] = [LightGBMPruningCallback(trial)] if prune else []
        return fit(params, callbacks)

    return objective


def cv_objective(
    space: SearchSpace,
    fold_fits: Sequence[TrialFit],
    n_train_rows: int | None,
    fixed: Mapping[str, Any] | None = None,
    *,
    prune: bool = True,
) -> Objective:
    """Objective over chronological folds: the mean of each fold's score.

    After each fold the running mean is reported (step = fold index) so the pruner can stop
    a trial that is already behind after the first folds; fold scores go to user attrs.
    """

    def objective(trial: optuna.Trial) -> float:
        params = {**(fixed or {}), **suggest_params(trial, space, n_train_rows)}
        scores: list[float] = []
        for index, fit in enumerate(fold_fits):
            scores.append(float(fit(dict(params), [])))
            trial.set_user_attr("fold_scores", scores)
            running = sum(scores) / len(scores)
            if not math.isfinite(running):
                return math.nan  # an unscorable fold fails the trial
            trial.report(running, step=index)
            if prune and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {index + 1} of {len(fold_fits)}")
        return sum(scores) / len(scores)

    return objective


def best_point(study: optuna.Study) -> tuple[dict[str, Any], float]:
    """Parameters and value of the best complete trial."""
    trial = study.best_trial
    return dict(trial.params), float(trial.value if trial.value is not None else math.nan)

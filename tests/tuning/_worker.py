"""A tuning worker run as a separate process by the resume and shared-study tests.

usage: _worker.py STORAGE NAME TRIALS [--crash-after N] [--worker W] [--out FILE] [--sleep S]
                  [--barrier FOLDER]
STORAGE is a file path or a database URL. The worker runs TRIALS trials of a cheap objective
on the broad search space (its own budget counts trials); with --crash-after it dies with
``os._exit`` inside trial N + 1, leaving that trial RUNNING, like a preempted pod. With
--barrier it writes FOLDER/ready-W once its study is open and waits for FOLDER/go.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import optuna

from alphafactory.tuning import Budget, broad_space, open_study, run_trials, suggest_params


def score(params: dict[str, Any]) -> float:
    """A smooth made-up objective with its best at num_leaves 50, depth 7, rate 0.05."""
    return (
        1.0
        - abs(params["num_leaves"] - 50) / 100
        - abs(params["max_depth"] - 7) / 20
        - abs(params["learning_rate"] - 0.05)
        - params["lambda_l1"]
    )


def wait_at_barrier(folder: Path, worker: int, timeout_s: float = 120.0) -> None:
    (folder / f"ready-{worker}").touch()
    deadline = time.monotonic() + timeout_s
    while not (folder / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker {worker}: no go signal in {folder}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage")
    parser.add_argument("name")
    parser.add_argument("trials", type=int)
    parser.add_argument("--crash-after", type=int, default=None)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--barrier", type=Path, default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    where = (
        {"storage_url": args.storage} if "://" in args.storage else {"storage_path": args.storage}
    )
    study = open_study(args.name, seed=1, worker=args.worker, **where)
    space, finished = broad_space(), []
    if args.barrier is not None:
        wait_at_barrier(args.barrier, args.worker)

    def objective(trial: optuna.Trial) -> float:
        if args.crash_after is not None and len(finished) >= args.crash_after:
            os._exit(3)  # no cleanup: the trial stays RUNNING in the storage
        params = suggest_params(trial, space, n_train_rows=5000)
        time.sleep(args.sleep)
        finished.append(trial.number)
        return score(params)

    budget = Budget(total_trials=args.trials, shares={2: 1.0})
    run = run_trials(study, objective, budget, stage=2, max_trials=10_000)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"trial_numbers": run.trial_numbers, "stopped_by": run.stopped_by}, handle)


if __name__ == "__main__":
    main()

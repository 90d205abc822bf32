"""A study shared by worker processes through a real PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from alphafactory.tuning import open_study

WORKER = Path(__file__).with_name("_worker.py")


def release_together(folder: Path, workers: list[subprocess.Popen[str]]) -> None:
    """Wait until both workers have their study open, then let them start at once."""
    deadline = time.monotonic() + 120
    while not all((folder / f"ready-{w}").exists() for w in range(len(workers))):
        assert all(worker.poll() is None for worker in workers), "a worker exited early"
        assert time.monotonic() < deadline, "workers did not get ready"
        time.sleep(0.05)
    (folder / "go").touch()


@pytest.mark.slow
def test_two_workers_share_one_postgres_study(postgres_url: str, tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    open_study("stage3-shared", storage_url=postgres_url)  # the driver creates schema and study
    outputs = [tmp_path / f"worker{w}.json" for w in (0, 1)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                postgres_url,
                "stage3-shared",
                str(count),
                "--worker",
                str(w),
                "--sleep",
                "0.1",
                "--out",
                str(outputs[w]),
                "--barrier",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for w, count in ((0, 7), (1, 5))
    ]
    release_together(tmp_path, workers)
    for worker in workers:
        _, stderr = worker.communicate(timeout=240)
        assert worker.returncode == 0, stderr
    numbers = [json.loads(path.read_text())["trial_numbers"] for path in outputs]
    assert [len(n) for n in numbers] == [7, 5]
    study = open_study("stage3-shared", storage_url=postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 7 + 5
    assert all(trial.state == TrialState.COMPLETE for trial in trials)
    assert sorted(numbers[0] + numbers[1]) == sorted(t.number for t in trials) == list(range(12))
    assert set(numbers[0]).isdisjoint(numbers[1])
    interleaved = sorted(numbers[0]) != list(range(7)) and sorted(numbers[1]) != list(range(7, 12))
    assert interleaved  # both ran at the same time, not one after the other

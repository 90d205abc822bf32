"""The compute budget: shares, carry-forward, stop-starting, ledger round-trip, report."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from alphafactory.errors import ConfigError
from alphafactory.tuning import Budget, core_seconds, format_report


def test_shares_plan_the_total() -> None:
    budget = Budget(total_core_seconds=1000)
    assert budget.unit == "core_seconds"
    assert [budget.planned(s) for s in budget.stages()] == [250, 150, 350, 250]
    assert budget.stage_allowance(1) == 250 and budget.carried(1) == 0


def test_unspent_budget_carries_forward_and_overspend_reduces_it() -> None:
    budget = Budget(total_core_seconds=1000)
    budget.charge(1, 200.0, trials=40)
    assert budget.carried(2) == 50 and budget.stage_allowance(2) == 200
    budget.charge(2, 300.0, trials=3)  # 100 over its allowance
    assert budget.carried(3) == -100 and budget.stage_allowance(3) == 250
    assert budget.carried(4) == -100 + 350  # stage 3 has not run yet: all of it carries
    assert Budget(total_trials=10, shares={1: 0.5, 2: 0.5}, usage=None).stage_allowance(2) == 10


def test_should_start_trial_stops_when_the_allowance_is_spent() -> None:
    budget = Budget(total_trials=20)  # stage 2 plans 3 trials, stage 1 plans 5
    budget.charge(1, 0.0, trials=5)
    started = 0
    while budget.should_start_trial(2):
        budget.charge(2, 1.0)
        started += 1
    assert started == 3
    assert budget.remaining(2) == 0 and not budget.should_start_trial(2)


def test_core_seconds_are_wall_seconds_times_threads() -> None:
    assert core_seconds(2.5, 4) == 10.0 and core_seconds(-1.0, 4) == 0.0
    budget = Budget(total_core_seconds=100)
    with budget.meter(3, threads=4):
        time.sleep(0.02)
    assert 0.08 <= budget.used(3) < 2.0
    assert budget.report()[2]["trials"] == 1


def test_ledger_round_trip_and_report(tmp_path: Path) -> None:
    budget = Budget(total_core_seconds=3600)
    budget.charge(1, 1000.0, trials=2160)
    budget.charge(2, 400.5, trials=30)
    ledger = str(tmp_path / "run" / "tune" / "budget.json")
    budget.save(ledger)
    loaded = Budget.load(ledger)
    assert loaded.report() == budget.report()
    loaded.charge(3, 10.0)
    assert loaded.used(3) == 10.0 and budget.used(3) == 0.0
    rows = {row["stage"]: row for row in loaded.report()}
    assert rows[1] == {
        "stage": 1, "unit": "core_seconds", "share": 0.25, "planned": 900.0, "carried": 0.0,
        "allowance": 900.0, "used": 1000.0, "core_seconds": 1000.0, "trials": 2160,
        "remaining": -100.0,
    }  # fmt: skip
    assert rows[2]["carried"] == -100.0 and rows[2]["allowance"] == 440.0
    assert rows[3]["carried"] == 39.5 and rows[3]["allowance"] == 1299.5
    assert "| 2 | 15% | 540.0 | -100.0 | 440.0 | 400.5 | 30 | 39.5 |" in format_report(loaded)


def test_shards_split_the_remaining_allowance_and_report_back() -> None:
    budget = Budget(total_trials=100)
    shards = [budget.shard(3, 4) for _ in range(4)]
    assert shards[0].stage_allowance(3) == pytest.approx((25 + 15 + 35) / 4)
    for index, shard in enumerate(shards):
        shard.charge(3, 10.0 * index, trials=index)
        budget.absorb(3, shard)
    assert budget.used(3) == 6 and budget.report()[2]["core_seconds"] == 60.0


def test_bad_budgets_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="exactly one of total_core_seconds and total_trials"):
        Budget(total_core_seconds=1, total_trials=1)
    with pytest.raises(ConfigError, match="sum to at most 1"):
        Budget(total_trials=1, shares={1: 0.8, 2: 0.8})
    with pytest.raises(ConfigError, match=r"stage 7 has no budget share; known: \[1, 2, 3, 4\]"):
        Budget(total_trials=1).charge(7, 1.0)

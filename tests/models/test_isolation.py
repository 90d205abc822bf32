"""Process isolation: a fit in a child process gives the in-process model, and a crash, a
kill, a timeout or an out-of-memory failure marks only that fit failed, with the reason."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from alphafactory.config.schema import EnvironmentConfig
from alphafactory.models import FAMILIES, FitBudget, preset_params
from alphafactory.models._isolation import FitFailed, fit_isolated
from alphafactory.stages.family_fit import fit_family
from tests.contract.conftest import make_sample
from tests.models.crashing import CrashingFamily

BUDGET = FitBudget(rounds=40, early_stopping=10, threads=1, seed=3)


def config(**models: object) -> EnvironmentConfig:
    return EnvironmentConfig.model_validate(
        {"name": "isolation", "tune": {"min_rows": 30}, "models": {"isolation": "process",
                                                                    **models}}
    )  # fmt: skip


@pytest.mark.parametrize("name", ["ftrl", "lightgbm"])
def test_child_fit_equals_in_process_fit(name: str) -> None:
    train, valid, test = make_sample(800, 1), make_sample(300, 2), make_sample(200, 3)
    family, params = FAMILIES[name], preset_params(name)
    here = family.fit(train, valid, params, BUDGET)
    there = fit_isolated(family, train, valid, params, BUDGET, timeout=120)
    assert type(there) is type(here)
    np.testing.assert_array_equal(
        there.predict_proba(test.features), here.predict_proba(test.features)
    )


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("exit", r"exit code 3"),
        ("kill", r"killed by SIGKILL \(out of memory\?\)"),
        ("raise", r"exit code 1: RuntimeError: crashing family: asked to raise"),
        ("memory", r"exit code 1: MemoryError"),
        ("sleep", r"timed out after 3 s"),
    ],
)
def test_a_crashing_fit_fails_only_its_variant(
    mode: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(FAMILIES, "crashing", CrashingFamily())
    train, valid = make_sample(300, 1), make_sample(100, 2)
    started = time.perf_counter()
    result = fit_family(
        config(fit_timeout_seconds=3, fit_memory_mb=512), "crashing", "v1", train, valid,
        {"mode": mode}, BUDGET,
    )  # fmt: skip
    assert result.status == "failed" and result.model is None
    assert result.reason.startswith("crashing fit ")
    assert result.seconds > 0
    assert re.search(reason, result.reason), result.reason
    assert time.perf_counter() - started < 30


def test_failed_child_raises_fit_failed_directly() -> None:
    with pytest.raises(FitFailed, match=r"crashing fit failed in its child process: exit code 3"):
        fit_isolated(
            CrashingFamily(), make_sample(100, 1), make_sample(50, 2), {"mode": "exit"}, BUDGET,
            timeout=60,
        )  # fmt: skip

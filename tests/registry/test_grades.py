"""Grade cut points, the per-type benchmark cap and floor, and the naming convention."""

from __future__ import annotations

import math

import pytest

from alphafactory.errors import ConfigError
from alphafactory.registry import (
    GRADES,
    grade_at_least,
    grade_cohort,
    grade_from_percentile,
    model_name,
)


@pytest.mark.parametrize(
    ("percentile", "grade"),
    [(100, "S"), (95, "S"), (94.9, "A+"), (90, "A+"), (80, "A"), (70, "A-"), (60, "B+"),
     (50, "B"), (40, "B-"), (30, "C"), (20, "D"), (19.9, "F"), (0, "F")],
)  # fmt: skip
def test_cut_points(percentile: float, grade: str) -> None:
    assert grade_from_percentile(percentile) == grade


def test_cohort_of_ten_in_the_middle_band_is_graded_by_percentile() -> None:
    # AP between the lightgbm "poor" (0.40) and "excellent" (0.65) bounds: percentile only.
    metrics = {f"m{rank}": 0.45 + rank * 0.01 for rank in range(10)}
    grades = grade_cohort(metrics, "lightgbm")
    assert [grades[f"m{rank}"] for rank in range(10)] == [
        "F", "F", "D", "C", "B-", "B", "B+", "A-", "A", "S"
    ]  # fmt: skip


def test_below_the_family_minimum_caps_at_c() -> None:
    # A weak cohort: the best model is still below lightgbm's minimum useful AP (0.40).
    weak = {f"m{rank}": 0.30 + rank * 0.01 for rank in range(10)}
    grades = grade_cohort(weak, "lightgbm")
    assert grades["m9"] == "C" and grades["m8"] == "C" and grades["m3"] == "C"
    assert grades["m0"] == "F" and grades["m2"] == "D"


def test_excellent_models_grade_at_least_a_minus() -> None:
    strong = {"m0": 0.70, "m1": 0.71, "m2": 0.72, "m3": 0.50}
    grades = grade_cohort(strong, "lightgbm")
    assert grades == {"m0": "A-", "m1": "A-", "m2": "A", "m3": "F"}  # m0 lifted from D


def test_benchmarks_depend_on_model_type() -> None:
    cohort = {"only": 0.39}
    assert grade_cohort(cohort, "lightgbm") == {"only": "C"}  # below 0.40 for boosters
    assert grade_cohort(cohort, "mlp") == {"only": "B"}  # 0.38 is the mlp minimum


def test_lower_is_better_metric_and_nan() -> None:
    losses = {"good": 0.70, "ok": 0.95, "bad": 1.08, "broken": math.nan}
    grades = grade_cohort(losses, "lightgbm", metric="logloss")
    assert grades == {"good": "A", "ok": "B", "bad": "F", "broken": "F"}  # NaN is not ranked


def test_grade_at_least() -> None:
    assert grade_at_least("S", "A")
    assert grade_at_least("A", "A")
    assert not grade_at_least("A-", "A")
    assert [grade for grade in GRADES if grade_at_least(grade, "B+")] == [
        "S",
        "A+",
        "A",
        "A-",
        "B+",
    ]
    with pytest.raises(ConfigError, match="grade 'E' is unknown: use one of S, A"):
        grade_at_least("E", "A")


def test_model_name_convention() -> None:
    assert model_name("lightgbm", "1.0.0", "A", "ap", 0.61234) == "lightgbm_1.0.0_grade_A_ap_0.6123"
    assert model_name("xgboost", "2.1.0", "A-", "auc", 0.7) == "xgboost_2.1.0_grade_A-_auc_0.7000"

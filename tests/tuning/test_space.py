"""Search spaces: sampling stays on the source grids; narrowing and focusing keep subsets."""

from __future__ import annotations

import optuna
import pytest

from alphafactory.errors import ConfigError
from alphafactory.tuning import (
    SOURCE_GRIDS,
    SearchSpace,
    broad_space,
    focused_space,
    min_child_samples,
    narrowed_space,
    snap_to_space,
    suggest_params,
    top_trial_params,
)


def test_broad_space_is_the_source_grid() -> None:
    assert broad_space().to_dict() == {
        "num_leaves": [30, 50, 80],
        "max_depth": [5, 6, 7, 9],
        "feature_fraction": [0.7],
        "learning_rate": [0.01, 0.05, 0.1],
        "lambda_l1": [0.0, 0.01, 0.1],
    }
    assert broad_space().size() == 3 * 4 * 1 * 3 * 3


def test_sampled_params_stay_on_the_grids() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen: dict[str, set[float]] = {name: set() for name in SOURCE_GRIDS}
    for _ in range(200):
        params = suggest_params(study.ask(), broad_space(), n_train_rows=12_345)
        assert params["min_child_samples"] == 123
        for name, grid in SOURCE_GRIDS.items():
            assert params[name] in grid
            seen[name].add(params[name])
    assert {name: sorted(values) for name, values in seen.items()} == {
        name: sorted(grid) for name, grid in SOURCE_GRIDS.items()
    }


@pytest.mark.parametrize(
    ("rows", "expected"), [(0, 5), (100, 5), (549, 5), (651, 7), (30_000, 300)]
)
def test_min_child_samples_is_one_percent_with_a_floor(rows: int, expected: int) -> None:
    assert min_child_samples(rows) == expected


def test_narrowed_space_spans_the_best_points() -> None:
    top = [
        {
            "num_leaves": 50,
            "max_depth": 6,
            "feature_fraction": 0.7,
            "learning_rate": 0.05,
            "lambda_l1": 0.0,
        },
        {
            "num_leaves": 80,
            "max_depth": 7,
            "feature_fraction": 0.7,
            "learning_rate": 0.05,
            "lambda_l1": 0.0,
        },
        {
            "num_leaves": 50,
            "max_depth": 6,
            "feature_fraction": 0.7,
            "learning_rate": 0.1,
            "lambda_l1": 0.0,
        },
    ]
    narrowed = narrowed_space(broad_space(), top)
    assert narrowed.to_dict() == {
        "num_leaves": [50, 80],
        "max_depth": [6, 7],
        "feature_fraction": [0.7],
        "learning_rate": [0.05, 0.1],
        "lambda_l1": [0.0],
    }
    assert narrowed.is_subset_of(broad_space())
    assert all(narrowed.contains(point) for point in top)
    assert narrowed_space(broad_space(), []) == broad_space()


def test_focused_space_is_the_neighbourhood_of_the_best() -> None:
    best = {
        "num_leaves": 50,
        "max_depth": 9,
        "feature_fraction": 0.7,
        "learning_rate": 0.01,
        "lambda_l1": 0.01,
    }
    focused = focused_space(broad_space(), best)
    assert focused.to_dict() == {
        "num_leaves": [30, 50, 80],
        "max_depth": [7, 9],
        "feature_fraction": [0.7],
        "learning_rate": [0.01, 0.05],
        "lambda_l1": [0.0, 0.01, 0.1],
    }
    assert focused.is_subset_of(broad_space()) and focused.contains(best)
    assert focused_space(broad_space(), best, radius=0).size() == 1


def test_off_grid_points_are_rejected_or_snapped() -> None:
    stage1_defaults = {
        "num_leaves": 31,
        "max_depth": 6,
        "learning_rate": 0.1,
        "feature_fraction": 0.7,
    }
    assert snap_to_space(stage1_defaults, broad_space()) == {
        "num_leaves": 30,
        "max_depth": 6,
        "feature_fraction": 0.7,
        "learning_rate": 0.1,
        "lambda_l1": 0.01,  # missing: the grid's middle value
    }
    with pytest.raises(ConfigError, match=r"'num_leaves'=31 is not on the grid \[30, 50, 80\]"):
        focused_space(broad_space(), stage1_defaults)
    with pytest.raises(ConfigError, match="must be non-empty, ascending"):
        SearchSpace({"num_leaves": (50, 30)})


def test_top_trial_params_orders_by_value() -> None:
    study = optuna.create_study(direction="maximize")
    for leaves, value in [(30, 0.2), (80, 0.9), (50, 0.5)]:
        point = {"num_leaves": leaves, "max_depth": 6, "feature_fraction": 0.7}
        point |= {"learning_rate": 0.05, "lambda_l1": 0.0}
        study.enqueue_trial(point)
        trial = study.ask()
        suggest_params(trial, broad_space(), 1000)
        study.tell(trial, value)
    assert [p["num_leaves"] for p in top_trial_params(study.trials, broad_space(), k=2)] == [80, 50]

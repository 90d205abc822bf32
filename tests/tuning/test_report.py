"""Study reports: the trial table and SVG charts, without plotting libraries."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import polars as pl

from alphafactory.tuning import (
    Budget,
    broad_space,
    history_svg,
    importance_svg,
    param_importances,
    suggest_params,
    trials_table,
    write_study_report,
)
from alphafactory.tuning.report import best_so_far

optuna.logging.set_verbosity(optuna.logging.WARNING)


def seeded_study(n_trials: int = 12) -> optuna.Study:
    study = optuna.create_study(
        study_name="demo", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=7)
    )

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, broad_space(), 2000)
        if trial.number == 3:
            raise optuna.TrialPruned()
        return params["num_leaves"] / 100 + params["learning_rate"]

    study.optimize(objective, n_trials=n_trials)
    return study


def test_trials_table_has_one_row_per_trial_and_a_column_per_param() -> None:
    table = trials_table(seeded_study())
    assert table.height == 12
    assert table.columns == [
        "number", "state", "value", "seconds", "param_feature_fraction", "param_lambda_l1",
        "param_learning_rate", "param_max_depth", "param_num_leaves", "user_attrs",
    ]  # fmt: skip
    assert table.filter(pl.col("state") == "PRUNED")["number"].to_list() == [3]
    assert set(table["param_num_leaves"].to_list()) <= {30.0, 50.0, 80.0}


def test_best_so_far_follows_the_direction() -> None:
    assert best_so_far([0.2, 0.5, 0.1, 0.7], maximize=True) == [0.2, 0.5, 0.5, 0.7]
    assert best_so_far([0.2, 0.5, 0.1, 0.7], maximize=False) == [0.2, 0.2, 0.1, 0.1]


def test_history_and_importance_charts_are_svg() -> None:
    study = seeded_study()
    history = history_svg(study)
    assert history.startswith("<svg") and history.endswith("</svg>")
    assert history.count("<circle") == 11 and history.count("<polyline") == 1
    importances = param_importances(study)
    assert set(importances) == {"num_leaves", "max_depth", "learning_rate", "lambda_l1"}
    assert max(importances, key=importances.__getitem__) == "num_leaves"
    assert importance_svg(importances).count("<rect") == 4


def test_charts_of_an_empty_study_say_why() -> None:
    study = optuna.create_study()
    assert "no complete trials yet" in history_svg(study)
    assert param_importances(study) == {}
    assert "not enough complete trials" in importance_svg({})


def test_write_study_report(tmp_path: Path) -> None:
    budget = Budget(total_trials=80)
    budget.charge(2, 3.0, trials=12)
    paths = write_study_report(seeded_study(), str(tmp_path / "stage2"), budget)
    assert sorted(Path(p).name for p in paths.values()) == [
        "history.svg", "importance.svg", "report.md", "trials.json",
    ]  # fmt: skip
    rows = json.loads(Path(paths["trials"]).read_text())
    assert [row["number"] for row in rows] == list(range(12))
    markdown = Path(paths["markdown"]).read_text()
    assert "- complete: 11" in markdown and "- pruned: 1" in markdown
    assert "| 2 | 15% | 12.0 | 20.0 | 32.0 | 12.0 | 12 | 20.0 |" in markdown

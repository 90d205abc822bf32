"""Tuning must earn its place: the adoption verdict and the parameters production uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_run import TinyRuns, clone_runs

from alphafactory import io
from alphafactory.layout import RunLayout, read_plan
from alphafactory.stages.adoption import adoption, production_params, tuned_params, with_tuned
from alphafactory.stages.common import load_matrix
from alphafactory.stages.fitting import default_params


@pytest.fixture(scope="module")
def runs(tiny_runs: TinyRuns, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    return clone_runs(tiny_runs, tmp_path_factory.mktemp("adoption"))


def test_the_defaults_themselves_never_earn_adoption(runs: TinyRuns) -> None:
    layout = RunLayout(str(runs.run_dir))
    plan = read_plan(layout)
    matrix = load_matrix(layout, io.read_json(layout.selected_features))
    variant = plan.groups["BTC_w3_high"][0]
    config = runs.config
    verdict = adoption(config, layout, plan, matrix, variant, {"num_leaves": 31})
    assert verdict["gain"] == 0.0 and verdict["p_value"] == 1.0 and not verdict["adopted"]
    assert verdict["selection_ap_default"] == verdict["selection_ap_tuned"]
    assert "< margin 0.005" in verdict["reason"]
    assert adoption(config, layout, plan, matrix, variant, {})["reason"] == "no tuned parameters"


def test_production_uses_tuned_parameters_only_when_adopted(runs: TinyRuns, tmp_path: Path) -> None:
    layout = RunLayout(str(runs.run_dir))
    config = runs.config
    defaults = default_params(config)
    assert tuned_params(config, layout, "BTC_w3_high") == defaults  # stages 2-4 did not run
    candidate = {"num_leaves": 80, "max_depth": 9, "unrelated": 1}
    units = {
        "BTC_w3_high": {"adoption": {"adopted": True, "params": candidate}},
        "ETH_w3_high": {"adoption": {"adopted": False, "params": candidate}},
    }
    Path(layout.tune_winners(4)).parent.mkdir(parents=True, exist_ok=True)
    Path(layout.tune_winners(4)).write_text(json.dumps({"units": units}))
    adopted = tuned_params(config, layout, "BTC_w3_high")
    assert adopted == {**defaults, "num_leaves": 80, "max_depth": 9}  # tuned keys only
    assert adopted == with_tuned(defaults, candidate)
    assert tuned_params(config, layout, "ETH_w3_high") == defaults
    assert production_params(config, adopted)["learning_rate"] == config.train.learning_rate

"""A user's own bars (any symbols, any frequency, CSV or parquet) drive the groups of a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alphafactory.config import load_environment, with_data_uri
from alphafactory.data.synthetic import generate_bars
from alphafactory.stages import run_prepare
from pipelines.local import prepare_local_run

SMALL_GRID = {
    "windows": [3, 10],
    "swing_types": ["high", "low"],
    "std_thresholds": [1.0],
    "move_thresholds": [1.0],
    "horizons": [6],
}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_user_bars_set_symbols_frequency_and_groups(tmp_path: Path, suffix: str) -> None:
    bars = generate_bars(["AAA", "BBB"], n_bars=1200, frequency="4h", seed=11)
    data = tmp_path / f"bars{suffix}"
    if suffix == ".csv":
        bars.write_csv(data)
    else:
        bars.write_parquet(data)
    base = load_environment("local-dev")
    config = with_data_uri(base, str(data)).model_copy(
        update={"grid": base.grid.model_validate(SMALL_GRID)}
    )
    metrics = run_prepare(config, str(tmp_path / "run"))
    plan = json.loads((tmp_path / "run" / "prepare" / "plan.json").read_text())
    assert plan["symbols"] == ["AAA", "BBB"]
    assert sorted(plan["groups"]) == sorted(
        f"{s}_w{w}_{t}" for s in ("AAA", "BBB") for w in (3, 10) for t in ("high", "low")
    )
    assert plan["bar_seconds"] == 4 * 3600
    assert metrics["variants"] == 8 and metrics["groups"] == 8


def test_cli_plan_follows_the_users_symbols(tmp_path: Path) -> None:
    data = tmp_path / "bars.parquet"
    generate_bars(["XRP", "ADA", "DOT", "LTC"], n_bars=800, frequency="1d", seed=2).write_parquet(
        data
    )
    plan = prepare_local_run("local-dev", data=str(data), runs_dir=tmp_path / "runs")
    assert "ADA, DOT, LTC, XRP" in plan.summary
    assert "48 groups" in plan.summary  # 4 symbols x 6 windows x 2 swing types
    assert plan.config.data.uri == str(data) and plan.config.data.source == "uri"
    assert not (tmp_path / "runs").exists()  # validation only: nothing written yet

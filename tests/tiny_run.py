"""A finished tiny run (all stages, registry, cache), made once per session by the
`tiny_runs` fixture of tests/conftest.py, and `clone_runs` to give a test module a private,
writable copy of it. Test modules import from here, never from `conftest` (several folders
have a conftest.py, so `import conftest` finds whichever was loaded last).

The registry, the model cache and the run folder of a local run all live under one runs
folder (`<runs>/run-1`, `<runs>/registry`, `<runs>/cache`). Running every stage costs about
25 s on two cores, so it runs once; modules that change the registry work on a clone.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from alphafactory.config.schema import EnvironmentConfig, PlantConfig
from alphafactory.data.bars import write_bars
from alphafactory.data.synthetic import generate_bars

TINY_SYMBOLS = ["BTC", "ETH"]
TINY_BARS = 4000
EXTRA_BARS = 100
STAGE_METRICS = "stage_metrics.json"
PLANTED = PlantConfig(symbols=["BTC"])
"""BTC carries the generator's planted signal and ETH is pure noise, so the tiny run has
models with skill (BTC's four groups: champions) and models without (ETH's: grade F)."""
"""The bars file of the tiny run holds the first TINY_BARS of a longer series, so that the
live-inference tests can 'receive' up to EXTRA_BARS genuinely new bars of the same series."""


def tiny_bars(n_bars: int = TINY_BARS) -> pl.DataFrame:
    """The first `n_bars` bars per symbol of one seeded synthetic series."""
    bars = generate_bars(TINY_SYMBOLS, n_bars=TINY_BARS + EXTRA_BARS, seed=7, planted=PLANTED)
    return bars.group_by("symbol", maintain_order=True).head(n_bars).sort("symbol", "timestamp")


TINY_STAGE_SETTINGS: dict[str, Any] = {
    "features": {"scale": "small"},
    "grid": {
        "windows": [3, 10],
        "swing_types": ["high", "low"],
        "std_thresholds": [1.0],
        "move_thresholds": [1.0],
        "horizons": [6],
    },
    "parallelism": {"shards": 2, "lgbm_threads": 1, "concurrent_fits": 1},
    "lightgbm": {"max_bin": 31},
    "screen": {
        "num_rounds": 20,
        "subsample_rows": 5000,
        "select_min": 20,
        "select_max": 40,
        "variants_per_group": 0,
    },
    "tune": {"num_rounds": 30, "min_rows": 30},
    "train": {"num_rounds": 50},
    # A quarter of the timeline as the test period: enough test events per group for the
    # skill test to separate the planted symbol from noise with a margin.
    "split": {"test_fraction": 0.25},
    # the test period's 1000 bars in 4 walk-forward windows, each refitted on 2000 bars
    "backtest": {"train_bars": 2000, "test_bars": 250},
}
"""Everything but data and paths of the tiny environment: 8 groups of one variant each."""


def tiny_settings(data_uri: str, pipeline_root: str) -> dict[str, Any]:
    """Settings of a tiny environment: 2 symbols, 8 groups of one variant, few rounds."""
    return {
        "name": "test-tiny",
        "runner": "local",
        "pipeline_root": pipeline_root,
        "data": {"source": "uri", "uri": data_uri, "symbols": TINY_SYMBOLS},
        **TINY_STAGE_SETTINGS,
    }


def run_stages(config: EnvironmentConfig, run_dir: str) -> dict[str, Any]:
    """Every stage once, in pipeline order; returns each stage's metrics."""
    from alphafactory.stages import (
        run_backtest_aggregate,
        run_backtest_shard,
        run_infer,
        run_prepare,
        run_screen_aggregate,
        run_screen_shard,
        run_select_winners,
        run_train_shard,
        run_tune_shard,
    )

    metrics: dict[str, Any] = {"prepare": run_prepare(config, run_dir)}
    shards = range(metrics["prepare"]["shards"])
    metrics["screen"] = [run_screen_shard(config, run_dir, s) for s in shards]
    metrics["aggregate"] = run_screen_aggregate(config, run_dir)
    metrics["tune"] = [run_tune_shard(config, run_dir, s) for s in shards]
    metrics["winners"] = run_select_winners(config, run_dir)
    metrics["train"] = [run_train_shard(config, run_dir, s) for s in shards]
    metrics["backtest"] = [run_backtest_shard(config, run_dir, s) for s in shards]
    metrics["backtest_all"] = run_backtest_aggregate(config, run_dir)
    metrics["infer"] = run_infer(config, run_dir)
    return metrics


@dataclass(frozen=True)
class TinyRuns:
    """A runs folder holding one finished run, its registry and its cache."""

    runs_dir: Path
    data_uri: str
    settings: dict[str, Any]

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / "run-1"

    @property
    def config(self) -> EnvironmentConfig:
        return EnvironmentConfig.model_validate(self.settings)

    @property
    def plan(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "prepare" / "plan.json").read_text()))

    @property
    def stage_metrics(self) -> dict[str, Any]:
        """What each stage function returned when the template run was made (`run_stages`),
        beside the bars file, outside the runs folder."""
        return dict(json.loads((Path(self.data_uri).parent / STAGE_METRICS).read_text()))

    def write_env(self, folder: Path) -> Path:
        """The settings as an environment YAML whose pipeline_root is this runs folder."""
        path = folder / "tiny-env.yaml"
        path.write_text(yaml.safe_dump(self.settings))
        return path


def make_tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    """Write the bars and run every stage once (about 25 s on two cores)."""
    base = tmp_path_factory.mktemp("tiny-template")
    data_uri = str(base / "bars.parquet")
    write_bars(tiny_bars(), data_uri)
    runs_dir = base / "runs"
    settings = tiny_settings(data_uri, str(runs_dir))
    runs = TinyRuns(runs_dir=runs_dir, data_uri=data_uri, settings=settings)
    metrics = run_stages(runs.config, str(runs.run_dir))
    (base / STAGE_METRICS).write_text(json.dumps(metrics))
    return runs


def clone_runs(template: TinyRuns, dest: Path) -> TinyRuns:
    """Copy the runs folder to `dest` and repoint the SQLite registry's artifact paths.

    MLflow stores absolute artifact URIs (experiment, run, model version source); every text
    value that names the template folder is rewritten to name the copy.
    """
    runs_dir = dest / "runs"
    shutil.copytree(template.runs_dir, runs_dir)
    old, new = str(template.runs_dir), str(runs_dir)
    connection = sqlite3.connect(runs_dir / "registry" / "mlflow.db")
    with connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            for column in connection.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], str(column[2]).upper()
                if "CHAR" in kind or "TEXT" in kind or kind == "":
                    connection.execute(
                        f'UPDATE "{table}" SET "{name}" = REPLACE("{name}", ?, ?) '
                        f'WHERE "{name}" LIKE ?',
                        (old, new, f"%{old}%"),
                    )
    connection.close()
    settings = {**template.settings, "pipeline_root": new}
    return TinyRuns(runs_dir=runs_dir, data_uri=template.data_uri, settings=settings)

"""Live inference: champions predict only new bars, idempotently and crash-safely."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import polars as pl
import pytest
from tiny_run import TINY_BARS, TinyRuns, clone_runs, tiny_bars
from typer.testing import CliRunner

from alphafactory.cli import app
from alphafactory.data.bars import write_bars
from alphafactory.errors import ModelError
from alphafactory.registry import ModelRegistry
from alphafactory.stages import live
from alphafactory.stages.live import LIVE_SCHEMA, live_predictions_path, run_live

FIRST_BARS = 200
GROUPS = 4
"""Groups with a champion: the planted symbol's four (ETH's models lack skill, so they are
never champions and live inference skips them)."""


@pytest.fixture(scope="module")
def runs(tiny_runs: TinyRuns, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    return clone_runs(tiny_runs, tmp_path_factory.mktemp("live"))


@pytest.fixture(scope="module")
def registry(runs: TinyRuns) -> ModelRegistry:
    return ModelRegistry(root=runs.runs_dir / "registry")


@pytest.fixture(scope="module")
def first_run(runs: TinyRuns, registry: ModelRegistry) -> live.LiveResult:
    """The first live run on the very bars the models were trained on."""
    return run_live(runs.config, str(runs.runs_dir), registry, first_bars=FIRST_BARS)


def _bars_file(folder: Path, n_bars: int) -> str:
    uri = str(folder / f"bars-{n_bars}.parquet")
    write_bars(tiny_bars(n_bars), uri)
    return uri


def _live_file(runs: TinyRuns) -> Path:
    return Path(live_predictions_path(str(runs.runs_dir)))


def test_first_run_predicts_the_last_bars_of_every_group(
    first_run: live.LiveResult, runs: TinyRuns
) -> None:
    frame = pl.read_parquet(_live_file(runs))
    assert first_run.added == first_run.rows_total == FIRST_BARS * GROUPS == frame.height
    champions = [g for g in runs.plan["groups"] if g.startswith("BTC")]
    assert first_run.rows_added == dict.fromkeys(champions, FIRST_BARS)
    assert dict(frame.schema) == LIVE_SCHEMA
    assert frame.select("timestamp", "group_id").is_unique().all()
    assert set(frame["semver"]) == {"1.0.0"}
    assert set(frame["model_id"]) == {f"alphafactory.{g}/1" for g in champions}


def test_live_probabilities_equal_batch_inference(
    first_run: live.LiveResult, runs: TinyRuns
) -> None:
    """Same bars, same champion file: the live rows equal the infer stage's rows."""
    live_rows = pl.read_parquet(_live_file(runs))
    batch = pl.read_parquet(runs.run_dir / "infer" / "predictions.parquet").with_columns(
        pl.col("group_id").cast(pl.String), pl.col("variant_id").cast(pl.String)
    )
    joined = live_rows.join(batch, on=["timestamp", "group_id"], suffix="_batch")
    assert joined.height == live_rows.height
    assert (joined["variant_id"] == joined["variant_id_batch"]).all()
    for column in ("p_neither", "p_breakout", "p_reversion"):
        np.testing.assert_allclose(joined[column], joined[f"{column}_batch"], atol=1e-6)


def test_rerun_adds_nothing(
    first_run: live.LiveResult, runs: TinyRuns, registry: ModelRegistry
) -> None:
    before = _live_file(runs).read_bytes()
    again = run_live(runs.config, str(runs.runs_dir), registry, first_bars=FIRST_BARS)
    assert again.added == 0 and again.rows_total == first_run.rows_total
    assert _live_file(runs).read_bytes() == before


def test_new_bars_add_exactly_k_rows_per_group(
    first_run: live.LiveResult, runs: TinyRuns, registry: ModelRegistry, tmp_path: Path
) -> None:
    before = pl.read_parquet(_live_file(runs))
    k = 7
    data = _bars_file(tmp_path, TINY_BARS + k)
    result = run_live(runs.config, str(runs.runs_dir), registry, data=data)
    after = pl.read_parquet(_live_file(runs))
    assert result.added == k * GROUPS
    assert after.height == before.height + k * GROUPS
    new = after.join(before, on=["timestamp", "group_id"], how="anti")
    assert new.group_by("group_id").len()["len"].to_list() == [k] * GROUPS
    assert new["timestamp"].min() > before["timestamp"].max()
    # the old rows are untouched
    assert after.join(before, on=["timestamp", "group_id"], how="semi").equals(before)
    assert run_live(runs.config, str(runs.runs_dir), registry, data=data).added == 0


def test_crash_while_writing_keeps_the_previous_file(
    first_run: live.LiveResult,
    runs: TinyRuns,
    registry: ModelRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live_file = _live_file(runs)
    before = live_file.read_bytes()
    written: list[Path] = []

    def crash(temporary: str, target: Path) -> None:
        written.append(Path(temporary))
        assert Path(temporary).stat().st_size > 0
        raise OSError("disk vanished")

    monkeypatch.setattr(live, "_commit", crash)
    with pytest.raises(OSError, match="disk vanished"):
        run_live(
            runs.config, str(runs.runs_dir), registry, data=_bars_file(tmp_path, TINY_BARS + 90)
        )
    assert len(written) == 1 and written[0].parent == live_file.parent
    assert live_file.read_bytes() == before
    assert sorted(p.name for p in live_file.parent.iterdir()) == [live_file.name]


def test_cli_infer_live_appends_once(
    first_run: live.LiveResult, runs: TinyRuns, tmp_path: Path
) -> None:
    env = runs.write_env(tmp_path)
    data = _bars_file(tmp_path, TINY_BARS + 20)
    before = pl.read_parquet(_live_file(runs)).height
    command = ["infer", "--live", "--env", str(env), "--data", data]
    result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    added = pl.read_parquet(_live_file(runs)).height - before
    assert f"live predictions: {added} new" in result.output
    assert added > 0 and added % GROUPS == 0
    rerun = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
    assert rerun.exit_code == 0 and "live predictions: 0 new" in rerun.output


def test_infer_without_live_is_a_usage_error(runs: TinyRuns, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["infer", "--env", str(runs.write_env(tmp_path))])
    assert result.exit_code == 2
    assert "only --live is supported" in result.output
    assert "Traceback" not in result.output


def test_tampered_champion_is_refused(tiny_runs: TinyRuns, tmp_path: Path) -> None:
    runs = clone_runs(tiny_runs, tmp_path)
    registry = ModelRegistry(root=runs.runs_dir / "registry")
    champion = registry.champion("alphafactory.BTC_w10_low")
    assert champion is not None
    stored = Path(urlparse(registry.info(champion.model_id).source).path) / champion.artifact_file
    stored.write_bytes(stored.read_bytes() + b"\n")
    with pytest.raises(ModelError, match=r"BTC_w10_low\.zip has sha256 .* was recorded"):
        run_live(runs.config, str(runs.runs_dir), registry, first_bars=5)
    assert not _live_file(runs).exists()
    result = CliRunner().invoke(
        app, ["infer", "--live", "--env", str(runs.write_env(tmp_path))], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 2
    assert "error:" in result.output and "was modified or corrupted" in result.output
    assert "Traceback" not in result.output

"""`alphafactory run --source exchange --symbols ...` end to end against a local server that
replays Binance's API: the fetch happens once, before the run, into the raw-bar cache; every
task reads that cache (no further request), and the run's lineage names the source."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml
from replay_apis import BinanceReplay
from replay_server import refuse_internet, serving
from test_cli_run import TINY_ENV
from typer.testing import CliRunner

from alphafactory.cli import app
from alphafactory.data.synthetic import generate_bars
from pipelines.local import prepare_local_run

T0 = datetime(2024, 1, 1, tzinfo=UTC)
N_BARS = 1500
KLINES = "/api/v3/klines"


def market(seed: int) -> pl.DataFrame:
    return generate_bars(["X"], n_bars=N_BARS, seed=seed, start=T0).drop("symbol")


MARKETS = {"BTCUSDT": market(21), "ETHUSDT": market(22)}


def _env(tmp_path: Path, base_url: str, **data: object) -> Path:
    settings = json.loads(json.dumps(TINY_ENV))
    until = MARKETS["BTCUSDT"]["timestamp"][-1].isoformat()
    exchange = {"exchange": "binance", "symbols": ["BTC/USDT"], "since": T0.isoformat(),
                "until": until, "base_url": base_url, "retry_seconds": 0.01}  # fmt: skip
    settings["data"] = {"source": "exchange", "frequency": "1h", "exchange": exchange, **data}
    path = tmp_path / "exchange.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_internet(monkeypatch)


@pytest.mark.slow
def test_run_with_an_exchange_source_fetches_once_and_records_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with serving(BinanceReplay(MARKETS).routes()) as server:
        result = CliRunner().invoke(
            app,
            ["run", "--env", str(_env(tmp_path, server.base_url)), "--runs-dir", str(runs),
             "--source", "exchange", "--symbols", "BTC/USDT,ETH/USDT"],
        )  # fmt: skip
        asked = server.paths(KLINES)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert "over BTC-USDT, ETH-USDT" in first and "data: exchange binance BTC/USDT" in first
    assert "warning" not in result.output
    # 1500 bars per market at Binance's 1000 per page: 2 pages each, all asked before the run
    assert sorted(q["symbol"] for q in asked) == ["BTCUSDT", "BTCUSDT", "ETHUSDT", "ETHUSDT"]
    run_dir = next(p for p in runs.iterdir() if (p / "run.json").exists())
    origin = json.loads((run_dir / "prepare" / "source.json").read_text())
    assert origin["source"] == "exchange" and origin["fallback"] is False
    assert origin["symbols"] == {"BTC/USDT": "BTC-USDT", "ETH/USDT": "ETH-USDT"}
    predictions = pl.read_parquet(run_dir / "infer" / "predictions.parquet")
    symbols = {gid.rsplit("_w", 1)[0] for gid in predictions["group_id"].unique()}
    assert predictions.height > 0 and symbols <= {"BTC-USDT", "ETH-USDT"}
    assert "data: exchange binance BTC/USDT, ETH/USDT (1h)" in (run_dir / "report.md").read_text()


def test_a_configured_fallback_is_announced_before_the_run(tmp_path: Path) -> None:
    """The exchange answers nothing useful: with `fallback: synthetic` the plan carries the
    warning the CLI prints (the source line names the error); without it the run is refused."""
    with serving({}) as server:  # every path answers 404
        env = _env(tmp_path, server.base_url, fallback="synthetic")
        plan = prepare_local_run(str(env), runs_dir=tmp_path / "runs")
    assert plan.data_warning.startswith("source: synthetic (fallback after: exchange binance")
    assert "data: synthetic (fallback after:" in plan.summary

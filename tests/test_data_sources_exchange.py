"""`data.source: exchange` through ccxt's own Binance client, pointed at a local server that
replays Binance's answers: pages, a rate-limit answer, errors, a gap, the raw-bar cache and
the explicit synthetic fallback. No test reaches the internet (the guard refuses it)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from replay_apis import RATE_LIMITED, UNAVAILABLE, BinanceReplay, epoch_ms
from replay_server import Fault, InternetRefused, ReplayServer, Reply, refuse_internet

from alphafactory.config import DataConfig, EnvironmentConfig, load_environment
from alphafactory.data.bars import data_hash, validate_bars
from alphafactory.data.sources import load_source
from alphafactory.data.synthetic import generate_bars
from alphafactory.errors import ConfigError, DataError
from alphafactory.layout import RunLayout, read_plan
from alphafactory.stages import run_prepare
from alphafactory.stages.prepare import load_run_bars

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
KLINES = "/api/v3/klines"
SMALL_GRID = {"windows": [3, 10], "swing_types": ["high", "low"], "std_thresholds": [1.0],
              "move_thresholds": [1.0], "horizons": [6]}  # fmt: skip


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_internet(monkeypatch)


def market_bars(n: int, seed: int) -> pl.DataFrame:
    """Hourly bars from T0 as an exchange holds them (no symbol column)."""
    return generate_bars(["X"], n_bars=n, seed=seed, start=T0).drop("symbol")


BTC, ETH = market_bars(12, 11), market_bars(12, 12)


def environment(base_url: str, **exchange: Any) -> EnvironmentConfig:
    base = load_environment("local-dev", use_env_vars=False)
    settings = {"symbols": ["BTC/USDT", "ETH/USDT"], "since": T0, "until": T0 + 8 * HOUR,
                "base_url": base_url, "retry_seconds": 0.01, **exchange}  # fmt: skip
    data = DataConfig.model_validate(
        {**base.data.model_dump(), "source": "exchange", "exchange": settings}
    )
    return base.model_copy(update={"data": data, "grid": base.grid.model_validate(SMALL_GRID)})


def with_fallback(config: EnvironmentConfig) -> EnvironmentConfig:
    return config.model_copy(
        update={"data": config.data.model_copy(update={"fallback": "synthetic"})}
    )


def expected(frames: dict[str, pl.DataFrame], n: int | None = None) -> pl.DataFrame:
    named = [
        (f.head(n) if n else f).with_columns(pl.lit(s).alias("symbol")) for s, f in frames.items()
    ]
    return validate_bars(pl.concat(named), "expected")


def klines_asked(server: ReplayServer) -> list[tuple[str, int, str]]:
    """(market, start hour after T0, limit) of every klines request, in order."""
    return [
        (q["symbol"], (int(q["startTime"]) - epoch_ms(T0)) // 3_600_000, q["limit"])
        for q in server.paths(KLINES)
    ]


def test_the_guard_refuses_connections_off_this_machine() -> None:
    with pytest.raises(InternetRefused, match="tests stay offline"):
        socket.create_connection(("93.184.216.34", 443), timeout=1)
    with pytest.raises(InternetRefused, match="look up api.binance.com"):
        socket.getaddrinfo("api.binance.com", 443)


def test_pages_walk_the_range_at_the_page_limit_and_give_the_exact_bars(tmp_path: Path) -> None:
    with ReplayServer(BinanceReplay({"BTCUSDT": BTC, "ETHUSDT": ETH}).routes()) as server:
        loaded = load_source(environment(server.base_url, page_limit=3), str(tmp_path))
    assert_frame_equal(loaded.bars, expected({"BTC-USDT": BTC, "ETH-USDT": ETH}, 8))
    assert klines_asked(server) == [
        ("BTCUSDT", 0, "3"), ("BTCUSDT", 3, "3"), ("BTCUSDT", 6, "3"),
        ("ETHUSDT", 0, "3"), ("ETHUSDT", 3, "3"), ("ETHUSDT", 6, "3"),
    ]  # fmt: skip
    assert all(q["interval"] == "1h" for q in server.paths(KLINES))
    assert len(server.paths("/api/v3/exchangeInfo")) == 1  # markets loaded once
    assert loaded.origin.line == "source: exchange binance BTC/USDT, ETH/USDT (1h)"
    assert loaded.origin.symbols == {"BTC/USDT": "BTC-USDT", "ETH/USDT": "ETH-USDT"}


def test_without_a_page_limit_the_exchange_s_own_limit_is_used(tmp_path: Path) -> None:
    with ReplayServer(BinanceReplay({"BTCUSDT": BTC, "ETHUSDT": ETH}).routes()) as server:
        load_source(environment(server.base_url, symbols=["BTC/USDT"]), str(tmp_path))
    assert klines_asked(server) == [("BTCUSDT", 0, "1000")]  # ccxt: Binance spot pages 1000


def test_a_rate_limit_answer_is_retried_after_a_back_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    replay = BinanceReplay({"BTCUSDT": BTC, "ETHUSDT": ETH})
    faults = [Fault(KLINES, RATE_LIMITED, query={"symbol": "ETHUSDT"})]
    with ReplayServer(replay.routes(), faults) as server:
        loaded = load_source(environment(server.base_url, page_limit=5), str(tmp_path))
    assert_frame_equal(loaded.bars, expected({"BTC-USDT": BTC, "ETH-USDT": ETH}, 8))
    assert klines_asked(server) == [
        ("BTCUSDT", 0, "5"), ("BTCUSDT", 5, "5"),
        ("ETHUSDT", 0, "5"), ("ETHUSDT", 0, "5"), ("ETHUSDT", 5, "5"),
    ]  # fmt: skip
    assert (
        "exchange binance: ETH/USDT: DDoSProtection: binance 429 Too Many Requests" in caplog.text
    )
    assert "retrying in 0.01s" in caplog.text


def test_an_unknown_market_is_refused_in_one_line_naming_source_and_symbol(tmp_path: Path) -> None:
    with ReplayServer(BinanceReplay({"BTCUSDT": BTC}).routes()) as server:
        config = environment(server.base_url, symbols=["BTC/USDT", "XRP/USDT"])
        with pytest.raises(DataError) as raised:
            load_source(config, str(tmp_path))
    assert str(raised.value) == (
        "exchange binance: XRP/USDT: BadSymbol: binance does not have market symbol XRP/USDT; "
        "check the symbol, the network and the service's status"
    )
    assert [q["symbol"] for q in server.paths(KLINES)] == ["BTCUSDT"]


def test_an_error_answer_is_not_retried(tmp_path: Path) -> None:
    invalid = Reply(400, {"code": -1121, "msg": "Invalid symbol."})
    routes, faults = BinanceReplay({"BTCUSDT": BTC}).routes(), [Fault(KLINES, invalid)]
    with ReplayServer(routes, faults) as server, pytest.raises(DataError) as raised:
        load_source(environment(server.base_url, symbols=["BTC/USDT"]), str(tmp_path))
    assert str(raised.value).startswith(
        'exchange binance: BTC/USDT: BadSymbol: binance {"code": -1121, "msg": "Invalid symbol."}'
    )
    assert len(server.paths(KLINES)) == 1


def test_an_outage_fails_loudly_without_a_fallback(tmp_path: Path) -> None:
    faults = [Fault(KLINES, UNAVAILABLE, times=100)]
    routes = BinanceReplay({"BTCUSDT": BTC}).routes()
    with ReplayServer(routes, faults) as server, pytest.raises(DataError) as raised:
        load_source(environment(server.base_url, max_retries=1), str(tmp_path))
    message = str(raised.value)
    assert message.startswith("exchange binance: BTC/USDT: ExchangeNotAvailable: ")
    assert message.endswith(
        "after 2 attempts; check the symbol, the network and the service's status"
    )
    assert "\n" not in message
    assert len(server.paths(KLINES)) == 2


def test_the_configured_fallback_is_synthetic_bars_marked_as_such(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    faults = [Fault(KLINES, UNAVAILABLE, times=100)]
    with ReplayServer(BinanceReplay({"BTCUSDT": BTC}).routes(), faults) as server:
        config = with_fallback(environment(server.base_url, max_retries=0))
        loaded = load_source(config, str(tmp_path))
    oracle = generate_bars(["BTC-USDT", "ETH-USDT"], n_bars=8, frequency="1h", seed=7, start=T0)
    assert_frame_equal(loaded.bars, oracle)
    assert loaded.origin.fallback and loaded.truth is None
    assert loaded.origin.line.startswith(
        "source: synthetic (fallback after: exchange binance: BTC/USDT: ExchangeNotAvailable: "
    )
    assert loaded.origin.line.endswith("service's status)")
    assert loaded.origin.line in caplog.text
    assert not (tmp_path / "bars-cache").exists()  # nothing fetched, nothing cached


def test_a_gap_stays_a_gap_and_paging_goes_on_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = market_bars(60, 13)
    gapped = pl.concat([full[:10], full[40:]])  # the exchange has no bars for 30 hours
    with ReplayServer(BinanceReplay({"BTCUSDT": gapped}).routes()) as server:
        config = environment(server.base_url, symbols=["BTC/USDT"], page_limit=8,
                             until=T0 + 60 * HOUR)  # fmt: skip
        loaded = load_source(config, str(tmp_path))
    assert_frame_equal(loaded.bars, expected({"BTC-USDT": gapped}))
    assert klines_asked(server) == [
        ("BTCUSDT", 0, "8"), ("BTCUSDT", 8, "8"), ("BTCUSDT", 46, "8"), ("BTCUSDT", 54, "8")
    ]  # fmt: skip
    assert "symbol BTC-USDT has 1 gap(s) longer than 20x its median bar interval" in caplog.text


def test_a_later_call_reads_the_cache_and_fetches_only_the_new_bars(tmp_path: Path) -> None:
    replay = BinanceReplay({"BTCUSDT": BTC, "ETHUSDT": ETH})
    with ReplayServer(replay.routes()) as server:
        first = load_source(environment(server.base_url, page_limit=4), str(tmp_path))
        first_requests = len(server.requests)
        later = environment(server.base_url, page_limit=4, until=T0 + 12 * HOUR)
        second = load_source(later, str(tmp_path))
        second_requests = len(server.requests) - first_requests
        again = load_source(later, str(tmp_path))
    assert_frame_equal(first.bars, expected({"BTC-USDT": BTC, "ETH-USDT": ETH}, 8))
    assert_frame_equal(second.bars, expected({"BTC-USDT": BTC, "ETH-USDT": ETH}, 12))
    assert_frame_equal(again.bars, second.bars)
    assert klines_asked(server) == [
        ("BTCUSDT", 0, "4"), ("BTCUSDT", 4, "4"), ("ETHUSDT", 0, "4"), ("ETHUSDT", 4, "4"),
        ("BTCUSDT", 8, "4"), ("ETHUSDT", 8, "4"),
    ]  # fmt: skip
    # Markets (spot, USD-M and COIN-M futures: 3 requests), then 4 pages; later 3 + 2 pages.
    assert (first_requests, second_requests) == (7, 5)
    assert len(server.requests) == first_requests + second_requests  # the third: none at all
    manifests = sorted((tmp_path / "bars-cache" / "exchange").glob("*.json"))
    assert [m.name.split("-1h-")[0] for m in manifests] == ["BTC-USDT", "ETH-USDT"]
    covered = json.loads(manifests[0].read_text())["covered"]
    assert covered == {"start": T0.isoformat(), "end": (T0 + 12 * HOUR).isoformat()}


def test_without_until_only_closed_bars_are_used(tmp_path: Path) -> None:
    with ReplayServer(BinanceReplay({"BTCUSDT": BTC}).routes()) as server:
        config = environment(server.base_url, symbols=["BTC/USDT"], since=None, until=None)
        # At 10:30 the 10:00 bar is still open and the 09:00 bar has closed.
        loaded = load_source(config, str(tmp_path), now=T0 + 10.5 * HOUR)
    assert_frame_equal(loaded.bars, expected({"BTC-USDT": BTC}, 10))
    assert loaded.origin.window is not None
    assert loaded.origin.window.end == T0 + 9.5 * HOUR
    assert loaded.origin.window.start == T0 + 9.5 * HOUR - config.data.n_bars * HOUR


def test_unknown_exchanges_and_timeframes_are_refused_before_any_request(tmp_path: Path) -> None:
    with ReplayServer(BinanceReplay({"BTCUSDT": BTC}).routes()) as server:
        with pytest.raises(ConfigError, match="'binanse' is not a ccxt exchange id"):
            load_source(
                with_fallback(environment(server.base_url, exchange="binanse")), str(tmp_path)
            )
        config = environment(server.base_url)
        data = config.data.model_copy(update={"frequency": "7h"})
        with pytest.raises(ConfigError, match="'7h': exchange binance has no such timeframe"):
            load_source(config.model_copy(update={"data": data}), str(tmp_path))
    assert server.requests == []


def _prepare(config: EnvironmentConfig, runs: Path) -> tuple[dict[str, Any], RunLayout]:
    run_dir = runs / "run-1"
    metrics = run_prepare(config, str(run_dir))
    return metrics, RunLayout(str(run_dir))


def test_prepare_records_the_source_and_the_run_reads_the_same_bars_again(tmp_path: Path) -> None:
    btc, eth = market_bars(300, 21), market_bars(300, 22)
    with ReplayServer(BinanceReplay({"BTCUSDT": btc, "ETHUSDT": eth}).routes()) as server:
        config = environment(server.base_url, until=T0 + 300 * HOUR)
        metrics, layout = _prepare(config, tmp_path / "runs")
        before = len(server.requests)
        again = load_run_bars(config, layout.root)
        assert len(server.requests) == before  # read from the cache
    bars = expected({"BTC-USDT": btc, "ETH-USDT": eth})
    plan = read_plan(layout)
    assert plan.symbols == ["BTC-USDT", "ETH-USDT"] and plan.data_hash == data_hash(bars)
    assert data_hash(again) == plan.data_hash
    origin = json.loads(Path(layout.bars_origin).read_text())
    assert origin["line"] == "source: exchange binance BTC/USDT, ETH/USDT (1h)"
    assert (origin["fallback"], origin["fallback_error"]) == (False, None)
    assert origin["window"] == {"start": T0.isoformat(), "end": (T0 + 300 * HOUR).isoformat()}
    assert metrics["synthetic_fallback"] == 0


def test_prepare_of_a_fallback_run_records_the_marker(tmp_path: Path) -> None:
    faults = [Fault(KLINES, UNAVAILABLE, times=100)]
    with ReplayServer(BinanceReplay({"BTCUSDT": BTC}).routes(), faults) as server:
        config = with_fallback(environment(server.base_url, max_retries=0,
                                           until=T0 + 300 * HOUR))  # fmt: skip
        metrics, layout = _prepare(config, tmp_path / "runs")
        before = len(server.requests)
        again = load_run_bars(config, layout.root)
        assert len(server.requests) == before  # the same fallback, not a new fetch
    origin = json.loads(Path(layout.bars_origin).read_text())
    assert origin["fallback"] is True
    assert origin["line"] == f"source: synthetic (fallback after: {origin['fallback_error']})"
    assert origin["fallback_error"].startswith("exchange binance: BTC/USDT: ExchangeNotAvailable")
    assert metrics["synthetic_fallback"] == 1
    assert data_hash(again) == read_plan(layout).data_hash
    assert read_plan(layout).symbols == ["BTC-USDT", "ETH-USDT"]

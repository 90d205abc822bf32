"""`data.source: yahoo` through yfinance's own client, every request sent to a local server
that replays Yahoo Finance's chart API (the source's `base_url` session rewrites the hosts
yfinance has built in). Python sockets and yfinance's HTTP client (curl_cffi, which opens its
own sockets) are both guarded: nothing leaves this machine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from replay_apis import YahooReplay
from replay_server import LOCAL_HOSTS, Fault, InternetRefused, ReplayServer, Reply, refuse_internet

from alphafactory.config import DataConfig, EnvironmentConfig, load_environment
from alphafactory.data.bars import validate_bars
from alphafactory.data.sources import load_source
from alphafactory.errors import ConfigError, DataError

SINCE, UNTIL = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 13, tzinfo=UTC)
#: Yahoo stamps a daily bar at the session's open (09:30 in New York, 14:30 UTC in winter);
#: yfinance dates it at midnight New York time (05:00 UTC).
SESSION_OPEN, NEW_YORK_MIDNIGHT = timedelta(hours=14, minutes=30), timedelta(hours=5)
WEEKDAYS = [datetime(2024, 1, d, tzinfo=UTC) for d in (2, 3, 4, 5, 8, 9, 10, 11, 12, 15, 16)]


@pytest.fixture(scope="module")
def yfinance_state(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """yfinance keeps a timezone and cookie cache on disk: here, in a temporary folder."""
    import yfinance

    yfinance.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))
    return yfinance


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, yfinance_state: Any) -> Iterator[None]:
    from curl_cffi import requests as curl
    from yfinance.data import YfData

    refuse_internet(monkeypatch)
    send = curl.Session.request

    def local_only(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if urlsplit(url).hostname not in LOCAL_HOSTS:
            raise InternetRefused(f"a test tried to reach {url}: tests stay offline")
        return send(session, method, url, *args, **kwargs)

    monkeypatch.setattr(curl.Session, "request", local_only)
    # yfinance memoises answers per URL in memory; each test's server answers afresh.
    YfData.cache_get.cache_clear()
    yield
    YfData.cache_get.cache_clear()


def reported(closes: list[float], stamps: list[datetime] | None = None) -> pl.DataFrame:
    """Bars as Yahoo reports them: by default daily, stamped at the session open."""
    stamps = stamps or [day + SESSION_OPEN for day in WEEKDAYS]
    return pl.DataFrame({
        "timestamp": pl.Series(stamps[: len(closes)], dtype=pl.Datetime("us", "UTC")),
        "open": [c - 0.5 for c in closes], "high": [c + 1.25 for c in closes],
        "low": [c - 1.75 for c in closes], "close": closes,
        "volume": [float(40_000_000 + 1_000 * i) for i in range(len(closes))],
    })  # fmt: skip


AAPL = reported([185.64, 184.25, 181.91, 181.18, 185.56, 185.14, 186.19, 185.59, 185.92,
                 183.63, 182.68])  # fmt: skip
GSPC = reported([4742.83, 4704.81, 4688.68, 4697.24, 4763.54, 4756.50, 4783.45, 4780.24,
                 4783.83, 4765.98, 4739.21])  # fmt: skip


def expected(frames: dict[str, pl.DataFrame], until: datetime = UNTIL) -> pl.DataFrame:
    dated = pl.col("timestamp") - SESSION_OPEN + NEW_YORK_MIDNIGHT
    named = [
        f.filter(pl.col("timestamp") < until).with_columns(dated, pl.lit(s).alias("symbol"))
        for s, f in frames.items()
    ]
    return validate_bars(pl.concat(named), "expected")


def environment(base_url: str, **yahoo: Any) -> EnvironmentConfig:
    base = load_environment("local-dev", use_env_vars=False)
    settings = {"symbols": ["AAPL", "^GSPC"], "since": SINCE, "until": UNTIL,
                "base_url": base_url, "retry_seconds": 0.01, **yahoo}  # fmt: skip
    data = DataConfig.model_validate(
        {**base.data.model_dump(), "source": "yahoo", "frequency": "1d", "yahoo": settings}
    )
    return base.model_copy(update={"data": data})


def history_requests(server: ReplayServer) -> list[tuple[str, int, int, str]]:
    """(path, period1, period2, interval) of every price request (not the timezone look-up)."""
    return [
        (r.path, int(r.query["period1"]), int(r.query["period2"]), r.query["interval"])
        for r in server.requests
        if "period1" in r.query
    ]


def routes() -> dict[str, Any]:
    return YahooReplay({"AAPL": AAPL, "^GSPC": GSPC}).routes()


def test_daily_bars_arrive_exactly_in_utc_under_safe_names(tmp_path: Path) -> None:
    with ReplayServer(routes()) as server:
        loaded = load_source(environment(server.base_url), str(tmp_path))
    assert_frame_equal(loaded.bars, expected({"AAPL": AAPL, "GSPC": GSPC}))
    start, end = int(SINCE.timestamp()), int(UNTIL.timestamp())
    assert history_requests(server) == [
        ("/v8/finance/chart/AAPL", start, end, "1d"),
        ("/v8/finance/chart/^GSPC", start, end, "1d"),
    ]
    assert all(urlsplit(r.path).path.startswith("/") for r in server.requests)
    assert loaded.origin.line == "source: yahoo AAPL, ^GSPC (1d)"
    assert loaded.origin.symbols == {"AAPL": "AAPL", "^GSPC": "GSPC"}


def test_a_rate_limit_answer_is_retried(tmp_path: Path) -> None:
    limited = Reply(429, "Too Many Requests", {"Content-Type": "text/plain"})
    prices = {"events": "div,splits,capitalGains"}  # not the timezone look-up
    faults = [Fault("/v8/finance/chart/AAPL", limited, times=2, query=prices)]
    with ReplayServer(routes(), faults) as server:
        loaded = load_source(environment(server.base_url, symbols=["AAPL"]), str(tmp_path))
    assert_frame_equal(loaded.bars, expected({"AAPL": AAPL}))
    asked = history_requests(server)
    assert len(asked) == 3 and len(set(asked)) == 1  # two refused, then answered


def test_a_symbol_without_prices_is_refused_naming_source_and_symbol(tmp_path: Path) -> None:
    with ReplayServer(routes()) as server, pytest.raises(DataError) as raised:
        load_source(environment(server.base_url, symbols=["AAPL", "NOPE"]), str(tmp_path))
    message = str(raised.value)
    assert message.startswith("yahoo: NOPE: ")
    assert message.endswith("; check the symbol, the network and the service's status")
    assert "\n" not in message


def test_a_later_call_fetches_only_the_days_the_cache_lacks(tmp_path: Path) -> None:
    later = datetime(2024, 1, 17, tzinfo=UTC)
    with ReplayServer(routes()) as server:
        first = load_source(environment(server.base_url, symbols=["AAPL"]), str(tmp_path))
        second = load_source(
            environment(server.base_url, symbols=["AAPL"], until=later), str(tmp_path)
        )
    assert_frame_equal(first.bars, expected({"AAPL": AAPL}))
    assert_frame_equal(second.bars, expected({"AAPL": AAPL}, later))
    assert [(p1, p2) for _, p1, p2, _ in history_requests(server)] == [
        (int(SINCE.timestamp()), int(UNTIL.timestamp())),
        (int(UNTIL.timestamp()), int(later.timestamp())),
    ]


def test_hourly_bars_keep_their_times_in_utc(tmp_path: Path) -> None:
    day_one, day_two = datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC)
    hours = [day + SESSION_OPEN + k * timedelta(hours=1) for day in (day_one, day_two)
             for k in range(7)]  # fmt: skip
    closes = [185.0 + 0.25 * k for k in range(len(hours))]
    hourly = reported(closes, hours)
    with ReplayServer(YahooReplay({"AAPL": hourly}, interval="1h").routes()) as server:
        config = environment(
            server.base_url, symbols=["AAPL"], until=datetime(2024, 1, 4, tzinfo=UTC)
        )
        data = config.data.model_copy(update={"frequency": "1h"})
        loaded = load_source(config.model_copy(update={"data": data}), str(tmp_path))
    assert_frame_equal(loaded.bars, validate_bars(hourly.with_columns(symbol=pl.lit("AAPL")), "x"))
    assert [r[3] for r in history_requests(server)] == ["1h"]


def test_intervals_yahoo_does_not_serve_are_refused_before_any_request(tmp_path: Path) -> None:
    with ReplayServer(routes()) as server:
        config = environment(server.base_url)
        data = config.data.model_copy(update={"frequency": "4h"})
        with pytest.raises(ConfigError, match="'4h': Yahoo has no such interval; use one of 1m"):
            load_source(config.model_copy(update={"data": data}), str(tmp_path))
    assert server.requests == []


def test_a_failed_fetch_with_the_fallback_is_marked(tmp_path: Path) -> None:
    error = {"code": "Internal Server Error", "description": "server down"}
    down = Reply(500, {"chart": {"result": None, "error": error}})
    with ReplayServer({"*": lambda request: down}) as server:
        config = environment(server.base_url, symbols=["AAPL"], max_retries=0)
        config = config.model_copy(
            update={"data": config.data.model_copy(update={"fallback": "synthetic"})}
        )
        loaded = load_source(config, str(tmp_path))
    assert loaded.origin.fallback
    assert loaded.origin.line.startswith("source: synthetic (fallback after: ")
    assert loaded.origin.line.endswith(")")
    assert loaded.bars["symbol"].unique().to_list() == ["AAPL"]
    assert loaded.bars["timestamp"].min() == SINCE and loaded.bars.height == 12  # 12 days

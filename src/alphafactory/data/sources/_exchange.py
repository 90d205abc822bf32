"""Crypto OHLCV bars from an exchange through ccxt (`pip install 'alphafactory[sources]'`).

Pages of at most the exchange's own page limit (ccxt's `features`, or `page_limit`) walk the
range forward from its start; ccxt's `enableRateLimit` spaces the requests by the exchange's
rate limit, and a rate-limit answer or timeout is retried after a back-off.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from alphafactory.config.schema import DataConfig
from alphafactory.config.sources import ExchangeConfig
from alphafactory.data.sources._base import Window, require_extra
from alphafactory.data.sources._network import (
    BAR_COLUMNS,
    NetworkSource,
    bar_frame,
    rebase_urls,
    with_retries,
)
from alphafactory.data.synthetic import frequency_to_timedelta
from alphafactory.errors import ConfigError

#: Bars per request when neither ccxt's features nor `page_limit` give one.
DEFAULT_PAGE_LIMIT = 500
_MS_PER_SECOND = 1000


class ExchangeSource(NetworkSource):
    """`data.source: exchange`: one ccxt exchange, the markets of `data.exchange.symbols`."""

    name = "exchange"

    def settings(self, data: DataConfig) -> ExchangeConfig:
        assert data.exchange is not None, "DataConfig refuses source exchange without settings"
        return data.exchange

    def open_client(self, settings: ExchangeConfig, interval: str) -> ExchangeClient:
        return ExchangeClient(settings, interval)

    def identity(self, settings: ExchangeConfig, symbol: str, interval: str) -> dict[str, Any]:
        return {**super().identity(settings, symbol, interval), "exchange": settings.exchange}


def open_exchange(settings: ExchangeConfig, interval: str) -> Any:
    """The ccxt exchange object (no request made), refused when the id or interval is unknown."""
    ccxt = require_extra("ccxt")
    if settings.exchange not in ccxt.exchanges:
        raise ConfigError(
            f"data.exchange.exchange {settings.exchange!r} is not a ccxt exchange id; use one "
            "of ccxt.exchanges such as binance, bybit, coinbase, kraken, okx"
        )
    exchange = getattr(ccxt, settings.exchange)({"enableRateLimit": True})
    if settings.base_url:
        exchange.urls["api"] = rebase_urls(exchange.urls["api"], settings.base_url)
    timeframes = exchange.timeframes or {}
    if interval not in timeframes:
        raise ConfigError(
            f"data.frequency {interval!r}: exchange {settings.exchange} has no such timeframe; "
            f"it offers {', '.join(timeframes) or 'none'}"
        )
    return exchange


class ExchangeClient:
    """Pages through one exchange's OHLCV bars of one timeframe."""

    def __init__(self, settings: ExchangeConfig, interval: str) -> None:
        self.settings = settings
        self.interval = interval
        self.exchange = open_exchange(settings, interval)
        ccxt = require_extra("ccxt")
        self.transient: tuple[type[BaseException], ...] = (ccxt.NetworkError,)
        self.step_ms = int(frequency_to_timedelta(interval).total_seconds() * _MS_PER_SECOND)

    def fetch(self, symbol: str, window: Window) -> pl.DataFrame:
        where = f"exchange {self.settings.exchange}: {symbol}"
        self._call(self.exchange.load_markets, where)
        limit = self._page_limit(symbol, where)
        since = int(window.start.timestamp() * _MS_PER_SECOND)
        end = int(window.end.timestamp() * _MS_PER_SECOND)
        rows: list[list[Any]] = []
        while since < end:
            page = self._call(
                lambda start=since: self.exchange.fetch_ohlcv(
                    symbol, self.interval, since=start, limit=limit
                ),
                where,
            )
            fresh = [row for row in page if row[0] >= since]
            if not fresh:
                # No bar in this page's span (a gap on an exchange that pages by time, or
                # the end of its data): look at the next span.
                since += limit * self.step_ms
                continue
            rows.extend(row for row in fresh if row[0] < end)
            since = int(fresh[-1][0]) + self.step_ms
        return _ohlcv_frame(rows)

    def _call(self, call: Any, where: str) -> Any:
        return with_retries(call, self.transient, self.settings, where)

    def _page_limit(self, symbol: str, where: str) -> int:
        if self.settings.page_limit is not None:
            return self.settings.page_limit
        market = self._call(lambda: self.exchange.market(symbol), where)
        features = (self.exchange.features or {}).get(market.get("type") or "spot") or {}
        if "fetchOHLCV" not in features:  # derivatives: one level per settlement kind
            features = features.get("linear" if market.get("linear") else "inverse") or {}
        limit = (features.get("fetchOHLCV") or {}).get("limit")
        return int(limit) if limit else DEFAULT_PAGE_LIMIT


def _ohlcv_frame(rows: list[list[Any]]) -> pl.DataFrame:
    """ccxt's `[ms, open, high, low, close, volume]` rows as a frame of BAR_COLUMNS."""
    if not rows:
        return bar_frame(None)
    frame = pl.DataFrame(rows, schema=list(BAR_COLUMNS), orient="row", infer_schema_length=None)
    stamps = pl.from_epoch(pl.col("timestamp").cast(pl.Int64), time_unit="ms")
    return bar_frame(frame.with_columns(stamps.dt.replace_time_zone("UTC")))

"""Daily and intraday bars of equities, indices and currencies through yfinance.

yfinance (`pip install 'alphafactory[sources]'`) asks Yahoo's chart API for one symbol and
range per request; intraday ranges longer than Yahoo serves in one answer are asked for in
parts. `base_url` sends every request of the client to a mirror or replay server through a
session that rewrites the scheme and host of each URL (yfinance's hosts are fixed).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from alphafactory.config.schema import DataConfig
from alphafactory.config.sources import YahooConfig
from alphafactory.data.sources._base import Window, require_extra
from alphafactory.data.sources._network import (
    NetworkSource,
    NoBars,
    bar_frame,
    rebase_url,
    with_retries,
)
from alphafactory.errors import ConfigError, first_line

#: data.frequency values Yahoo serves, and the longest range one request may ask for.
YAHOO_INTERVALS: dict[str, timedelta | None] = {
    "1m": timedelta(days=7),
    "2m": timedelta(days=60),
    "5m": timedelta(days=60),
    "15m": timedelta(days=60),
    "30m": timedelta(days=60),
    "90m": timedelta(days=60),
    "1h": timedelta(days=730),
    "1d": None,
}
_REQUEST_TIMEOUT_S = 30
_COLUMNS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}


class YahooSource(NetworkSource):
    """`data.source: yahoo`: the symbols of `data.yahoo.symbols` (AAPL, ^GSPC, EURUSD=X)."""

    name = "yahoo"

    def settings(self, data: DataConfig) -> YahooConfig:
        assert data.yahoo is not None, "DataConfig refuses source yahoo without settings"
        return data.yahoo

    def open_client(self, settings: YahooConfig, interval: str) -> YahooClient:
        return YahooClient(settings, interval)

    def identity(self, settings: YahooConfig, symbol: str, interval: str) -> dict[str, Any]:
        return {**super().identity(settings, symbol, interval), "adjusted": settings.auto_adjust}


def check_yahoo_interval(interval: str) -> None:
    if interval not in YAHOO_INTERVALS:
        raise ConfigError(
            f"data.frequency {interval!r}: Yahoo has no such interval; use one of "
            f"{', '.join(YAHOO_INTERVALS)}"
        )


class YahooClient:
    """yfinance's `Ticker.history` for one interval, exceptions raised instead of logged."""

    def __init__(self, settings: YahooConfig, interval: str) -> None:
        check_yahoo_interval(interval)
        self.yfinance = require_extra("yfinance")
        self.yfinance.config.debug.hide_exceptions = False
        exceptions = require_extra("yfinance.exceptions")
        self.transient: tuple[type[BaseException], ...] = (exceptions.YFRateLimitError,)
        self.no_prices = exceptions.YFPricesMissingError
        self.settings = settings
        self.interval = interval
        self.session = None if settings.base_url is None else redirecting_session(settings.base_url)

    def fetch(self, symbol: str, window: Window) -> pl.DataFrame:
        """The bars of `window` in parts Yahoo serves; NoBars when no part holds any."""
        frames: list[pl.DataFrame] = []
        missing: NoBars | None = None
        for part in _parts(window, YAHOO_INTERVALS[self.interval]):

            def history(part: Window = part) -> pl.DataFrame:
                return self._history(symbol, part)

            try:
                frames.append(
                    with_retries(history, self.transient, self.settings, f"yahoo: {symbol}")
                )
            except NoBars as empty:
                missing = empty
        if not frames and missing is not None:
            raise missing
        return pl.concat(frames, how="vertical") if frames else bar_frame(None)

    def _history(self, symbol: str, part: Window) -> pl.DataFrame:
        ticker = self.yfinance.Ticker(symbol, session=self.session)
        try:
            history = ticker.history(
                start=int(part.start.timestamp()), end=int(part.end.timestamp()),
                interval=self.interval, auto_adjust=self.settings.auto_adjust, actions=False,
                prepost=False, repair=False, keepna=False, timeout=_REQUEST_TIMEOUT_S,
            )  # fmt: skip
        except self.no_prices as error:
            raise NoBars(f"yahoo: {symbol}: {first_line(error)}") from error
        return _frame(history)


def _parts(window: Window, longest: timedelta | None) -> list[Window]:
    if longest is None:
        return [window]
    parts, start = [], window.start
    while start < window.end:
        parts.append(Window(start, min(start + longest, window.end)))
        start = parts[-1].end
    return parts


def _frame(history: Any) -> pl.DataFrame:
    """yfinance's pandas frame (index: exchange-local times) as BAR_COLUMNS in UTC."""
    if len(history) == 0:
        return bar_frame(None)
    frame = pl.from_pandas(history.reset_index())
    stamp = frame.columns[0]  # "Date" for daily bars, "Datetime" for intraday
    return frame.select(
        pl.col(stamp).dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC")).alias("timestamp"),
        *(pl.col(column).cast(pl.Float64).alias(name) for column, name in _COLUMNS.items()),
    )


def redirecting_session(base_url: str) -> Any:
    """A curl_cffi session (yfinance's HTTP client) that sends every URL to `base_url`."""
    curl = require_extra("curl_cffi.requests")

    class RedirectingSession(curl.Session):  # type: ignore[name-defined]
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            return super().request(method, rebase_url(url, base_url), *args, **kwargs)

    return RedirectingSession(impersonate="chrome")

"""What the network sources share: the bar range, the cache walk, retries, mirror URLs.

A network source asks its client only for the parts of the range its cache lacks, keeps
only bars that have closed, and stores what it fetched, so a later run reads the cache and
fetches the bars that appeared since. Errors are one line naming the source and the symbol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import polars as pl

from alphafactory.config.schema import DataConfig
from alphafactory.config.sources import FetchConfig
from alphafactory.data.bars import NUMERIC_COLUMNS, validate_bars
from alphafactory.data.sources._base import BarsOrigin, LoadedBars, SourceContext, Window
from alphafactory.data.sources._cache import BarCache, CacheEntry, missing_windows
from alphafactory.data.synthetic import frequency_to_timedelta
from alphafactory.errors import DataError, first_line

log = logging.getLogger(__name__)

#: The columns a client returns and the cache stores (the symbol is added on loading).
BAR_COLUMNS = ("timestamp", *NUMERIC_COLUMNS)
_Result = TypeVar("_Result")


class NoBars(DataError):
    """A client's answer that a part of the range holds no bars (a weekend, a holiday, the
    time before a listing): that part is empty; a symbol left with no bars at all is refused
    with this reason."""


class MarketClient(Protocol):
    """One network source's client for one interval, opened when a fetch is needed."""

    def fetch(self, symbol: str, window: Window) -> pl.DataFrame:
        """`symbol`'s bars with timestamps in `window`: BAR_COLUMNS, timestamps UTC."""
        ...


def fetch_window(data: DataConfig, settings: FetchConfig, context: SourceContext) -> Window:
    """The range of bars to use: pinned, or [since, until) without bars still open at `now`.

    A bar opened less than one interval before `now` may still change, so the range ends
    there at the latest; without `since` it starts `data.n_bars` intervals before its end.
    """
    if context.window is not None:
        return context.window
    interval = frequency_to_timedelta(data.frequency)
    closed = context.now.replace(microsecond=0) - interval
    end = closed if settings.until is None else min(settings.until, closed)
    start = settings.since if settings.since is not None else end - interval * data.n_bars
    if start >= end:
        raise DataError(
            f"{data.label}: the range {start.isoformat()} to {end.isoformat()} holds no closed "
            f"bar of {data.frequency}; move data.{data.source}.since earlier"
        )
    return Window(start, end)


class NetworkSource:
    """A cached source over a `MarketClient`; subclasses name the source and open the client."""

    name = "network"

    def settings(self, data: DataConfig) -> FetchConfig:
        raise NotImplementedError

    def open_client(self, settings: Any, interval: str) -> MarketClient:
        raise NotImplementedError

    def identity(self, settings: Any, symbol: str, interval: str) -> dict[str, Any]:
        """What makes two fetches of `symbol` return the same bars (the cache key)."""
        return {"source": self.name, "symbol": symbol, "interval": interval,
                "base_url": settings.base_url}  # fmt: skip

    def load(self, data: DataConfig, context: SourceContext) -> LoadedBars:
        settings = self.settings(data)
        window = fetch_window(data, settings, context)
        cache = None if context.cache_root is None else BarCache(context.cache_root, self.name)
        clients: list[MarketClient] = []  # opened at the first fetch: a full cache needs none

        def client() -> MarketClient:
            if not clients:
                clients.append(self.open_client(settings, data.frequency))
            return clients[0]

        frames = [
            self._symbol_bars(data, settings, symbol, window, cache, client).with_columns(
                pl.lit(name).alias("symbol")
            )
            for symbol, name in settings.names.items()
        ]
        bars = validate_bars(pl.concat(frames, how="vertical"), data.label)
        origin = BarsOrigin(self.name, data.label, settings.names, window)
        return LoadedBars(bars, origin)

    def _symbol_bars(
        self,
        data: DataConfig,
        settings: FetchConfig,
        symbol: str,
        window: Window,
        cache: BarCache | None,
        client: Callable[[], MarketClient],
    ) -> pl.DataFrame:
        identity = self.identity(settings, symbol, data.frequency)
        path = "" if cache is None else cache.path(settings.names[symbol], data.frequency, identity)
        entry = None if cache is None else cache.read(path, identity)
        covered = None if entry is None else entry.covered
        pieces = [entry.bars] if entry is not None else []
        missing = missing_windows(covered, window)
        reasons = []
        for part in missing:
            log.info("%s: fetching %s bars of %s, %s", self.name, data.frequency, symbol, part)
            try:
                pieces.append(bar_frame(client().fetch(symbol, part)))
            except NoBars as empty:
                reasons.append(first_line(empty))
        bars = pl.concat(pieces, how="vertical") if pieces else bar_frame(None)
        bars = bars.unique("timestamp", keep="last").sort("timestamp")
        used = bars.filter(pl.col("timestamp").is_between(window.start, window.end, "left"))
        if used.height == 0:  # nothing cached either: a later call asks again
            reason = f" ({reasons[-1]})" if reasons else ""
            raise DataError(
                f"{data.label}: symbol {symbol} has no {data.frequency} bars from {window}"
                f"{reason}; check the symbol, data.frequency and the range"
            )
        if cache is not None and missing:
            starts = [window.start] + ([] if covered is None else [covered.start])
            ends = [window.end] + ([] if covered is None else [covered.end])
            cache.write(path, identity, CacheEntry(bars, Window(min(starts), max(ends))))
        return used


def bar_frame(frame: pl.DataFrame | None) -> pl.DataFrame:
    """BAR_COLUMNS in canonical types (an empty frame for None)."""
    if frame is None or frame.height == 0:
        schema = {
            "timestamp": pl.Datetime("us", "UTC"),
            **{c: pl.Float64() for c in NUMERIC_COLUMNS},
        }
        return pl.DataFrame(schema=schema)
    return frame.select(
        pl.col("timestamp").cast(pl.Datetime("us", "UTC")),
        *(pl.col(column).cast(pl.Float64) for column in NUMERIC_COLUMNS),
    )


def with_retries(
    call: Callable[[], _Result],
    transient: tuple[type[BaseException], ...],
    settings: FetchConfig,
    where: str,
) -> _Result:
    """`call()`, again after a back-off while it raises a `transient` error (a rate limit,
    a timeout); any other error, or the last transient one, is a one-line DataError."""
    for attempt in range(settings.max_retries + 1):
        try:
            return call()
        except transient as error:
            if attempt == settings.max_retries:
                raise _fetch_error(where, error, settings.max_retries + 1) from error
            delay = settings.retry_seconds * 2**attempt
            log.warning(
                "%s: %s: %s; retrying in %.2fs",
                where,
                type(error).__name__,
                first_line(error),
                delay,
            )
            time.sleep(delay)
        except DataError:
            raise
        except Exception as error:  # client libraries raise many types: all mean "no bars"
            raise _fetch_error(where, error, attempt + 1) from error
    raise AssertionError("unreachable: the loop returns or raises")


def _fetch_error(where: str, error: BaseException, attempts: int) -> DataError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return DataError(
        f"{where}: {type(error).__name__}: {first_line(error)}{tries}; check the symbol, "
        "the network and the service's status"
    )


def rebase_url(url: str, base_url: str) -> str:
    """`url` on the scheme and host of `base_url` (its path prefix first): a mirror's URL."""
    target, base = urlsplit(url), urlsplit(base_url)
    path = base.path.rstrip("/") + target.path
    return urlunsplit((base.scheme, base.netloc, path, target.query, target.fragment))


def rebase_urls(value: Any, base_url: str) -> Any:
    """Every URL in a (nested) dict or string of URLs, rebased onto `base_url`."""
    if isinstance(value, str):
        return rebase_url(value, base_url)
    if isinstance(value, dict):
        return {key: rebase_urls(item, base_url) for key, item in value.items()}
    return value

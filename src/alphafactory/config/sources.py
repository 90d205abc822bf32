"""The settings of the network data sources (`data.exchange`, `data.yahoo`), and the rule
that names a market symbol's bars.

A market symbol (``BTC/USDT``, ``BTC/USDT:USDT``, ``^GSPC``, ``EURUSD=X``) is what a client
library is asked for; the bars it returns carry the symbol's safe name (it becomes file and
model names): every run of characters outside ``A-Z a-z 0-9 . _ -`` becomes ``-`` and the
ends are trimmed, so ``BTC/USDT`` → ``BTC-USDT``, ``BTC/USDT:USDT`` → ``BTC-USDT-USDT``,
``^GSPC`` → ``GSPC``, ``EURUSD=X`` → ``EURUSD-X``; ``AAPL`` and ``BRK.B`` stay as they are.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from alphafactory.config._strict import Strict as _Strict
from alphafactory.names import SAFE_NAME_RULE, CredentialFreeUri, is_safe_name

__all__ = [
    "EXAMPLE_SYMBOLS",
    "SYMBOL_NAME_RULE",
    "ExchangeConfig",
    "FetchConfig",
    "MarketSymbol",
    "YahooConfig",
    "market_symbol_name",
]

_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
SYMBOL_NAME_RULE = (
    "every run of characters other than letters, digits, '.', '_' and '-' becomes '-' and "
    "the ends are trimmed (BTC/USDT -> BTC-USDT, ^GSPC -> GSPC)"
)


def market_symbol_name(symbol: str) -> str:
    """The safe name of the bars of market symbol `symbol` (see the module docstring).

    Raises:
        ValueError: The name that the rule gives is not a safe name.
    """
    name = _UNSAFE_RUN.sub("-", symbol.strip()).strip("-._")
    if not is_safe_name(name):
        raise ValueError(
            f"market symbol {symbol!r} gives the name {name!r}, not a safe name "
            f"({SYMBOL_NAME_RULE}; a safe name is {SAFE_NAME_RULE})"
        )
    return name


def _market_symbol(value: str) -> str:
    market_symbol_name(value)
    return value.strip()


MarketSymbol = Annotated[str, AfterValidator(_market_symbol)]
"""A config string naming a market (`BTC/USDT`) whose safe name follows the rule above."""


#: Market symbols that messages give as examples, per network source.
EXAMPLE_SYMBOLS = {"exchange": ("BTC/USDT", "ETH/USDT"), "yahoo": ("AAPL", "MSFT", "^GSPC")}


def _utc_datetime(value: Any) -> Any:
    """A YAML date (2023-01-01) is that day's midnight; naive datetimes are UTC."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, BeforeValidator(_utc_datetime), AfterValidator(_as_utc)]


class FetchConfig(_Strict):
    """What a network source fetches: markets, the range [since, until), retries.

    The bar interval is `data.frequency`. Without `since` the range starts `data.n_bars`
    intervals before its end; without `until` it ends at the last closed bar at fetch time.
    """

    symbols: list[MarketSymbol] = Field(min_length=1, description="as the market names them")
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None
    base_url: CredentialFreeUri | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+",
        description="http(s)://host[:port] of a mirror or replay server of the API",
    )
    max_retries: int = Field(default=3, ge=0, description="retries of a rate-limited request")
    retry_seconds: float = Field(default=2.0, ge=0, description="first back-off, then doubled")

    @model_validator(mode="after")
    def _range_and_names(self) -> FetchConfig:
        since, until = self.since, self.until
        if since is not None and until is not None and since >= until:
            raise ValueError(f"since {since.isoformat()} must be before until {until.isoformat()}")
        names = [market_symbol_name(symbol) for symbol in self.symbols]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"symbols {repeated} are repeated (after naming); list each once")
        return self

    @property
    def names(self) -> dict[str, str]:
        """Each market symbol's safe name, in the configured order."""
        return {symbol: market_symbol_name(symbol) for symbol in self.symbols}


class ExchangeConfig(FetchConfig):
    """Crypto OHLCV bars from one exchange through ccxt (the `sources` extra)."""

    exchange: str = Field(default="binance", pattern=r"^[a-z0-9_]+$", description="ccxt id")
    page_limit: int | None = Field(
        default=None, ge=1, description="bars per request; None: the exchange's own limit"
    )


class YahooConfig(FetchConfig):
    """Daily or intraday bars of equities, indices, currencies through yfinance."""

    auto_adjust: bool = Field(default=True, description="prices adjusted for splits/dividends")

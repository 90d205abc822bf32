"""Recorded-format answers of the APIs the network data sources speak, built from given bars:
Binance's spot REST API (exchangeInfo, klines: what ccxt asks for) and Yahoo Finance's chart
API (what yfinance asks for). Numbers travel as the APIs send them (Binance: decimal strings,
Yahoo: JSON numbers), written with Python's shortest round-trip repr so they parse back to
the exact floats given."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from replay_server import Reply, Request, Route

HOUR_MS = 3_600_000
SERVER_TIME_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# ---------------------------------------------------------------------------------- Binance


def binance_market(market_id: str, base: str, quote: str) -> dict[str, object]:
    """One spot market of /api/v3/exchangeInfo, as Binance answers it (trimmed filters)."""
    return {
        "symbol": market_id,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],  # fmt: skip
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _decimal(value: float) -> str:
    return repr(float(value))


class BinanceReplay:
    """Binance's spot API over `bars` (market id such as BTCUSDT -> frame of timestamp and
    OHLCV): klines from `startTime` on, at most `limit`, as the real endpoint pages."""

    def __init__(self, bars: dict[str, pl.DataFrame]) -> None:
        self.bars = bars

    def routes(self) -> dict[str, Route]:
        return {
            "/api/v3/exchangeInfo": self.spot_info,
            "/fapi/v1/exchangeInfo": self.derivatives_info,
            "/dapi/v1/exchangeInfo": self.derivatives_info,
            "/api/v3/klines": self.klines,
        }

    def spot_info(self, request: Request) -> Reply:
        markets = [binance_market(m, m[:-4], m[-4:]) for m in self.bars]
        return Reply(200, {
            "timezone": "UTC", "serverTime": SERVER_TIME_MS,
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                            "intervalNum": 1, "limit": 6000}],
            "exchangeFilters": [], "symbols": markets,
        })  # fmt: skip

    def derivatives_info(self, request: Request) -> Reply:
        return Reply(200, {"timezone": "UTC", "serverTime": SERVER_TIME_MS, "rateLimits": [],
                           "exchangeFilters": [], "assets": [], "symbols": []})  # fmt: skip

    def klines(self, request: Request) -> Reply:
        market = request.query.get("symbol", "")
        if market not in self.bars:
            return Reply(400, {"code": -1121, "msg": "Invalid symbol."})
        frame = self.bars[market].with_columns(pl.col("timestamp").dt.epoch("ms").alias("open_ms"))
        if "startTime" in request.query:
            frame = frame.filter(pl.col("open_ms") >= int(request.query["startTime"]))
        if "endTime" in request.query:
            frame = frame.filter(pl.col("open_ms") <= int(request.query["endTime"]))
        frame = frame.head(int(request.query.get("limit", 500)))
        rows = [
            [opened, _decimal(o), _decimal(h), _decimal(lo), _decimal(c), _decimal(v),
             opened + HOUR_MS - 1, _decimal(v * c), 100, _decimal(v / 2), _decimal(v * c / 2), "0"]
            for opened, o, h, lo, c, v in frame.select(
                "open_ms", "open", "high", "low", "close", "volume"
            ).iter_rows()
        ]  # fmt: skip
        return Reply(200, rows)


RATE_LIMITED = Reply(
    429,
    {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request "
                           "weight per 1 MINUTE. Please use WebSocket Streams for live updates."},
    {"Retry-After": "1"},
)  # fmt: skip
UNAVAILABLE = Reply(503, "<html><body>503 Service Temporarily Unavailable</body></html>",
                    {"Content-Type": "text/html"})  # fmt: skip


# ------------------------------------------------------------------------------------ Yahoo

_NEW_YORK = "America/New_York"


class YahooReplay:
    """Yahoo Finance's chart API over `bars` (symbol -> frame of timestamp and OHLCV), plus
    the cookie and crumb endpoints yfinance visits first."""

    def __init__(self, bars: dict[str, pl.DataFrame], interval: str = "1d") -> None:
        self.bars = bars
        self.interval = interval

    def routes(self) -> dict[str, Route]:
        routes: dict[str, Route] = {
            "/": lambda request: Reply(200, "", {"Content-Type": "text/html"}),
            "/v1/test/getcrumb": lambda request: Reply(
                200, "replay-crumb", {"Content-Type": "text/plain"}
            ),
        }  # fmt: skip
        for symbol in self.bars:
            routes[f"/v8/finance/chart/{symbol}"] = self.chart
        routes["*"] = self.not_found
        return routes

    def not_found(self, request: Request) -> Reply:
        """Yahoo's answers for a symbol it does not know (chart, then quote summary)."""
        symbol = request.path.rsplit("/", 1)[1]
        if request.path.startswith("/v10/finance/quoteSummary/"):
            error = {"code": "Not Found", "description": f"Quote not found for symbol: {symbol}"}
            return Reply(404, {"quoteSummary": {"result": None, "error": error}})
        error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
        return Reply(404, {"chart": {"result": None, "error": error}})

    def meta(self, symbol: str) -> dict[str, object]:
        return {
            "currency": "USD", "symbol": symbol, "exchangeName": "NMS",
            "fullExchangeName": "NasdaqGS", "instrumentType": "EQUITY",
            "firstTradeDate": 345479400, "regularMarketTime": 1704229200,
            "hasPrePostMarketData": True,
            "gmtoffset": -18000, "timezone": "EST", "exchangeTimezoneName": _NEW_YORK,
            "regularMarketPrice": 185.64, "priceHint": 2, "dataGranularity": self.interval,
            "range": "", "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y",
                                         "10y", "ytd", "max"],
        }  # fmt: skip

    def chart(self, request: Request) -> Reply:
        symbol = request.path.rsplit("/", 1)[1]
        frame = self.bars[symbol].with_columns(pl.col("timestamp").dt.epoch("s").alias("epoch"))
        if "period1" in request.query:
            start, end = int(request.query["period1"]), int(request.query["period2"])
            frame = frame.filter(pl.col("epoch").is_between(start, end, "left"))
        else:  # range=1d: the timezone lookup
            frame = frame.tail(1)
        if frame.height == 0:
            return Reply(200, {"chart": {"result": [{
                "meta": self.meta(symbol), "indicators": {"quote": [{}], "adjclose": [{}]},
            }], "error": None}})  # fmt: skip
        close = frame["close"].to_list()
        quote = {column: frame[column].to_list() for column in ("open", "high", "low", "close")}
        quote["volume"] = [int(v) for v in frame["volume"].to_list()]
        meta = self.meta(symbol)
        if self.interval != "1d":  # intraday answers carry the regular sessions they span
            days = sorted({e - e % 86_400 for e in frame["epoch"].to_list()})
            session = {"timezone": "EST", "gmtoffset": -18000}
            meta["tradingPeriods"] = [
                [{**session, "start": day + 52_200, "end": day + 75_600}] for day in days
            ]
        return Reply(200, {"chart": {"result": [{
            "meta": meta,
            "timestamp": frame["epoch"].to_list(),
            "indicators": {"quote": [quote], "adjclose": [{"adjclose": close}]},
        }], "error": None}})  # fmt: skip

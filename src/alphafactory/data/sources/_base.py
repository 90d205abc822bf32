"""The data-source protocol, what a source returns, and the record of where bars came from."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import polars as pl

from alphafactory.config.schema import DataConfig, GridConfig
from alphafactory.errors import ConfigError

#: The optional dependencies of the network sources.
SOURCES_EXTRA = "sources"
#: How the lineage names bars that replaced a failed fetch.
FALLBACK_LABEL = "synthetic (fallback after: {error})"


@dataclass(frozen=True)
class Window:
    """A half-open range of bar timestamps [start, end), both UTC."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, raw: dict[str, str]) -> Window:
        return cls(datetime.fromisoformat(raw["start"]), datetime.fromisoformat(raw["end"]))


@dataclass(frozen=True)
class SourceContext:
    """What a source may use besides the data settings.

    Attributes:
        cache_root: The runs folder: network sources keep raw bars under
            `<cache_root>/bars-cache/`; None keeps no cache.
        grid: The variant grid (the synthetic source's ground truth is per window).
        now: The clock; bars that have not closed by then are never used.
        window: A pinned range (re-reading the bars a run used); None: from the settings.
    """

    cache_root: str | None
    grid: GridConfig
    now: datetime
    window: Window | None = None


@dataclass(frozen=True)
class BarsOrigin:
    """Where a run's bars came from: the lineage record prepare writes to the run folder.

    Attributes:
        source: The configured source (`synthetic`, `file`, `exchange`, `yahoo`).
        description: The configured source in one phrase (`exchange binance BTC/USDT (1h)`).
        symbols: Each market symbol's safe name (network sources; empty otherwise).
        window: The bar range fetched (network sources and their fallback).
        fallback_error: The first line of the failure the synthetic bars replaced; None when
            the bars are the configured source's own.
    """

    source: str
    description: str
    symbols: dict[str, str] = field(default_factory=dict)
    window: Window | None = None
    fallback_error: str | None = None

    @property
    def fallback(self) -> bool:
        """Whether the bars are synthetic stand-ins for a fetch that failed."""
        return self.fallback_error is not None

    @property
    def label(self) -> str:
        """`synthetic (fallback after: <error>)`, or the configured source's description."""
        if self.fallback_error is not None:
            return FALLBACK_LABEL.format(error=self.fallback_error)
        return self.description

    @property
    def line(self) -> str:
        """The lineage line every view of the run shows: `source: <label>`."""
        return f"source: {self.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "description": self.description,
            "symbols": self.symbols,
            "window": None if self.window is None else self.window.to_dict(),
            "fallback": self.fallback,
            "fallback_error": self.fallback_error,
            "line": self.line,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BarsOrigin:
        window = raw.get("window")
        return cls(
            source=str(raw["source"]),
            description=str(raw["description"]),
            symbols={str(k): str(v) for k, v in (raw.get("symbols") or {}).items()},
            window=None if window is None else Window.from_dict(window),
            fallback_error=raw.get("fallback_error"),
        )


@dataclass(frozen=True)
class LoadedBars:
    """Validated bars (`alphafactory.data.bars.validate_bars`), their origin, and for
    synthetic data the ground truth of the planted signal (None for any other data)."""

    bars: pl.DataFrame
    origin: BarsOrigin
    truth: dict[str, Any] | None = None


@runtime_checkable
class DataSource(Protocol):
    """A source of OHLCV bars, selected by `data.source`."""

    name: str

    def load(self, data: DataConfig, context: SourceContext) -> LoadedBars:
        """The bars of the settings `data`, validated, with their origin.

        Raises:
            DataError: The bars cannot be had (network, exchange, file or validation
                failure): one line naming the source and the symbol or file.
            ConfigError: The source cannot run here (its extra is not installed).
        """
        ...


def require_extra(module: str) -> ModuleType:
    """Import a network source's client library, or fail with one line naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(
            f"data.source needs {module}, which is not installed ({error}); install it with "
            f"`pip install 'alphafactory[{SOURCES_EXTRA}]'`"
        ) from None

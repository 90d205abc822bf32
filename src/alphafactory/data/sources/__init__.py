"""Data sources: synthetic bars, a user's file, an exchange (ccxt) and Yahoo (yfinance).

One `DataSource` protocol and a name registry, like the feature generators; the network
sources keep a raw-bar cache under the runs folder and fetch only the bars it lacks.

Example:
    >>> from alphafactory.config import load_environment
    >>> loaded = load_source(load_environment("local-dev"))  # doctest: +SKIP
    >>> loaded.origin.line  # doctest: +SKIP
    'source: synthetic data'
"""

from __future__ import annotations

from alphafactory.data.sources._base import (
    FALLBACK_LABEL,
    SOURCES_EXTRA,
    BarsOrigin,
    DataSource,
    LoadedBars,
    SourceContext,
    Window,
)
from alphafactory.data.sources._cache import CACHE_FOLDER, BarCache
from alphafactory.data.sources._load import (
    load_source,
    read_bars_origin,
    reload_source,
    runs_folder,
    synthetic_fallback,
    with_source,
    write_bars_origin,
)
from alphafactory.data.sources._network import rebase_url
from alphafactory.data.sources._registry import DATA_SOURCES, SOURCE_ALIASES, data_source

__all__ = [
    "CACHE_FOLDER",
    "DATA_SOURCES",
    "FALLBACK_LABEL",
    "SOURCES_EXTRA",
    "SOURCE_ALIASES",
    "BarCache",
    "BarsOrigin",
    "DataSource",
    "LoadedBars",
    "SourceContext",
    "Window",
    "data_source",
    "load_source",
    "read_bars_origin",
    "rebase_url",
    "reload_source",
    "runs_folder",
    "synthetic_fallback",
    "with_source",
    "write_bars_origin",
]

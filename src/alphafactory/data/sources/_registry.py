"""The name registry of data sources (`data.source`)."""

from __future__ import annotations

from alphafactory.data.sources._base import DataSource
from alphafactory.data.sources._exchange import ExchangeSource
from alphafactory.data.sources._local import FileSource, SyntheticSource
from alphafactory.data.sources._yahoo import YahooSource

DATA_SOURCES: dict[str, DataSource] = {
    source.name: source
    for source in (SyntheticSource(), FileSource(), ExchangeSource(), YahooSource())
}
#: Older names of sources, kept so existing environments load unchanged.
SOURCE_ALIASES = {"uri": "file"}


def data_source(name: str) -> DataSource:
    """The source registered as `name` (or an alias of it)."""
    return DATA_SOURCES[SOURCE_ALIASES.get(name, name)]

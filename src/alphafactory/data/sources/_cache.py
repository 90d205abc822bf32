"""The raw-bar cache of the network sources, under the runs folder.

One entry per (source, market symbol, interval, settings that change the bars): the bars of
the range fetched so far, `<runs>/bars-cache/<source>/<name>-<interval>-<digest>.parquet`,
and its manifest beside it (`.json`: the entry's identity, the range it covers, the row
count and the parquet file's sha256). An entry whose file does not match its manifest is
ignored (and fetched again), so a half-written or edited cache never feeds a run.
"""

from __future__ import annotations

import hashlib
import io as _bytes_io
import json
import logging
from dataclasses import dataclass
from typing import Any

import polars as pl

from alphafactory import io
from alphafactory.data.sources._base import Window

#: The cache's folder in the runs folder.
CACHE_FOLDER = "bars-cache"
_DIGEST_CHARACTERS = 12

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheEntry:
    """One symbol's cached bars (timestamp and OHLCV, sorted) and the range they cover."""

    bars: pl.DataFrame
    covered: Window


def missing_windows(covered: Window | None, wanted: Window) -> list[Window]:
    """The parts of `wanted` outside `covered`, so that covered and fetched stay one range.

    A wanted range that does not touch the covered one is fetched up to it.
    """
    if covered is None:
        return [wanted]
    missing = []
    if wanted.start < covered.start:
        missing.append(Window(wanted.start, covered.start))
    if wanted.end > covered.end:
        missing.append(Window(covered.end, wanted.end))
    return missing


class BarCache:
    """The cache entries of one source under `<root>/bars-cache/<source>/`."""

    def __init__(self, root: str, source: str) -> None:
        self.folder = io.join(root, CACHE_FOLDER, source)

    def path(self, name: str, interval: str, identity: dict[str, Any]) -> str:
        """The entry's parquet path: readable name and interval, and a digest of identity."""
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:_DIGEST_CHARACTERS]
        return io.join(self.folder, f"{name}-{interval}-{digest}.parquet")

    def read(self, path: str, identity: dict[str, Any]) -> CacheEntry | None:
        """The entry at `path`, or None when there is none or it fails its manifest."""
        manifest_path = _manifest_path(path)
        if not (io.exists(manifest_path) and io.exists(path)):
            return None
        manifest = io.read_json(manifest_path)
        payload = io.read_bytes(path)
        if manifest.get("identity") != identity:
            log.warning("bars cache %s: written for other settings; fetching again", path)
            return None
        if hashlib.sha256(payload).hexdigest() != manifest.get("sha256"):
            log.warning("bars cache %s: sha256 differs from its manifest; fetching again", path)
            return None
        bars = pl.read_parquet(_bytes_io.BytesIO(payload))
        return CacheEntry(bars, Window.from_dict(manifest["covered"]))

    def write(self, path: str, identity: dict[str, Any], entry: CacheEntry) -> None:
        """Write the bars, then the manifest that vouches for them."""
        buffer = _bytes_io.BytesIO()
        entry.bars.write_parquet(buffer)
        payload = buffer.getvalue()
        io.write_bytes(path, payload)
        manifest = {
            "identity": identity,
            "covered": entry.covered.to_dict(),
            "rows": entry.bars.height,
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        io.write_json(_manifest_path(path), manifest)
        log.info("bars cache %s: %d bars, %s", path, entry.bars.height, entry.covered)


def _manifest_path(path: str) -> str:
    return path.removesuffix(".parquet") + ".json"

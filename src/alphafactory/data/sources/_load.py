"""Load an environment's bars from its source, with the fallback only when configured.

A fetch that fails raises its one-line DataError, unless `data.fallback: synthetic`: then
the bars are synthetic, over the same symbols (safe names) and range, and their origin says
`synthetic (fallback after: <error>)` so that nothing downstream can take them for real.
"""

from __future__ import annotations

import logging
import posixpath
from datetime import UTC, datetime

from pydantic import ValidationError

from alphafactory import io
from alphafactory.config.loader import describe_validation_error
from alphafactory.config.schema import DataConfig, EnvironmentConfig
from alphafactory.config.sources import EXAMPLE_SYMBOLS
from alphafactory.data.sources._base import BarsOrigin, LoadedBars, SourceContext, Window
from alphafactory.data.sources._network import NetworkSource, fetch_window
from alphafactory.data.sources._registry import data_source
from alphafactory.data.synthetic import frequency_to_timedelta, generate_bars
from alphafactory.errors import ConfigError, DataError, first_line
from alphafactory.layout import RunLayout

log = logging.getLogger(__name__)


def load_source(
    config: EnvironmentConfig, runs_dir: str | None = None, *, now: datetime | None = None
) -> LoadedBars:
    """The bars of the environment's `data` section and their origin.

    Args:
        config: The environment.
        runs_dir: The runs folder that holds the raw-bar cache; default `pipeline_root`.
        now: The clock (tests); default the current time.

    Raises:
        DataError: The source failed and `data.fallback` is `none`.
        ConfigError: The source cannot run here (e.g. its extra is not installed).
    """
    context = _context(config, runs_dir, now)
    source = data_source(config.data.source)
    try:
        return source.load(config.data, context)
    except DataError as error:
        if config.data.fallback != "synthetic" or source.name == "synthetic":
            raise
        return synthetic_fallback(config.data, context, first_line(error))


def reload_source(
    config: EnvironmentConfig, origin: BarsOrigin, runs_dir: str | None = None
) -> LoadedBars:
    """The bars a run used again, from its recorded origin: the same range of the same
    source (read from the cache), or the same synthetic fallback; never a new fallback."""
    context = _context(config, runs_dir, None, origin.window)
    if origin.fallback_error is not None:
        return synthetic_fallback(config.data, context, origin.fallback_error)
    return data_source(config.data.source).load(config.data, context)


def synthetic_fallback(data: DataConfig, context: SourceContext, error: str) -> LoadedBars:
    """Seeded synthetic bars standing in for the configured source, marked as such.

    A network source's stand-in has its symbols (safe names), interval and range; a file's
    has `data.symbols` and `data.n_bars`. No signal is planted.
    """
    source = data_source(data.source)
    names: dict[str, str] = {}
    window, symbols, n_bars = None, list(data.symbols), data.n_bars
    if isinstance(source, NetworkSource):
        settings = source.settings(data)
        names, window = settings.names, fetch_window(data, settings, context)
        symbols = list(names.values())
        n_bars = int((window.end - window.start) / frequency_to_timedelta(data.frequency))
    if n_bars < 2:
        raise DataError(f"{error} (and the range is too short for a synthetic fallback)")
    if window is None:
        bars = generate_bars(symbols, n_bars, data.frequency, data.seed)
    else:
        bars = generate_bars(symbols, n_bars, data.frequency, data.seed, window.start)
    origin = BarsOrigin(source.name, data.label, names, window, fallback_error=error)
    log.warning("%s: %s", data.label, origin.line)
    return LoadedBars(bars, origin)


def write_bars_origin(layout: RunLayout, origin: BarsOrigin) -> None:
    io.write_json(layout.bars_origin, origin.to_dict())


def read_bars_origin(run_dir: str) -> BarsOrigin | None:
    """The origin prepare recorded in the run folder; None for runs prepared without one."""
    path = RunLayout(run_dir).bars_origin
    return BarsOrigin.from_dict(io.read_json(path)) if io.exists(path) else None


def runs_folder(run_dir: str) -> str:
    """The runs folder a run folder lies in (the raw-bar cache's home)."""
    return posixpath.dirname(run_dir.rstrip("/")) or "."


def with_source(
    config: EnvironmentConfig, source: str, symbols: list[str] | None = None
) -> EnvironmentConfig:
    """The environment reading bars from `source` (`run --source`), with `symbols` when
    given: market symbols (BTC/USDT) for network sources, safe names for synthetic data."""
    raw = config.data.model_dump()
    raw["source"] = source
    if source in ("exchange", "yahoo"):
        settings = raw.get(source)
        if settings is None and not symbols:
            raise ConfigError(
                f"--source {source}: name the markets with --symbols (such as "
                f"{','.join(EXAMPLE_SYMBOLS[source])}) or set data.{source}.symbols in the "
                "environment"
            )
        raw[source] = {**(settings or {}), **({"symbols": symbols} if symbols else {})}
    elif symbols:
        raw["symbols"] = symbols
    try:
        data = DataConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"--source {source}: {describe_validation_error(exc)}") from None
    return config.model_copy(update={"data": data})


def _context(
    config: EnvironmentConfig,
    runs_dir: str | None,
    now: datetime | None,
    window: Window | None = None,
) -> SourceContext:
    return SourceContext(
        cache_root=config.pipeline_root if runs_dir is None else runs_dir,
        grid=config.grid,
        now=now or datetime.now(UTC),
        window=window,
    )

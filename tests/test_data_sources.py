"""Data sources behind one protocol: the registry, the `data` settings, the raw-bar cache and
the explicit fallback. The network sources' own tests replay their APIs
(tests/test_data_sources_exchange.py, tests/test_data_sources_yahoo.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from alphafactory.config import DataConfig, available_environments, load_environment
from alphafactory.config.schema import DATA_SOURCE_NAMES
from alphafactory.config.sources import ExchangeConfig, market_symbol_name
from alphafactory.data.bars import load_bars, write_bars
from alphafactory.data.sources import (
    DATA_SOURCES,
    SOURCE_ALIASES,
    BarCache,
    BarsOrigin,
    DataSource,
    Window,
    data_source,
    load_source,
    rebase_url,
    with_source,
)
from alphafactory.data.sources._base import require_extra
from alphafactory.data.sources._cache import CacheEntry, missing_windows
from alphafactory.data.synthetic import generate_bars, generate_bars_with_truth
from alphafactory.errors import ConfigError

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
#: The keys of the `data` section before the network sources: existing environments dump
#: (and so compile) exactly these.
DATA_KEYS_BEFORE = ["source", "uri", "symbols", "n_bars", "frequency", "seed", "planted"]


def test_every_registered_source_follows_the_protocol_under_its_own_name() -> None:
    assert len(DATA_SOURCES) == 4
    for name, source in DATA_SOURCES.items():
        assert isinstance(source, DataSource)
        assert source.name == name
        assert data_source(name) is source
    for alias, name in SOURCE_ALIASES.items():
        assert data_source(alias) is DATA_SOURCES[name]


def test_the_config_offers_exactly_the_registered_sources_and_aliases() -> None:
    offered = get_args(DataConfig.model_fields["source"].annotation)
    assert sorted(offered) == sorted(DATA_SOURCE_NAMES)
    assert set(offered) == set(DATA_SOURCES) | set(SOURCE_ALIASES)


@pytest.mark.parametrize("name", available_environments())
def test_existing_environments_dump_the_data_section_as_before(name: str) -> None:
    dumped = json.loads(load_environment(name, use_env_vars=False).model_dump_json())
    assert list(dumped["data"]) == DATA_KEYS_BEFORE


def test_network_settings_survive_the_json_the_components_receive() -> None:
    data = DataConfig.model_validate({
        "source": "exchange", "frequency": "4h", "fallback": "synthetic",
        "exchange": {"exchange": "kraken", "symbols": ["BTC/USD", "ETH/USD"],
                     "since": "2023-01-01", "until": "2023-06-01T12:00:00+02:00",
                     "page_limit": 720},
    })  # fmt: skip
    dumped = json.loads(data.model_dump_json())
    assert dumped["fallback"] == "synthetic"
    assert dumped["exchange"]["since"] == "2023-01-01T00:00:00Z"
    assert dumped["exchange"]["until"] == "2023-06-01T10:00:00Z"
    assert DataConfig.model_validate_json(data.model_dump_json()) == data
    assert data.label == "exchange kraken BTC/USD, ETH/USD (4h)"
    assert data.fetch is data.exchange


@pytest.mark.parametrize(
    ("symbol", "name"),
    [("BTC/USDT", "BTC-USDT"), ("BTC/USDT:USDT", "BTC-USDT-USDT"), ("^GSPC", "GSPC"),
     ("EURUSD=X", "EURUSD-X"), ("BRK.B", "BRK.B"), ("AAPL", "AAPL"), (" SOL/USDT ", "SOL-USDT")],
)  # fmt: skip
def test_market_symbols_get_safe_names(symbol: str, name: str) -> None:
    assert market_symbol_name(symbol) == name


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "exchange"}, "data.source is 'exchange' but data.exchange is not set"),
        ({"source": "yahoo"}, "data.source is 'yahoo' but data.yahoo is not set"),
        ({"source": "file"}, "data.source is 'file' but data.uri is empty"),
        ({"source": "exchange", "exchange": {"symbols": ["BTC/USDT", "BTC-USDT"]}},
         "symbols ['BTC-USDT'] are repeated"),
        ({"source": "yahoo", "yahoo": {"symbols": ["^^"]}}, "gives the name '', not a safe name"),
        ({"source": "yahoo", "yahoo": {"symbols": ["A"], "since": "2022-01-02",
                                       "until": "2022-01-01"}}, "must be before until"),
        ({"source": "exchange", "exchange": {"symbols": ["A/B"], "base_url": "127.0.0.1:80"}},
         "should match pattern"),
        ({"fallback": "real"}, "Input should be 'none' or 'synthetic'"),
    ],
)  # fmt: skip
def test_bad_data_settings_are_refused_with_the_key_and_the_fix(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match="(?s)" + message.replace("[", r"\[").replace("(", r"\(")):
        DataConfig.model_validate(data)


def test_with_source_switches_to_a_network_source_with_market_symbols() -> None:
    base = load_environment("local-dev", use_env_vars=False)
    config = with_source(base, "exchange", ["BTC/USDT", "ETH/USDT"])
    assert config.data.source == "exchange"
    assert config.data.exchange == ExchangeConfig(symbols=["BTC/USDT", "ETH/USDT"])
    assert config.data.exchange.names == {"BTC/USDT": "BTC-USDT", "ETH/USDT": "ETH-USDT"}
    with pytest.raises(ConfigError) as raised:
        with_source(base, "yahoo")
    assert str(raised.value) == (
        "--source yahoo: name the markets with --symbols (such as AAPL,MSFT,^GSPC) "
        "or set data.yahoo.symbols in the environment"
    )
    with pytest.raises(ConfigError, match=r"^--source synthetic: key 'symbols.0' = 'BTC/USDT'"):
        with_source(base, "synthetic", ["BTC/USDT"])


def test_the_synthetic_source_is_the_generator_with_its_ground_truth(tmp_path: Path) -> None:
    base = load_environment("local-dev", use_env_vars=False)
    data = base.data.model_copy(update={"n_bars": 600, "symbols": ["BTC", "ETH"]})
    config = base.model_copy(update={"data": data})
    loaded = load_source(config, str(tmp_path))
    bars, truth = generate_bars_with_truth(
        ["BTC", "ETH"], 600, "1h", 7, planted=data.planted,
        windows=base.grid.windows, swing_types=base.grid.swing_types,
    )  # fmt: skip
    assert_frame_equal(loaded.bars, bars)
    assert loaded.truth == truth
    assert loaded.origin == BarsOrigin("synthetic", "synthetic data")
    assert loaded.origin.line == "source: synthetic data"
    assert list(tmp_path.iterdir()) == []  # no cache for generated bars


@pytest.mark.parametrize("source", ["file", "uri"])
def test_the_file_source_is_the_fsspec_loader(tmp_path: Path, source: str) -> None:
    path = tmp_path / "bars.csv"
    write_bars(generate_bars(["AAA"], n_bars=50, seed=3), str(path))
    base = load_environment("local-dev", use_env_vars=False)
    data = DataConfig.model_validate({**base.data.model_dump(), "source": source, "uri": str(path)})
    loaded = load_source(base.model_copy(update={"data": data}))
    assert_frame_equal(loaded.bars, load_bars(str(path)))
    assert loaded.origin.line == f"source: {path}"
    assert loaded.origin.source == "file" and not loaded.origin.fallback


def test_missing_windows_keep_the_cached_range_in_one_piece() -> None:
    covered = Window(T0, T0 + 10 * HOUR)
    assert missing_windows(None, covered) == [covered]
    assert missing_windows(covered, Window(T0 + HOUR, T0 + 5 * HOUR)) == []
    assert missing_windows(covered, Window(T0 - 2 * HOUR, T0 + 12 * HOUR)) == [
        Window(T0 - 2 * HOUR, T0), Window(T0 + 10 * HOUR, T0 + 12 * HOUR)
    ]  # fmt: skip
    # Disjoint: fetched up to the covered range, so the entry stays contiguous.
    assert missing_windows(covered, Window(T0 + 20 * HOUR, T0 + 30 * HOUR)) == [
        Window(T0 + 10 * HOUR, T0 + 30 * HOUR)
    ]


def _cached_bars(n: int) -> pl.DataFrame:
    bars = generate_bars(["BTC"], n_bars=n, seed=5, start=T0)
    return bars.drop("symbol")


def test_a_cache_entry_reads_back_and_refuses_a_changed_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = BarCache(str(tmp_path), "exchange")
    identity = {"source": "exchange", "symbol": "BTC/USDT", "interval": "1h"}
    path = cache.path("BTC-USDT", "1h", identity)
    assert path.startswith(str(tmp_path / "bars-cache" / "exchange" / "BTC-USDT-1h-"))
    entry = CacheEntry(_cached_bars(12), Window(T0, T0 + 12 * HOUR))
    cache.write(path, identity, entry)
    read = cache.read(path, identity)
    assert read is not None and read.covered == entry.covered
    assert_frame_equal(read.bars, entry.bars)
    manifest = json.loads(Path(path.removesuffix(".parquet") + ".json").read_text())
    assert manifest["rows"] == 12 and len(manifest["sha256"]) == 64
    assert manifest["covered"] == {"start": T0.isoformat(), "end": (T0 + 12 * HOUR).isoformat()}
    assert cache.read(path, {**identity, "interval": "4h"}) is None
    _cached_bars(11).write_parquet(path)
    assert cache.read(path, identity) is None
    assert "sha256 differs from its manifest" in caplog.text


def test_rebase_url_moves_scheme_and_host_and_keeps_the_path() -> None:
    url = "https://api.binance.com/api/v3/klines?symbol=BTCUSDT"
    assert (
        rebase_url(url, "http://127.0.0.1:8080")
        == "http://127.0.0.1:8080/api/v3/klines?symbol=BTCUSDT"
    )
    assert (
        rebase_url(url, "http://mirror:9/prefix/")
        == "http://mirror:9/prefix/api/v3/klines?symbol=BTCUSDT"
    )


def test_a_missing_client_library_names_the_extra() -> None:
    with pytest.raises(ConfigError) as raised:
        require_extra("alphafactory_no_such_client")
    message = str(raised.value)
    assert message.startswith(
        "data.source needs alphafactory_no_such_client, which is not installed"
    )
    assert message.endswith("install it with `pip install 'alphafactory[sources]'`")
    assert "\n" not in message

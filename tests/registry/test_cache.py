"""The content-addressed model cache: hits, forced retrains, listing and clearing by symbol and
age, crash safety and tamper detection, with real LightGBM model files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pytest
from conftest import train_tiny_lightgbm

from alphafactory.errors import ConfigError, ModelError
from alphafactory.registry import ModelCache, config_hash, parse_age

KEY = {"data_hash": "a" * 64, "config": {"num_leaves": 4, "rounds": 5}, "code_version": "0.1.0"}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class CountingTrainer:
    """Trains a real tiny LightGBM into the folder it is given; counts its calls."""

    def __init__(self, seed: int = 1) -> None:
        self.calls = 0
        self.seed = seed

    def __call__(self, folder: Path) -> Mapping[str, Any]:
        self.calls += 1
        train_tiny_lightgbm(folder / "model.txt", self.seed + self.calls)
        return {"ap": 0.61, "call": self.calls}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(tmp_path: Path, clock: FakeClock) -> ModelCache:
    return ModelCache(tmp_path / "cache", clock=clock)


def test_hit_returns_entry_without_training(cache: ModelCache) -> None:
    trainer = CountingTrainer()
    first = cache.get_or_train(KEY, trainer, symbol="AAPL")
    second = cache.get_or_train(dict(reversed(list(KEY.items()))), trainer, symbol="AAPL")
    assert trainer.calls == 1
    assert (first.hit, second.hit) == (False, True)
    assert second.key == first.key and second.files == first.files
    assert second.metadata == {"ap": 0.61, "call": 1}
    assert lgb.Booster(model_file=str(second.file("model.txt"))).num_trees() == 15


def test_other_inputs_or_symbol_miss(cache: ModelCache) -> None:
    trainer = CountingTrainer()
    cache.get_or_train(KEY, trainer, symbol="AAPL")
    cache.get_or_train({**KEY, "code_version": "0.2.0"}, trainer, symbol="AAPL")
    cache.get_or_train(KEY, trainer, symbol="MSFT")
    assert trainer.calls == 3
    assert len(cache.list()) == 3


def test_force_retrains_and_replaces(cache: ModelCache, clock: FakeClock) -> None:
    trainer = CountingTrainer()
    first = cache.get_or_train(KEY, trainer, symbol="AAPL")
    clock.now += timedelta(hours=1)
    forced = cache.get_or_train(KEY, trainer, symbol="AAPL", force=True)
    assert trainer.calls == 2 and not forced.hit
    assert forced.files != first.files and forced.created == clock.now
    assert [entry.metadata["call"] for entry in cache.list()] == [2]


def test_list_and_clear_by_symbol_and_age(cache: ModelCache, clock: FakeClock) -> None:
    trainer = CountingTrainer()
    cache.get_or_train({**KEY, "n": 1}, trainer, symbol="AAPL")
    clock.now += timedelta(days=8)
    cache.get_or_train({**KEY, "n": 2}, trainer, symbol="AAPL")
    cache.get_or_train({**KEY, "n": 3}, trainer, symbol="MSFT")
    clock.now += timedelta(hours=1)
    assert [entry.symbol for entry in cache.list()] == ["AAPL", "AAPL", "MSFT"]
    assert len(cache.list(symbol="AAPL")) == 2
    old = cache.list(older_than=parse_age("7d"))
    assert [entry.metadata["call"] for entry in old] == [1]
    assert cache.list(symbol="MSFT", older_than=parse_age("2h")) == []
    assert cache.clear(symbol="AAPL", older_than=parse_age("7d")) == 1
    assert cache.clear(symbol="MSFT") == 1
    assert [entry.metadata["call"] for entry in cache.list()] == [2]
    assert cache.clear() == 1 and cache.list() == []


def test_exception_mid_train_leaves_nothing(cache: ModelCache) -> None:
    def crashing(folder: Path) -> Mapping[str, Any]:
        (folder / "model.txt").write_text("half a model")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        cache.get_or_train(KEY, crashing, symbol="AAPL")
    assert cache.list() == []
    assert list(cache.staging_dir.iterdir()) == []
    trainer = CountingTrainer()
    assert not cache.get_or_train(KEY, trainer, symbol="AAPL").hit and trainer.calls == 1


def test_killed_process_leaves_nothing_visible(cache: ModelCache) -> None:
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from alphafactory.registry import ModelCache

        def die(folder: Path):
            (folder / "model.txt").write_text("half a model")
            os._exit(9)

        ModelCache({str(cache.root)!r}).get_or_train({KEY!r}, die, symbol="AAPL")
    """)
    result = subprocess.run([sys.executable, "-c", script], check=False)
    assert result.returncode == 9
    assert cache.list() == []
    assert len(list(cache.staging_dir.iterdir())) == 1  # the dead writer's staging folder
    trainer = CountingTrainer()
    entry = cache.get_or_train(KEY, trainer, symbol="AAPL")
    assert trainer.calls == 1 and not entry.hit
    assert cache.prune_staging(older_than=timedelta(0)) == 1


def test_concurrent_writers_publish_one_entry(cache: ModelCache) -> None:
    barrier = threading.Barrier(2)
    trainer = CountingTrainer()

    def slow_train(folder: Path) -> Mapping[str, Any]:
        barrier.wait(timeout=10)
        return trainer(folder)

    results = []

    def writer() -> None:
        results.append(cache.get_or_train(KEY, slow_train, symbol="AAPL"))

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert trainer.calls == 2 and len(results) == 2
    assert results[0].files == results[1].files
    assert len(cache.list()) == 1 and list(cache.staging_dir.iterdir()) == []


def test_tampered_cached_file_is_refused(cache: ModelCache) -> None:
    trainer = CountingTrainer()
    entry = cache.get_or_train(KEY, trainer, symbol="AAPL")
    model_file = entry.file("model.txt")
    content = bytearray(model_file.read_bytes())
    content[10] ^= 0x01
    model_file.write_bytes(bytes(content))
    with pytest.raises(ModelError, match=r"model\.txt has sha256 .* was modified or corrupted"):
        cache.get_or_train(KEY, trainer, symbol="AAPL")
    assert trainer.calls == 1
    assert cache.get_or_train(KEY, trainer, symbol="AAPL", force=True).files != entry.files


def test_train_that_writes_nothing_is_refused(cache: ModelCache) -> None:
    with pytest.raises(ModelError, match="wrote no files"):
        cache.get_or_train(KEY, lambda folder: {}, symbol="AAPL")
    assert cache.list() == []


def test_config_hash_is_canonical() -> None:
    one = config_hash("abc", {"b": 1, "a": [1, 2]}, "0.1.0")
    assert one == config_hash("abc", {"a": [1, 2], "b": 1}, "0.1.0")
    assert one != config_hash("abc", {"a": [1, 2], "b": 2}, "0.1.0")
    assert len(one) == 64
    with pytest.raises(ConfigError, match="cannot be hashed"):
        config_hash("abc", {"a": float("nan")}, "0.1.0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7d", timedelta(days=7)), ("12h", timedelta(hours=12)), ("30m", timedelta(minutes=30)),
     ("45s", timedelta(seconds=45)), ("2w", timedelta(weeks=2)), (" 1.5h ", timedelta(minutes=90))],
)  # fmt: skip
def test_parse_age(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["7", "d7", "7x", "", "-1d", "7 days"])
def test_parse_age_rejects_bad_text(text: str) -> None:
    with pytest.raises(ConfigError, match="is not valid: use a number followed by s, m, h, d or w"):
        parse_age(text)

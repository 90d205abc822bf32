"""Content-addressed model cache: an entry is keyed by a hash of its inputs, published atomically
with a manifest of file checksums, and verified on every hit."""

from __future__ import annotations

import builtins
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

from alphafactory.errors import ConfigError, ModelError
from alphafactory.registry.checksums import sha256_file, verify_checksum

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FILES_DIR = "files"
MANIFEST_FORMAT = 2
DIGEST_FIELD = "digest"
"""The manifest's own digest: SHA-256 of its canonical JSON without this field, so metadata
(average precision, the model's sha256) cannot be edited without the entry being refused."""
MODEL_LIBRARIES = ("lightgbm", "xgboost", "ngboost", "scikit-learn", "torch")
"""Distributions whose version changes what a fit produces; part of every cache key."""

_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Clock = Callable[[], datetime]
Trainer = Callable[[Path], Mapping[str, Any]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _json_default(value: object) -> object:
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no whitespace, so equal inputs always give equal text."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"cache key parts cannot be hashed ({error}): use strings, numbers, lists and "
            "mappings with string keys, and no NaN"
        ) from error


def cache_key(key_parts: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``key_parts``."""
    return hashlib.sha256(canonical_json(dict(key_parts)).encode("utf-8")).hexdigest()


def config_hash(data_hash: str, config: Mapping[str, Any], code_version: str) -> str:
    """The cache key of a training run: data hash, resolved config and code version."""
    return cache_key({"code_version": code_version, "config": config, "data_hash": data_hash})


def source_hash(package_dir: Path) -> str:
    """SHA-256 over the relative path and bytes of every ``.py`` file under ``package_dir``."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def library_versions(names: tuple[str, ...] = MODEL_LIBRARIES) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent), read without importing it."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def code_version() -> dict[str, Any]:
    """What the code of a fit is, for cache keys: the package version, a hash of its installed
    source (a change to the fit code is a new key) and the model libraries' versions.
    Computed once per process."""
    import alphafactory

    return {
        "package": alphafactory.__version__,
        "source": source_hash(Path(alphafactory.__file__).parent),
        "libraries": library_versions(),
    }


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of a manifest's canonical JSON without its own digest field."""
    body = {key: value for key, value in manifest.items() if key != DIGEST_FIELD}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def parse_age(text: str) -> timedelta:
    """Parse an age such as ``"7d"``, ``"12h"``, ``"30m"``, ``"45s"`` or ``"2w"``."""
    match = _AGE_RE.match(text)
    if match is None:
        raise ConfigError(
            f"age {text!r} is not valid: use a number followed by s, m, h, d or w, "
            "e.g. '7d' or '12h'"
        )
    amount, unit = float(match.group(1)), match.group(2)
    return timedelta(**{_AGE_UNITS[unit]: amount})


@dataclass(frozen=True)
class CacheEntry:
    """One published cache entry; ``path`` is the folder that holds the model files."""

    key: str
    symbol: str
    created: datetime
    path: Path
    files: Mapping[str, str]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    hit: bool = False

    def file(self, name: str) -> Path:
        """Absolute path of one of the entry's files."""
        if name not in self.files:
            raise ModelError(
                f"cache entry {self.key} has no file {name!r}: it holds "
                f"{', '.join(sorted(self.files))}"
            )
        return self.path / name


class ModelCache:
    """A folder of cache entries: ``<root>/entries/<key>/{manifest.json, files/...}``.

    Entries are staged under ``<root>/staging`` and renamed into place, so a reader sees a
    whole entry or none; a crashed writer leaves only a staging folder that nobody reads.
    """

    def __init__(self, root: Path | str, *, clock: Clock = _utc_now) -> None:
        self.root = Path(root)
        self.entries_dir = self.root / "entries"
        self.staging_dir = self.root / "staging"
        self._clock = clock

    def entry_key(self, key_parts: Mapping[str, Any], symbol: str) -> str:
        """The entry key: a hash of ``key_parts`` together with the symbol."""
        return cache_key({"key_parts": dict(key_parts), "symbol": symbol})

    def get_or_train(
        self, key_parts: Mapping[str, Any], train: Trainer, *, symbol: str, force: bool = False
    ) -> CacheEntry:
        """Return the verified entry for these inputs, training and publishing it if needed.

        Args:
            key_parts: Everything the model depends on (data hash, config, code version,
                image digest); any change gives a new entry.
            train: Called with an empty folder to write the model file(s) into; returns
                JSON-serialisable metadata stored in the manifest. Not called on a hit.
            symbol: The symbol the model is for (listing and clearing filter on it).
            force: Retrain and replace an existing entry.
        """
        key = self.entry_key(key_parts, symbol)
        if not force:
            cached = self._read_entry(self.entries_dir / key)
            if cached is not None:
                self._verify(cached)
                logger.info("cache hit %s for %s", key[:12], symbol)
                return cached
        entry = self._train_and_publish(key, key_parts, train, symbol=symbol, replace=force)
        logger.info("cache stored %s for %s", key[:12], symbol)
        return entry

    def list(
        self, symbol: str | None = None, older_than: timedelta | None = None
    ) -> builtins.list[CacheEntry]:
        """Published entries, oldest first, optionally only one symbol's or older than an age."""
        if not self.entries_dir.is_dir():
            return []
        now = self._clock()
        selected = []
        for entry_dir in self.entries_dir.iterdir():
            entry = self._read_entry(entry_dir, strict=False)
            if entry is None or (symbol is not None and entry.symbol != symbol):
                continue
            if older_than is not None and now - entry.created < older_than:
                continue
            selected.append(entry)
        return sorted(selected, key=lambda entry: entry.created)

    def clear(self, symbol: str | None = None, older_than: timedelta | None = None) -> int:
        """Delete the entries ``list`` would return; return how many were deleted."""
        return self.remove(self.clear_targets(symbol, older_than))

    def clear_targets(
        self, symbol: str | None = None, older_than: timedelta | None = None
    ) -> builtins.list[Path]:
        """The entry folders ``clear`` deletes: those ``list`` returns, or without filters
        every entry folder, also those ``list`` skips as unreadable or edited."""
        if symbol is None and older_than is None:
            folders = list(self.entries_dir.iterdir()) if self.entries_dir.is_dir() else []
        else:
            folders = [entry.path.parent for entry in self.list(symbol, older_than)]
        return sorted(folders)

    def remove(self, folders: builtins.list[Path]) -> int:
        """Delete these entry folders (from ``clear_targets``); return how many were there."""
        removed = sum(1 for folder in folders if self._remove(folder))
        logger.info("cache cleared %d entries", removed)
        return removed

    def prune_staging(self, older_than: timedelta = timedelta(hours=24)) -> int:
        """Delete staging folders left by crashed writers; return how many were deleted."""
        if not self.staging_dir.is_dir():
            return 0
        # Staging folders carry only filesystem times, so compare with the wall clock.
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for staged in self.staging_dir.iterdir():
            if staged.stat().st_mtime <= cutoff:
                shutil.rmtree(staged, ignore_errors=True)
                removed += 1
        return removed

    def _train_and_publish(
        self,
        key: str,
        key_parts: Mapping[str, Any],
        train: Trainer,
        *,
        symbol: str,
        replace: bool,
    ) -> CacheEntry:
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self.entries_dir.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f"{key[:16]}.", dir=self.staging_dir))
        try:
            files_dir = staged / FILES_DIR
            files_dir.mkdir()
            metadata = dict(train(files_dir))
            manifest = self._manifest(key, key_parts, symbol, files_dir, metadata)
            _write_json(staged / MANIFEST_NAME, manifest)
            return self._publish(staged, self.entries_dir / key, replace=replace)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def _manifest(
        self,
        key: str,
        key_parts: Mapping[str, Any],
        symbol: str,
        files_dir: Path,
        metadata: Mapping[str, Any],
    ) -> dict[str, Any]:
        files = {
            path.relative_to(files_dir).as_posix(): sha256_file(path)
            for path in sorted(files_dir.rglob("*"))
            if path.is_file()
        }
        if not files:
            raise ModelError(
                f"training for cache entry {key[:12]} wrote no files into "
                f"{files_dir}: the train callable must save the model there"
            )
        manifest = {
            "format": MANIFEST_FORMAT,
            "hash": key,
            "symbol": symbol,
            "created": self._clock().isoformat(),
            "key_parts": json.loads(canonical_json(dict(key_parts))),
            "files": files,
            "metadata": json.loads(canonical_json(metadata)),
        }
        return {**manifest, DIGEST_FIELD: manifest_digest(manifest)}

    def _publish(self, staged: Path, target: Path, *, replace: bool) -> CacheEntry:
        if replace:
            self._remove(target)
        try:
            os.rename(staged, target)
        except OSError:
            # Another writer published the same key first; its entry is as good as ours.
            logger.info("cache entry %s was published concurrently; using it", target.name)
        entry = self._read_entry(target)
        if entry is None:
            raise ModelError(
                f"cache entry {target} could not be published: check that "
                f"{self.root} is writable and retry"
            )
        return dataclasses.replace(entry, hit=False)

    def _remove(self, entry_dir: Path) -> bool:
        """Hide an entry with one rename, then delete it; False when it was already gone."""
        trash = self.staging_dir / f"trash-{entry_dir.name[:16]}-{uuid.uuid4().hex}"
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(entry_dir, trash)
        except FileNotFoundError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def _read_entry(self, entry_dir: Path, *, strict: bool = True) -> CacheEntry | None:
        manifest_path = entry_dir / MANIFEST_NAME
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            _check_manifest(manifest_path, manifest)
            return CacheEntry(
                key=manifest["hash"],
                symbol=manifest["symbol"],
                created=datetime.fromisoformat(manifest["created"]),
                path=entry_dir / FILES_DIR,
                files=manifest["files"],
                metadata=manifest.get("metadata", {}),
                hit=True,
            )
        except FileNotFoundError:
            return None
        except ModelError as error:
            if strict:
                raise
            logger.warning(str(error))
            return None
        except (ValueError, KeyError, TypeError) as error:
            message = (
                f"cache manifest {manifest_path} is unreadable ({error}): delete "
                "the entry or retrain with force"
            )
            if strict:
                raise ModelError(message) from error
            logger.warning(message)
            return None

    @staticmethod
    def _verify(entry: CacheEntry) -> None:
        for name, digest in entry.files.items():
            verify_checksum(entry.path / name, digest)
        recorded = entry.metadata.get("sha256")
        if recorded is not None and recorded not in entry.files.values():
            raise ModelError(
                f"cache entry {entry.key[:12]}: its metadata records model sha256 "
                f"{str(recorded)[:12]}… but its files have {_prefixes(entry.files)}: the entry "
                "was edited; delete it (`alphafactory cache clear`) or retrain with force"
            )


def _prefixes(files: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {digest[:12]}…" for name, digest in sorted(files.items()))


def _check_manifest(path: Path, manifest: Any) -> None:
    """Refuse a manifest of another format or whose digest does not match its content."""
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ModelError(
            f"cache manifest {path} has format {found!r}, not {MANIFEST_FORMAT}: it was written "
            "by another version; delete it (`alphafactory cache clear`) or retrain with force"
        )
    expected = str(manifest.get(DIGEST_FIELD, ""))
    actual = manifest_digest(manifest)
    if actual != expected:
        raise ModelError(
            f"cache manifest {path} has digest {actual[:12]}… but {expected[:12] or 'none'}… "
            "was recorded: the entry was edited; delete it (`alphafactory cache clear`) or "
            "retrain with force"
        )


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())

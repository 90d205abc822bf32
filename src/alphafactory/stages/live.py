"""Live inference: every group's champion predicts the bars that arrived since the last live
run, appended idempotently to `<runs>/live/predictions.parquet`.

The file is keyed by (timestamp, group_id): only bars after a group's last predicted timestamp
are predicted, so a rerun adds nothing. A bar is predicted only with its full warm-up
history behind it (`warmup_bars`), so a short history never freezes half-computed rows.

One run at a time per file: locally an exclusive `fcntl.flock` on `predictions.parquet.lock`
beside it; on an object store the file's generation (ETag, mtime and size) is read before
and checked again before the write, which is refused when another run changed it. A new
local file is written under a temporary name in the same folder (stale temporaries of a
killed run are removed first) and moved over the old one with `os.replace`, so a crash never
leaves a partial file visible.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import polars as pl

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.bars import load_bars
from alphafactory.errors import ConfigError, DataError, ModelError
from alphafactory.features import FeatureScale, build_feature_matrix, scale_preset
from alphafactory.models import FittedModel, load_model
from alphafactory.registry import ModelRegistry, RegisteredModel
from alphafactory.registry.checksums import download_verified
from alphafactory.stages.common import Matrix
from alphafactory.stages.infer import predict_group
from alphafactory.stages.prepare import load_source_bars
from alphafactory.targets.swing import CLASS_NAMES

log = logging.getLogger(__name__)

DEFAULT_FIRST_BARS = 500
"""Bars a group's first live run predicts (the most recent ones), instead of the history."""
KEY = ("timestamp", "group_id")
LOCK_TIMEOUT_S = 600.0
"""How long a live run waits for another one on the same file before it gives up."""
_STAMP_KEYS = ("generation", "etag", "ETag", "mtime", "LastModified", "updated", "created")
LIVE_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us", "UTC"),
    "group_id": pl.String(),
    "variant_id": pl.String(),
    **{f"p_{name}": pl.Float32() for name in CLASS_NAMES},
    "model_id": pl.String(),
    "semver": pl.String(),
}


@dataclass(frozen=True)
class Champion:
    """A group's champion model, downloaded and checksum-verified, ready to predict."""

    model: RegisteredModel
    variant_id: str
    fitted: FittedModel


@dataclass(frozen=True)
class LiveResult:
    """What one live run did: the file, rows added per group and in all, the models used."""

    path: str
    rows_added: dict[str, int]
    rows_total: int
    models: dict[str, str]

    @property
    def added(self) -> int:
        return sum(self.rows_added.values())


def live_predictions_path(runs_dir: str) -> str:
    """Where live predictions of a runs folder go: `<runs>/live/predictions.parquet`."""
    return io.join(runs_dir, "live", "predictions.parquet")


def load_champions(registry: ModelRegistry, scratch: Path) -> list[Champion]:
    """The champion of every registered group; each file's checksum is verified on download."""
    champions: list[Champion] = []
    for name in sorted({model.name for model in registry.list_models()}):
        model = registry.champion(name)
        if model is None:
            log.warning("live: %s has no champion; skipped", name)
            continue
        path = download_verified(registry, model.model_id, model.sha256, scratch / model.group)
        variant_id = str(registry.info(model.model_id).params.get("variant_id", ""))
        champions.append(Champion(model, variant_id, load_model(path, model.sha256)))
    if not champions:
        raise ModelError(
            f"no champion models in the registry at {registry.tracking_uri}: "
            "run `alphafactory run` first"
        )
    return champions


def read_live_predictions(path: str) -> pl.DataFrame:
    """The live predictions so far, or an empty frame with the live columns."""
    if not io.exists(path):
        return pl.DataFrame(schema=LIVE_SCHEMA)
    return io.read_parquet(path).cast(LIVE_SCHEMA)  # type: ignore[arg-type]


def last_predicted(existing: pl.DataFrame) -> dict[str, datetime]:
    """The latest predicted timestamp of each group."""
    latest = existing.group_by("group_id").agg(pl.col("timestamp").max())
    return {str(gid): moment for gid, moment in latest.iter_rows()}


def warmup_bars(scale: FeatureScale | str) -> int:
    """Bars of history a feature row needs before every feature of `scale` is fully computed.

    The longest lookback is the largest window a family declares (rolling windows, swing
    windows, MACD slow span plus signal span); twice that, because some features compose two
    windows (a rolling rate of a swing flag that itself spans a window), plus the longest lag.
    """
    resolved = scale_preset(scale) if isinstance(scale, str) else scale  # type: ignore[arg-type]
    spans = [slow + signal for _, slow, signal in resolved.macd_spans]
    longest = max([*resolved.windows, *resolved.swing_windows, *spans])
    return 2 * longest + max(resolved.lags, default=0)


def complete_rows(features: pl.DataFrame, names: list[str], warmup: int) -> pl.DataFrame:
    """The rows from which `names` are all computable: at least `warmup` bars of history and
    from the first row where every one of them is a finite number."""
    finite = pl.all_horizontal(
        pl.col(name).is_not_null() & pl.col(name).is_finite() for name in names
    )
    flags = features.select(finite.alias("finite"))["finite"]
    first_complete = int(flags.arg_true()[0]) if flags.any() else features.height
    return features.slice(max(warmup, first_complete))


def rows_to_predict(features: pl.DataFrame, last: datetime | None, first_bars: int) -> pl.DataFrame:
    """Rows after `last`; for a group never predicted, the most recent `first_bars` rows."""
    if last is None:
        return features.tail(first_bars)
    return features.filter(pl.col("timestamp") > last)


def predict_new_bars(
    champion: Champion,
    features: pl.DataFrame,
    last: datetime | None,
    first_bars: int,
    warmup: int = 0,
) -> pl.DataFrame:
    """The champion's class probabilities for its group's new bars, with model id and semver;
    bars without `warmup` bars of history (or with features not yet computable) are left out,
    so a later run with the full history predicts them."""
    names = list(champion.fitted.feature_names)
    missing = [name for name in names if name not in features.columns]
    if missing:
        raise ModelError(
            f"champion {champion.model.model_id} needs {len(missing)} features the live bars "
            f"do not give (first: {missing[0]}); pass bars with the symbols it was trained on"
        )
    complete = complete_rows(features, names, warmup)
    if complete.height < features.height:
        log.info(
            "live: %s: %d of %d bars lack their warm-up history and are not predicted",
            champion.model.group, features.height - complete.height, features.height,
        )  # fmt: skip
    rows = rows_to_predict(complete, last, first_bars)
    if rows.height == 0:
        return pl.DataFrame(schema=LIVE_SCHEMA)
    matrix = Matrix(
        timeline=rows["timestamp"].cast(pl.Datetime("us")).to_numpy(),
        values=rows.select(names).to_numpy().astype(np.float32, copy=False),
        names=names,
    )
    predicted = predict_group(champion.fitted, matrix, champion.model.group, champion.variant_id)
    return predicted.with_columns(
        model_id=pl.lit(champion.model.model_id),
        semver=pl.lit(str(champion.model.semver)),
    ).cast(LIVE_SCHEMA)  # type: ignore[arg-type]


def run_live(
    config: EnvironmentConfig,
    runs_dir: str,
    registry: ModelRegistry,
    *,
    data: str | None = None,
    first_bars: int = DEFAULT_FIRST_BARS,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> LiveResult:
    """Predict the new bars of every group with its champion and append them to the live file.

    Args:
        config: The environment (its data source and feature scale).
        runs_dir: The runs folder; predictions go to `<runs>/live/predictions.parquet`.
        registry: The registry that holds the champions.
        data: Bars to predict on (path or URI); default: the environment's data source.
        first_bars: How many of the most recent bars a group's first live run predicts.
        lock_timeout_s: How long to wait for another live run on the same file.
    """
    if first_bars < 1:
        raise ConfigError(f"first_bars is {first_bars}: predict at least 1 bar")
    path = live_predictions_path(runs_dir)
    bars = load_bars(data) if data else load_source_bars(config)[0]
    features = build_feature_matrix(bars, config.features.scale).sort("timestamp")
    warmup = warmup_bars(config.features.scale)
    with tempfile.TemporaryDirectory(prefix="alphafactory-live-") as scratch:
        champions = load_champions(registry, Path(scratch))
    with exclusive(path, lock_timeout_s) as guard:
        existing = read_live_predictions(path)
        last = last_predicted(existing)
        frames = [
            predict_new_bars(c, features, last.get(c.model.group), first_bars, warmup)
            for c in champions
        ]
        added = {c.model.group: frame.height for c, frame in zip(champions, frames, strict=True)}
        combined = existing
        if any(added.values()):
            combined = (
                pl.concat([existing, *frames])
                .unique(subset=list(KEY), keep="first", maintain_order=True)
                .sort("group_id", "timestamp")
            )
            guard.check_unchanged()
            write_predictions(combined, path)
    log.info("live: %d new predictions for %d groups", sum(added.values()), len(champions))
    return LiveResult(
        path=path,
        rows_added=added,
        rows_total=combined.height,
        models={c.model.group: c.model.model_id for c in champions},
    )


class Generation:
    """An object-store file's generation as read when a live run starts; `check_unchanged`
    refuses the write when another run has replaced the file since (a local file is guarded
    by the lock instead, and its check passes)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.remote = "://" in path
        self.seen = object_stamp(path) if self.remote else None

    def check_unchanged(self) -> None:
        if not self.remote:
            return
        now = object_stamp(self.path)
        if now != self.seen:
            raise DataError(
                f"{self.path} was changed by another live run while this one predicted "
                f"(generation {self.seen} → {now}); nothing was written: re-run `infer --live`"
            )


def object_stamp(path: str) -> tuple[tuple[str, str], ...] | None:
    """What fsspec reports of a file's version (generation/ETag, mtime, size), or None."""
    fs, inner = fsspec.core.url_to_fs(path)
    try:
        info: dict[str, Any] = fs.info(inner)
    except FileNotFoundError:
        return None
    keys = [key for key in (*_STAMP_KEYS, "size") if info.get(key) is not None]
    return tuple((key, str(info[key])) for key in keys)


@contextmanager
def exclusive(path: str, timeout_s: float) -> Iterator[Generation]:
    """Hold the live file for one read-predict-write: a local lock file, or on an object store
    a generation read now and checked before the write."""
    if "://" in path:
        yield Generation(path)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(f"{target.name}.lock")
    descriptor = _acquire(lock_path, timeout_s)
    try:
        remove_stale_temporaries(target)
        yield Generation(path)
    finally:
        # unlink while still holding the lock; a waiter that opened the old file notices the
        # inode is gone (`_acquire`) and locks the new one instead
        lock_path.unlink(missing_ok=True)
        os.close(descriptor)


def _acquire(lock_path: Path, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            if time.monotonic() >= deadline:
                raise DataError(
                    f"another live run holds {lock_path} (waited {timeout_s:g} s): wait for it "
                    "to finish and re-run `infer --live`"
                ) from None
            time.sleep(0.05)
            continue
        if _same_file(descriptor, lock_path):
            return descriptor
        os.close(descriptor)  # the holder removed this lock file; lock the current one


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.fstat(descriptor).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def remove_stale_temporaries(target: Path) -> int:
    """Delete temporaries a killed run left beside `target` (called under the lock, so none
    of them belongs to a running writer); return how many."""
    stale = list(target.parent.glob(f".{target.name}.*.tmp"))
    for temporary in stale:
        temporary.unlink(missing_ok=True)
    if stale:
        log.info("live: removed %d temporary files a killed run left", len(stale))
    return len(stale)


def write_predictions(frame: pl.DataFrame, path: str) -> None:
    """Replace the live file as a whole: a temporary sibling, fsynced, then `os.replace`.

    The temporary is created with mode 0666 less the umask (0644 under umask 022), as any
    file a user writes. Object stores (gs://) write an object atomically, so remote paths go
    through `io`.
    """
    if "://" in path:
        io.write_parquet(path, frame)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(target)
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            frame.write_parquet(stream, compression="zstd")
            stream.flush()
            os.fsync(stream.fileno())
        _commit(str(temporary), target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _commit(temporary: str, target: Path) -> None:
    os.replace(temporary, target)

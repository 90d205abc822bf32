"""Live inference: every group's champion predicts the bars that arrived since the last live
run, appended idempotently to `<runs>/live/predictions.parquet`.

The file is keyed by (timestamp, group_id): only bars after a group's last predicted timestamp
are predicted, so a rerun adds nothing. A new file is written under a temporary name in the
same folder and moved over the old one with `os.replace`, so a crash never leaves a partial
file visible.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.bars import load_bars
from alphafactory.errors import ConfigError, ModelError
from alphafactory.features import build_feature_matrix
from alphafactory.models import FittedModel, load_model
from alphafactory.registry import ModelRegistry, RegisteredModel
from alphafactory.stages.common import Matrix
from alphafactory.stages.infer import predict_group
from alphafactory.stages.prepare import load_source_bars
from alphafactory.targets.swing import CLASS_NAMES

log = logging.getLogger(__name__)

DEFAULT_FIRST_BARS = 500
"""Bars a group's first live run predicts (the most recent ones), instead of the history."""
KEY = ("timestamp", "group_id")
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
        path = registry.download(model.model_id, scratch / model.group)
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


def rows_to_predict(features: pl.DataFrame, last: datetime | None, first_bars: int) -> pl.DataFrame:
    """Rows after `last`; for a group never predicted, the most recent `first_bars` rows."""
    if last is None:
        return features.tail(first_bars)
    return features.filter(pl.col("timestamp") > last)


def predict_new_bars(
    champion: Champion, features: pl.DataFrame, last: datetime | None, first_bars: int
) -> pl.DataFrame:
    """The champion's class probabilities for its group's new bars, with model id and semver."""
    names = list(champion.fitted.feature_names)
    missing = [name for name in names if name not in features.columns]
    if missing:
        raise ModelError(
            f"champion {champion.model.model_id} needs {len(missing)} features the live bars "
            f"do not give (first: {missing[0]}); pass bars with the symbols it was trained on"
        )
    rows = rows_to_predict(features, last, first_bars)
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
) -> LiveResult:
    """Predict the new bars of every group with its champion and append them to the live file.

    Args:
        config: The environment (its data source and feature scale).
        runs_dir: The runs folder; predictions go to `<runs>/live/predictions.parquet`.
        registry: The registry that holds the champions.
        data: Bars to predict on (path or URI); default: the environment's data source.
        first_bars: How many of the most recent bars a group's first live run predicts.
    """
    if first_bars < 1:
        raise ConfigError(f"first_bars is {first_bars}: predict at least 1 bar")
    path = live_predictions_path(runs_dir)
    existing = read_live_predictions(path)
    bars = load_bars(data) if data else load_source_bars(config)[0]
    features = build_feature_matrix(bars, config.features.scale).sort("timestamp")
    last = last_predicted(existing)
    with tempfile.TemporaryDirectory(prefix="alphafactory-live-") as scratch:
        champions = load_champions(registry, Path(scratch))
    frames = [predict_new_bars(c, features, last.get(c.model.group), first_bars) for c in champions]
    added = {c.model.group: frame.height for c, frame in zip(champions, frames, strict=True)}
    combined = existing
    if any(added.values()):
        combined = (
            pl.concat([existing, *frames])
            .unique(subset=list(KEY), keep="first", maintain_order=True)
            .sort("group_id", "timestamp")
        )
        write_predictions(combined, path)
    log.info("live: %d new predictions for %d groups", sum(added.values()), len(champions))
    return LiveResult(
        path=path,
        rows_added=added,
        rows_total=combined.height,
        models={c.model.group: c.model.model_id for c in champions},
    )


def write_predictions(frame: pl.DataFrame, path: str) -> None:
    """Replace the live file as a whole: a temporary sibling, fsynced, then `os.replace`.

    Object stores (gs://) write an object atomically, so remote paths go through `io`.
    """
    if "://" in path:
        io.write_parquet(path, frame)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            frame.write_parquet(stream, compression="zstd")
            stream.flush()
            os.fsync(stream.fileno())
        _commit(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _commit(temporary: str, target: Path) -> None:
    os.replace(temporary, target)

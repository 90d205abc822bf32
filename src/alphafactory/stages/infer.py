"""Infer stage: batch predictions of every production model over the whole history."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import ModelError
from alphafactory.layout import RunLayout, read_plan
from alphafactory.models import FittedModel, load_model
from alphafactory.stages.common import Matrix, load_matrix
from alphafactory.stages.publish import publish_models
from alphafactory.stages.report import write_report
from alphafactory.stages.run_record import infer_metrics
from alphafactory.targets.swing import CLASS_NAMES

log = logging.getLogger(__name__)


def trained_models(layout: RunLayout, shards: int) -> dict[str, dict[str, Any]]:
    """Production fits by group id, read from every train shard's manifest."""
    models: dict[str, dict[str, Any]] = {}
    for shard in range(shards):
        models.update(io.read_json(layout.train_shard(shard)))
    return {gid: m for gid, m in sorted(models.items()) if m.get("status") == "ok"}


def load_run_model(
    layout: RunLayout, gid: str, fitted: dict[str, Any], scratch: Path
) -> FittedModel:
    """The group's model file of this run, verified against the digest its train shard
    recorded before it is read."""
    source = layout.model(gid)
    if "sha256" not in fitted:
        raise ModelError(
            f"train output of {gid} records no sha256 for {source}: rerun the train stage"
        )
    try:
        payload = io.read_bytes(source)
    except FileNotFoundError:
        raise ModelError(f"model file {source} is missing: rerun the train stage") from None
    local = scratch / Path(source).name
    local.write_bytes(payload)
    return load_model(local, fitted["sha256"])


def predict_group(
    model: FittedModel, matrix: Matrix, group_id: str, variant_id: str
) -> pl.DataFrame:
    """Class probabilities of one model for every row of the matrix."""
    index = [matrix.names.index(name) for name in model.feature_names]
    probabilities = model.predict_proba(matrix.values[:, index]).astype(np.float32)
    return pl.DataFrame(
        {
            "timestamp": pl.Series(matrix.timeline).cast(pl.Datetime("us", "UTC")),
            "group_id": pl.Series([group_id] * len(matrix.timeline), dtype=pl.Categorical),
            "variant_id": pl.Series([variant_id] * len(matrix.timeline), dtype=pl.Categorical),
            **{f"p_{name}": probabilities[:, i] for i, name in enumerate(CLASS_NAMES)},
        }
    )


def run_infer(config: EnvironmentConfig, run_dir: str) -> dict[str, Any]:
    """Predict with every production model, write predictions and the run report."""
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    models = trained_models(layout, len(plan.shards))
    matrix = load_matrix(layout, io.read_json(layout.selected_features))
    frames = []
    # every model is verified before the first registration, so a tampered file registers none
    with tempfile.TemporaryDirectory(prefix="alphafactory-infer-") as scratch:
        for gid, fitted in models.items():
            model = load_run_model(layout, gid, fitted, Path(scratch))
            frames.append(predict_group(model, matrix, gid, fitted["variant_id"]))
    predictions = pl.concat(frames) if frames else pl.DataFrame()
    io.write_parquet(layout.predictions, predictions)
    published = publish_models(config, layout, plan, models)
    if config.runner == "vertex":
        from alphafactory.cloud import publish_to_vertex

        publish_to_vertex(config, published, run_dir=run_dir)
    io.write_json(layout.path("infer", "registry.json"), published)
    write_report(config, layout, plan, models, published)
    return infer_metrics(models, published, predictions.height)

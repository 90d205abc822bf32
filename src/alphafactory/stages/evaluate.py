"""Score a saved model on any bars: rebuild its features and its variant's labels, then AP."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from alphafactory.data.bars import load_bars
from alphafactory.errors import DataError, ModelError
from alphafactory.features import build_feature_matrix
from alphafactory.metrics import average_precision
from alphafactory.models.variants import parse_variant_id, variant_grid
from alphafactory.targets.swing import build_targets


@dataclass(frozen=True)
class Score:
    rows: int
    average_precision: float


def score_model(model_path: Path, variant_id: str, data_uri: str, scale: str) -> Score:
    """AP of the model at `model_path` on the labelled event rows of `data_uri`."""
    variant = parse_variant_id(variant_id)
    bars = load_bars(data_uri)
    if variant.symbol not in set(bars["symbol"].to_list()):
        raise DataError(
            f"{data_uri}: no bars for symbol {variant.symbol}, which {variant_id} needs"
        )
    booster = lgb.Booster(model_file=str(model_path))
    features = build_feature_matrix(bars, scale)
    missing = [name for name in booster.feature_name() if name not in features.columns]
    if missing:
        raise ModelError(
            f"{model_path.name} needs {len(missing)} features absent from {data_uri} "
            f"(first: {missing[0]}); score on bars with the same symbols and feature scale"
        )
    targets = build_targets(bars, variant_grid(variant), [variant.symbol])[variant.group_id]
    labelled = targets.filter(pl.col(variant_id).is_not_null())
    rows = labelled.join(features, on="timestamp", how="left")
    if rows.height == 0:
        raise DataError(f"{data_uri}: no {variant_id} events to score on")
    matrix = rows.select(booster.feature_name()).to_numpy().astype(np.float32)
    probabilities = np.asarray(booster.predict(matrix))
    labels = rows[variant_id].to_numpy().astype(int)
    return Score(rows=rows.height, average_precision=average_precision(labels, probabilities))

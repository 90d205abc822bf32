"""Score a saved model on any bars: rebuild its features and its variant's labels, then AP.

Events before the model's test period overlap what trained and chose it (train and
selection periods): they are scored apart, as in-sample, so an optimistic figure is never
mistaken for an out-of-sample one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from alphafactory.data.bars import load_bars
from alphafactory.errors import DataError, ModelError
from alphafactory.features import build_feature_matrix
from alphafactory.metrics import average_precision
from alphafactory.models import load_model
from alphafactory.targets.swing import build_targets
from alphafactory.targets.variants import parse_variant_id, variant_grid

IN_SAMPLE = "in-sample"
OUT_OF_SAMPLE = "out-of-sample"
UNKNOWN_PERIOD = "all (periods unknown)"


@dataclass(frozen=True)
class Score:
    """AP of one model on one side of its test-period start."""

    period: str
    rows: int
    average_precision: float
    first: str = ""
    last: str = ""


def score_model(
    model_path: Path,
    variant_id: str,
    data_uri: str,
    scale: str,
    test_start: np.datetime64 | None = None,
    sha256: str | None = None,
) -> list[Score]:
    """AP of the model at `model_path` on the labelled event rows of `data_uri`: one score for
    the events before `test_start` (in-sample) and one from it on (out-of-sample); a single
    score of every event when the model's periods are unknown (`test_start` None)."""
    variant = parse_variant_id(variant_id)
    bars = load_bars(data_uri)
    if variant.symbol not in set(bars["symbol"].to_list()):
        raise DataError(
            f"{data_uri}: no bars for symbol {variant.symbol}, which {variant_id} needs"
        )
    model = load_model(model_path, sha256)
    names = list(model.feature_names)
    features = build_feature_matrix(bars, scale)
    missing = [name for name in names if name not in features.columns]
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
    matrix = rows.select(names).to_numpy().astype(np.float32)
    probabilities = model.predict_proba(matrix)
    labels = rows[variant_id].to_numpy().astype(int)
    stamps = rows["timestamp"].cast(pl.Datetime("us")).to_numpy()
    if test_start is None:
        sides = [(UNKNOWN_PERIOD, np.ones(len(stamps), dtype=bool))]
    else:
        sides = [(IN_SAMPLE, stamps < test_start), (OUT_OF_SAMPLE, stamps >= test_start)]
    return [
        Score(
            period=name,
            rows=int(mask.sum()),
            average_precision=average_precision(labels[mask], probabilities[mask]),
            first=str(stamps[mask].min()) if mask.any() else "",
            last=str(stamps[mask].max()) if mask.any() else "",
        )
        for name, mask in sides
        if mask.any()
    ]

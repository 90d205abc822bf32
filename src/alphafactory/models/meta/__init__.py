"""The meta family: a logistic meta-learner over other registered families' purged
out-of-fold probabilities and context features, the bases stored as nested bundles."""

from __future__ import annotations

from alphafactory.models.meta.family import MetaFamily, MetaModel, MetaParams

__all__ = ["MetaFamily", "MetaModel", "MetaParams"]

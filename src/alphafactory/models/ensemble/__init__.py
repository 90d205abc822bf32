"""The ensemble family: HGB, random forest and logistic regression stacked by a logistic
meta-learner on their purged out-of-fold probabilities (scikit-learn, stored with skops)."""

from __future__ import annotations

from alphafactory.models.ensemble.family import EnsembleFamily, EnsembleModel, EnsembleParams

__all__ = ["EnsembleFamily", "EnsembleModel", "EnsembleParams"]

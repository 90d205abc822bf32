"""Classification metrics used for selection: average precision across the three classes."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix


def average_precision(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Macro average precision over the classes present in `labels` (one-vs-rest).

    A class absent from `labels` has no defined AP and is left out of the average;
    with fewer than two classes present the score is NaN.
    """
    present = [c for c in range(probabilities.shape[1]) if np.any(labels == c)]
    if len(present) < 2:
        return float("nan")
    scores = [average_precision_score(labels == c, probabilities[:, c]) for c in present]
    return float(np.mean(scores))


def class_confusion(labels: np.ndarray, probabilities: np.ndarray, n_classes: int = 3) -> list:
    """Confusion matrix (rows = true class) of the arg-max prediction."""
    predicted = probabilities.argmax(axis=1)
    return confusion_matrix(labels, predicted, labels=list(range(n_classes))).tolist()

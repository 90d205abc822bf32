"""Tests of the selection metric: macro average precision over the classes present."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from alphafactory.metrics import average_precision, class_confusion


def one_hot(labels: np.ndarray, n_classes: int = 3) -> np.ndarray:
    return np.eye(n_classes)[labels]


def test_perfect_scores_give_one() -> None:
    labels = np.array([0, 1, 2, 2, 1, 0, 0])
    assert average_precision(labels, one_hot(labels)) == 1.0


def test_perfect_ranking_without_one_hot_gives_one() -> None:
    labels = np.array([0, 1, 2, 1])
    probabilities = np.array([[0.5, 0.3, 0.2], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]])
    assert average_precision(labels, probabilities) == 1.0


def test_hand_computed_value() -> None:
    labels = np.array([0, 0, 1, 1])
    # Class 0 scores rank a negative first: AP = (1/2 + 2/3) / 2 = 7/12. Class 1 perfect.
    probabilities = np.array([[0.6, 0.4, 0.0], [0.5, 0.5, 0.0], [0.7, 0.3, 0.0], [0.1, 0.9, 0.0]])
    ap_class0 = average_precision_score(labels == 0, probabilities[:, 0])
    assert ap_class0 == pytest.approx(7 / 12)
    ap_class1 = average_precision_score(labels == 1, probabilities[:, 1])
    assert average_precision(labels, probabilities) == pytest.approx((ap_class0 + ap_class1) / 2)


def test_absent_class_is_excluded_from_the_mean() -> None:
    labels = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.8, 0.2, 0.0], [0.2, 0.8, 0.0]])
    # Class 2 never occurs; counting it as AP 0 would give 2/3 instead of 1.
    assert average_precision(labels, probabilities) == 1.0


def test_fewer_than_two_classes_is_nan() -> None:
    labels = np.array([1, 1, 1])
    assert math.isnan(average_precision(labels, one_hot(labels)))
    assert math.isnan(average_precision(np.array([], dtype=int), np.zeros((0, 3))))


def test_random_scores_are_near_prevalence() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, size=6000)
    probabilities = rng.dirichlet(np.ones(3), size=6000)
    assert average_precision(labels, probabilities) == pytest.approx(1 / 3, abs=0.03)


def test_class_confusion_rows_are_true_classes() -> None:
    labels = np.array([0, 0, 1, 2])
    probabilities = one_hot(np.array([0, 1, 1, 1]))
    assert class_confusion(labels, probabilities) == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]

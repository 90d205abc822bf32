"""The paired block sign-flip test that decides whether tuned parameters earn their place."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.errors import DataError
from alphafactory.metrics import average_precision
from alphafactory.paired import macro_ap, paired_ap_test


def model(rng: np.random.Generator, labels: np.ndarray, strength: float) -> np.ndarray:
    """Probabilities with `strength` extra mass on the true class."""
    scores = rng.random((len(labels), 3))
    scores[np.arange(len(labels)), labels] += strength
    return scores / scores.sum(axis=1, keepdims=True)


def test_macro_ap_equals_the_project_metric() -> None:
    rng = np.random.default_rng(0)
    for trial in range(50):
        labels = rng.integers(0, 2 + trial % 2, 80)  # two or three classes present
        probabilities = np.round(model(rng, labels, 0.2), 1)  # ties included
        assert macro_ap(labels, probabilities) == pytest.approx(
            average_precision(labels, probabilities), abs=1e-12
        )


def test_a_clearly_better_model_wins_and_the_test_is_antisymmetric() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    weak, strong = model(rng, labels, 0.1), model(rng, labels, 0.4)
    better = paired_ap_test(labels, weak, strong, seed=3)
    assert better.gain == pytest.approx(macro_ap(labels, strong) - macro_ap(labels, weak))
    assert better.gain > 0.2 and better.p_value == pytest.approx(1 / 200)
    worse = paired_ap_test(labels, strong, weak, seed=3)
    assert worse.gain == pytest.approx(-better.gain) and worse.p_value == 1.0
    assert paired_ap_test(labels, weak, strong, seed=3) == better  # deterministic


def test_exchangeable_models_are_rarely_called_better() -> None:
    rng = np.random.default_rng(2)
    p_values = []
    for seed in range(60):
        labels = rng.integers(0, 3, 120)
        first, second = model(rng, labels, 0.2), model(rng, labels, 0.2)
        p_values.append(paired_ap_test(labels, first, second, permutations=99, seed=seed).p_value)
    rejected = np.mean(np.array(p_values) < 0.05)
    assert rejected <= 0.12
    assert 0.3 <= np.mean(np.array(p_values) < 0.5) <= 0.7  # roughly uniform, not stuck at 1


def test_one_class_and_bad_shapes() -> None:
    labels = np.zeros(40, dtype=int)
    probabilities = np.full((40, 3), 1 / 3)
    result = paired_ap_test(labels, probabilities, probabilities)
    assert np.isnan(result.gain) and result.p_value == 1.0
    with pytest.raises(DataError, match=r"two n x k prediction arrays for n=40 events"):
        paired_ap_test(labels, probabilities, probabilities[:10])

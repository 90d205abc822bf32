"""The FTRL family: the FTRL-Proximal update against hand-computed numbers and a per-row
reference loop, standardisation from the training rows, early stopping and the payload."""

from __future__ import annotations

import dataclasses
import io as stdio
import json
import math

import numpy as np
import pytest

from alphafactory.models import FitBudget, preset_params
from alphafactory.models.ftrl import FTRLFamily
from alphafactory.models.ftrl.ftrl import FTRLState, Hyper, Scaler, one_hot
from tests.contract.conftest import make_sample

HYPER = Hyper(alpha=0.5, beta=1.0, l1=0.2, l2=1.0)
#: Two design rows (two features, then the bias column of ones) with labels 1 and 2.
ROWS = np.array([[1.0, 2.0, 1.0], [-1.0, 0.5, 1.0]])
LABELS = np.array([1, 2])


def test_one_step_on_two_rows_matches_hand_computed_z_n_w() -> None:
    """From w = 0 every class has p = 1/3, so the residuals p - y are
    row 1: (1/3, -2/3, 1/3), row 2: (1/3, 1/3, -2/3); g = X^T (p - y), sigma * w = 0."""
    state = FTRLState(3, HYPER)
    state.step(ROWS, one_hot(LABELS))
    g = np.array(
        [
            [0.0, -1.0, 1.0],  # x0 = (1, -1)
            [5 / 6, -7 / 6, 1 / 3],  # x1 = (2, 0.5)
            [2 / 3, -1 / 3, -1 / 3],  # bias = (1, 1)
        ]
    )
    np.testing.assert_allclose(state.z, g, atol=1e-15)
    np.testing.assert_allclose(state.n, g * g, atol=1e-15)
    # regularised rows: w = -(z - sign(z) 0.2) / ((1 + |g|) / 0.5 + 1), 0 where |z| <= 0.2;
    # the bias row has l1 = l2 = 0: w = -z / ((1 + |g|) / 0.5)
    expected = np.array(
        [
            [0.0, 0.8 / 5, -0.8 / 5],
            [-19 / 140, 29 / 160, -2 / 55],
            [-1 / 5, 1 / 8, 1 / 8],
        ]
    )
    np.testing.assert_allclose(state.weights(), expected, atol=1e-15)


def _reference(rows: np.ndarray, labels: np.ndarray, hyper: Hyper) -> tuple[list, list]:
    """McMahan et al. Algorithm 1, one row and one coordinate at a time, in plain Python."""
    d, k = rows.shape[1], 3
    z = [[0.0] * k for _ in range(d)]
    n = [[0.0] * k for _ in range(d)]
    for x, label in zip(rows.tolist(), labels.tolist(), strict=True):
        w = [[0.0] * k for _ in range(d)]
        for i in range(d):
            l1, l2 = (0.0, 0.0) if i == d - 1 else (hyper.l1, hyper.l2)
            for c in range(k):
                if abs(z[i][c]) > l1:
                    rate = (hyper.beta + math.sqrt(n[i][c])) / hyper.alpha + l2
                    w[i][c] = -(z[i][c] - math.copysign(l1, z[i][c])) / rate
        logits = [sum(x[i] * w[i][c] for i in range(d)) for c in range(k)]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        p = [e / sum(exps) for e in exps]
        for i in range(d):
            for c in range(k):
                g = x[i] * (p[c] - (1.0 if c == label else 0.0))
                sigma = (math.sqrt(n[i][c] + g * g) - math.sqrt(n[i][c])) / hyper.alpha
                z[i][c] += g - sigma * w[i][c]
                n[i][c] += g * g
    return z, n


def test_batches_of_one_row_are_the_papers_per_row_update() -> None:
    rng = np.random.default_rng(0)
    rows = np.hstack([rng.normal(size=(25, 3)), np.ones((25, 1))])
    labels = rng.integers(0, 3, size=25)
    state = FTRLState(4, HYPER)
    for at in range(len(rows)):
        state.step(rows[at : at + 1], one_hot(labels[at : at + 1]))
    z, n = _reference(rows, labels, HYPER)
    np.testing.assert_allclose(state.z, z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.n, n, rtol=1e-12, atol=1e-12)


def test_standardisation_uses_training_rows_and_sends_nan_to_the_mean() -> None:
    features = np.array([[1.0, 5.0], [3.0, np.nan], [5.0, 5.0]], dtype=np.float32)
    scaler = Scaler.fit(features)
    np.testing.assert_allclose(scaler.mean, [3.0, 5.0])
    np.testing.assert_allclose(scaler.scale, [math.sqrt(8 / 3), 1.0])  # constant column: 1
    design = scaler.design(np.array([[3.0 + math.sqrt(8 / 3), np.nan]], dtype=np.float64))
    np.testing.assert_allclose(design, [[1.0, 0.0, 1.0]])


def test_fit_keeps_the_best_pass_and_stops_after_the_patience() -> None:
    train, valid = make_sample(1200, seed=1), make_sample(400, seed=2, start="2024-03-01")
    budget = FitBudget(rounds=200, early_stopping=5, seed=7)
    model = FTRLFamily().fit(train, valid, preset_params("ftrl", "aggressive"), budget)
    losses = model.record["pass_losses"]
    assert model.best_iteration == int(np.argmin(losses)) + 1
    assert len(losses) == model.record["passes"] < budget.rounds  # stopped early
    assert len(losses) - model.best_iteration == budget.early_stopping
    # the statistics are the training rows' own (the validation rows are another draw)
    np.testing.assert_allclose(model.scaler.mean, np.nanmean(train.features, axis=0), atol=1e-6)
    # the kept weights are those of the best pass: its validation loss is reproduced
    probabilities = model.predict_proba(valid.features)
    loss = -np.mean(np.log(probabilities[np.arange(len(valid)), valid.labels]))
    assert loss == pytest.approx(losses[model.best_iteration - 1], rel=1e-12)


def test_rounds_cap_the_passes_and_weights_follow_the_rows() -> None:
    train, valid = make_sample(300, seed=4), make_sample(100, seed=5)
    budget = FitBudget(rounds=3, early_stopping=100, seed=7)
    model = FTRLFamily().fit(train, valid, {"batch_size": 300}, budget)
    assert model.record["passes"] == 3
    # one batch per pass: three full-batch steps, weighting every row 2 doubles every g
    double = dataclasses.replace(train, weights=np.full(300, 2.0))
    twice = FTRLFamily().fit(double, valid, {"batch_size": 300}, budget)
    assert twice.best_iteration == 3 and not np.allclose(twice.state.n, model.state.n)
    scaler = Scaler.fit(train.features)
    state = FTRLState(7, Hyper(0.1, 1.0, 1.0, 1.0))
    for _ in range(3):
        state.step(scaler.design(train.features), one_hot(train.labels), np.full(300, 2.0))
    np.testing.assert_allclose(twice.state.z, state.z, rtol=1e-12)


def test_payload_is_plain_arrays_and_json() -> None:
    train, valid = make_sample(300, seed=4), make_sample(100, seed=5)
    model = FTRLFamily().fit(train, valid, {}, FitBudget(rounds=5, early_stopping=2))
    files = model.files()
    assert sorted(files) == ["ftrl.json", "weights.npz"]
    with np.load(stdio.BytesIO(files["weights.npz"]), allow_pickle=False) as archive:
        assert sorted(archive.files) == ["mean", "n", "scale", "w", "z"]
        assert archive["w"].shape == (7, 3) and archive["w"].dtype == np.float64
        np.testing.assert_array_equal(archive["w"], model.weights)
    record = json.loads(files["ftrl.json"])
    assert record["alpha"] == 0.1 and record["best_pass"] == model.best_iteration

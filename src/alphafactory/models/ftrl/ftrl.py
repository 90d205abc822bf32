"""FTRL-Proximal for multinomial logistic regression, in plain numpy.

The update is Algorithm 1 of McMahan et al. (2013), "Ad Click Prediction: a View from the
Trenches", applied to every (coordinate, class) pair of a weight matrix `w` (features + 1
bias row, × 3 classes) whose logits go through a softmax:

    w = 0                                                   if |z| <= l1
    w = -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2)  otherwise
    g = x (p - y)            gradient of the multinomial log loss for the logit of each class
    sigma = (sqrt(n + g^2) - sqrt(n)) / alpha
    z <- z + g - sigma w,    n <- n + g^2

A step takes a mini-batch: `g` is the sum of its rows' (sample-weighted) gradients, all
computed with the weights in force at the batch's start; a batch of one row is exactly the
paper's per-row update. The bias row (the last) is not regularised (its l1 and l2 are 0), so
the model can always learn the class frequencies.

Features are standardised with the training rows' mean and standard deviation (of finite
values; a constant column gets scale 1); after standardisation a missing (NaN or infinite)
value becomes 0, i.e. the training mean, which contributes nothing to the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphafactory.models._base import N_CLASSES

#: Probabilities are clipped here before the log of the validation loss.
EPSILON = 1e-15


@dataclass(frozen=True)
class Hyper:
    """The FTRL-Proximal hyper-parameters (per-coordinate learning rate alpha / (beta + sqrt n))."""

    alpha: float
    beta: float
    l1: float
    l2: float


@dataclass(frozen=True)
class Scaler:
    """Per-column standardisation learnt from the training rows."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> Scaler:
        values = np.asarray(features, dtype=np.float64)
        finite = np.isfinite(values)
        count = finite.sum(axis=0)
        safe = np.where(finite, values, 0.0)
        mean = safe.sum(axis=0) / np.maximum(count, 1)
        spread = np.where(finite, values - mean, 0.0)
        std = np.sqrt((spread * spread).sum(axis=0) / np.maximum(count, 1))
        scale = np.where(std > 0, std, 1.0)
        return cls(mean, scale)

    def design(self, features: np.ndarray) -> np.ndarray:
        """Standardised rows, missing values as 0, and a trailing bias column of ones."""
        values = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        values[~np.isfinite(values)] = 0.0
        return np.hstack([values, np.ones((len(values), 1))])


class FTRLState:
    """The z and n accumulators of every (coordinate, class) pair, and the weights they give.

    Args:
        n_inputs: design columns (features + 1 bias).
        hyper: the FTRL hyper-parameters.
    """

    def __init__(self, n_inputs: int, hyper: Hyper) -> None:
        self.hyper = hyper
        self.z = np.zeros((n_inputs, N_CLASSES))
        self.n = np.zeros((n_inputs, N_CLASSES))
        self._l1 = np.full((n_inputs, 1), hyper.l1)
        self._l2 = np.full((n_inputs, 1), hyper.l2)
        self._l1[-1] = 0.0  # the bias is not regularised
        self._l2[-1] = 0.0

    def weights(self) -> np.ndarray:
        """w from z and n (the closed-form FTRL-Proximal solution per coordinate)."""
        h = self.hyper
        denominator = (h.beta + np.sqrt(self.n)) / h.alpha + self._l2
        shrunk = -(self.z - np.sign(self.z) * self._l1) / denominator
        return np.where(np.abs(self.z) <= self._l1, 0.0, shrunk)

    def step(
        self, design: np.ndarray, onehot: np.ndarray, row_weights: np.ndarray | None = None
    ) -> None:
        """One update on a mini-batch of design rows and their one-hot labels."""
        w = self.weights()
        residual = softmax(design @ w) - onehot
        if row_weights is not None:
            residual *= row_weights[:, None]
        g = design.T @ residual
        g2 = g * g
        sigma = (np.sqrt(self.n + g2) - np.sqrt(self.n)) / self.hyper.alpha
        self.z += g - sigma * w
        self.n += g2

    def copy(self) -> FTRLState:
        state = FTRLState(len(self.z), self.hyper)
        state.z, state.n = self.z.copy(), self.n.copy()
        return state


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (rows × classes), shifted by the row maximum for stability."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def log_loss(
    probabilities: np.ndarray, labels: np.ndarray, row_weights: np.ndarray | None = None
) -> float:
    """Mean (sample-weighted) multinomial log loss."""
    picked = probabilities[np.arange(len(labels)), labels]
    losses = -np.log(np.clip(picked, EPSILON, 1.0))
    if row_weights is None:
        return float(losses.mean())
    return float((losses * row_weights).sum() / row_weights.sum())


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Labels 0..2 as rows × 3 indicator columns."""
    return np.eye(N_CLASSES)[np.asarray(labels, dtype=np.int64)]

"""Paired comparison of two models on the same time-ordered events: is the second one's
average precision better than the first's by more than chance?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphafactory.errors import DataError
from alphafactory.skill import default_block_length, fast_average_precision


@dataclass(frozen=True)
class PairedResult:
    """The second model's macro-AP gain over the first, and its one-sided p-value."""

    gain: float
    p_value: float
    block: int


def macro_ap(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Macro one-vs-rest AP over the classes present (as `metrics.average_precision`)."""
    present = [c for c in range(probabilities.shape[1]) if np.any(labels == c)]
    if len(present) < 2:
        return float("nan")
    return float(
        np.mean([fast_average_precision(labels == c, probabilities[:, c]) for c in present])
    )


def paired_ap_test(
    labels: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    *,
    permutations: int = 199,
    block: int = 0,
    seed: int = 0,
) -> PairedResult:
    """Block sign-flip test of ``AP(second) - AP(first)`` on the same events.

    Under the null the two models are exchangeable, so each block of consecutive events
    swaps its two predictions with probability one half (blocks keep serial dependence);
    p = (1 + #{null gain >= observed}) / (1 + permutations). NaN gain and p = 1 when the
    events hold fewer than two classes.
    """
    labels = np.asarray(labels)
    if first.shape != second.shape or first.shape[0] != labels.shape[0]:
        raise DataError(
            f"paired_ap_test needs two n x k prediction arrays for n={labels.shape[0]} events; "
            f"got {first.shape} and {second.shape}"
        )
    gain = macro_ap(labels, second) - macro_ap(labels, first)
    size = block or default_block_length(len(labels))
    if not np.isfinite(gain):
        return PairedResult(float("nan"), 1.0, size)
    rng = np.random.default_rng(seed)
    block_of = np.arange(len(labels)) // size
    exceed = 0
    for _ in range(permutations):
        swap = (rng.random(block_of[-1] + 1) < 0.5)[block_of][:, None]
        null = macro_ap(labels, np.where(swap, first, second)) - macro_ap(
            labels, np.where(swap, second, first)
        )
        exceed += null >= gain - 1e-12
    return PairedResult(float(gain), (1 + exceed) / (1 + permutations), size)

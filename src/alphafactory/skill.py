"""Skill test of a 3-class model on the test period: block permutation p-value, bootstrap CIs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import numpy as np

from alphafactory.errors import DataError

__all__ = [
    "SkillResult",
    "adjust_p_values",
    "average_precision_rows",
    "baseline_probabilities",
    "block_permutation_indices",
    "decide_skill",
    "default_block_length",
    "fast_average_precision",
    "log_loss_per_event",
    "macro_average_precision_rows",
    "moving_block_bootstrap_indices",
    "skill_test",
]

CLASSES = (0, 1, 2)
MIN_EVENTS = 10
_FLOOR = 1e-6
_TIE_TOLERANCE = 1e-12


def _per_positive(weighted: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Summed precision over the positives divided by their number; NaN without positives."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / total, np.nan)


def _ap_shared(hits: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AP per row of `hits` (B x n) under one score vector; as sklearn, precision is taken at
    the end of each tie group: AP = sum over groups of recall step x precision at its end."""
    n = scores.shape[0]
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True)) if n else order
    counter = np.int16 if n < np.iinfo(np.int16).max else np.int64  # small ints: faster cumsum
    found = np.cumsum(hits[:, order], axis=1, dtype=counter)
    if ends.size < n:
        found = found[:, ends]
    weighted = found.astype(float)
    np.multiply(weighted, np.diff(found, axis=1, prepend=0), out=weighted)
    total = found[:, -1] if n else np.zeros(len(hits))
    return _per_positive(weighted @ (1.0 / (ends + 1)), total)


def _ap_resampled(draws: np.ndarray, hits: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AP per bootstrap row of event indices `draws` (B x n) with `hits` (B x n); counting
    drawn events and positives per tie group of `scores` with bincount avoids a sort per row."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    tie_group = np.empty(scores.shape[0], dtype=np.intp)
    tie_group[order] = np.cumsum(np.append(False, ordered[1:] != ordered[:-1]))
    n_rows, n_groups = draws.shape[0], int(tie_group.max()) + 1
    flat = (tie_group[draws] + n_groups * np.arange(n_rows)[:, None]).ravel()
    size = n_rows * n_groups
    counts = np.bincount(flat, minlength=size).reshape(n_rows, n_groups)
    positives = np.bincount(flat, weights=hits.ravel(), minlength=size).reshape(n_rows, n_groups)
    seen = np.maximum(np.cumsum(counts, axis=1), 1)  # undrawn groups have no positives anyway
    precision = np.cumsum(positives, axis=1)
    np.divide(precision, seen, out=precision)
    np.multiply(positives, precision, out=positives)
    return _per_positive(positives.sum(axis=1), hits.sum(axis=1))


def _macro(per_class: list[np.ndarray]) -> np.ndarray:
    """Mean over the classes with a defined AP, per row; NaN where fewer than two are defined."""
    stacked = np.stack(per_class)
    defined = ~np.isnan(stacked)
    count = defined.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(defined, stacked, 0.0).sum(axis=0) / count
    return np.where(count >= 2, mean, np.nan)


def average_precision_rows(label_rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Returns the AP of each binary label row under one score vector (sklearn's value; NaN
    for rows without positives); the scores are sorted once for all rows.

    Args:
        label_rows: B x n binary labels (bool or 0/1), e.g. permutations of one label array.
        scores: n scores shared by every row.
    """
    rows = np.atleast_2d(np.asarray(label_rows)).astype(bool)
    return _ap_shared(rows, np.asarray(scores, dtype=float))


def fast_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Returns the average precision, equal to sklearn's (ties included); NaN without positives.

    Args:
        labels: n binary labels (bool or 0/1).
        scores: n scores; higher means more likely positive.
    """
    return float(average_precision_rows(np.asarray(labels)[None, :], scores)[0])


def macro_average_precision_rows(
    label_rows: np.ndarray, probabilities: np.ndarray, classes: Sequence[int] = CLASSES
) -> np.ndarray:
    """Returns the macro one-vs-rest AP of each label row over the classes present in it (as
    `metrics.average_precision`; NaN with fewer than two).

    Args:
        label_rows: B x n class labels, each row a permutation of the original labels.
        probabilities: n x len(classes) probabilities shared by every row.
        classes: the class of each probability column.
    """
    rows = np.atleast_2d(np.asarray(label_rows))
    columns = enumerate(classes)
    return _macro([average_precision_rows(rows == c, probabilities[:, i]) for i, c in columns])


def _macro_resampled(
    labels: np.ndarray, probabilities: np.ndarray, draws: np.ndarray
) -> np.ndarray:
    """Macro AP per bootstrap row of event indices `draws` (B x n)."""
    drawn = labels[draws]
    columns = range(probabilities.shape[1])
    return _macro([_ap_resampled(draws, drawn == c, probabilities[:, c]) for c in columns])


def _macro_constant(label_rows: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro AP per row of a constant prediction (one tie group: the class prevalence)."""
    constant = np.zeros(label_rows.shape[1])
    return _macro([_ap_shared(label_rows == c, constant) for c in range(n_classes)])


def baseline_probabilities(train_labels: np.ndarray, n_rows: int, n_classes: int = 3) -> np.ndarray:
    """Returns the no-skill prediction, n_rows x n_classes training class frequencies (unseen
    classes get a 1e-6 floor before renormalising, so log loss stays finite).

    Args:
        train_labels: class labels of the training period.
        n_rows: rows to predict.
        n_classes: number of classes.
    """
    train = np.asarray(train_labels)
    if train.ndim != 1 or train.size == 0:
        raise DataError("train labels must be a non-empty 1-D array; pass the training labels")
    if np.any((train < 0) | (train >= n_classes)):
        raise DataError(f"train labels must lie in 0..{n_classes - 1}; drop other values")
    frequencies = np.bincount(train.astype(int), minlength=n_classes) / train.size
    frequencies = np.maximum(frequencies, _FLOOR)
    return np.tile(frequencies / frequencies.sum(), (n_rows, 1))


def log_loss_per_event(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Returns minus the log of each event's true-class probability, clipped to [1e-15, 1].

    Args:
        labels: n class labels indexing the columns of `probabilities`.
        probabilities: n x k probabilities.
    """
    rows = np.arange(len(probabilities))
    chosen = np.asarray(probabilities)[rows, np.asarray(labels, dtype=int)]
    return -np.log(np.clip(chosen, 1e-15, 1.0))


def default_block_length(n: int) -> int:
    """Events per block when none is configured: about the cube root of the count."""
    return max(1, round(n ** (1 / 3)))


def block_permutation_indices(
    n: int, block: int, n_perm: int, rng: np.random.Generator
) -> np.ndarray:
    """Returns n_perm permutations of range(n): the events, circularly offset at random so
    block borders vary, cut into blocks whose order is shuffled (dependence within is kept).

    Args:
        n: number of time-ordered events.
        block: events per block (the last block may be shorter).
        n_perm: number of permutations.
        rng: random generator.
    """
    block = max(1, min(block, n))
    n_blocks = -(-n // block)
    slots = np.arange(n_blocks * block).reshape(n_blocks, block)
    slots[slots >= n] = -1
    cut = slots[np.argsort(rng.random((n_perm, n_blocks)), axis=1)].reshape(n_perm, -1)
    rows = cut[cut >= 0].reshape(n_perm, n)
    rows += rng.integers(0, n, size=(n_perm, 1))
    rows[rows >= n] -= n  # the circular offset, cheaper than %
    return rows


def moving_block_bootstrap_indices(
    n: int, block: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Returns n_boot moving-block bootstrap draws of n indices: circular runs of `block`
    events from random starts, concatenated and truncated to n.

    Args:
        n: number of time-ordered events.
        block: events per block.
        n_boot: number of draws.
        rng: random generator.
    """
    block = max(1, min(block, n))
    starts = rng.integers(0, n, size=(n_boot, -(-n // block), 1))
    return ((starts + np.arange(block)) % n).reshape(n_boot, -1)[:, :n]


@dataclass(frozen=True)
class SkillResult:
    """The skill test of one model on its test period (CIs are 95% block bootstrap ones)."""

    n_events: int
    test_ap: float
    baseline_ap: float
    ap_excess: float
    ap_ci_low: float
    ap_ci_high: float
    test_log_loss: float
    baseline_log_loss: float
    log_loss_ci_low: float
    log_loss_ci_high: float
    p_value: float
    p_adjusted: float = math.nan  # NaN: not adjusted yet, the raw p-value
    skill: bool = False
    block: int = 1

    def __post_init__(self) -> None:
        if math.isnan(self.p_adjusted):
            object.__setattr__(self, "p_adjusted", self.p_value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values: Python ints, floats (maybe NaN) and a bool."""
        return {k: v if isinstance(v, bool | int) else float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkillResult:
        """The result that `to_dict` wrote (other keys beside it, such as plots, are ignored)."""
        kinds = {"n_events": int, "block": int, "skill": bool}
        names = {f.name for f in fields(cls)}
        return cls(**{k: kinds.get(k, float)(v) for k, v in data.items() if k in names})


def _validate(labels: np.ndarray, probabilities: np.ndarray) -> None:
    if labels.ndim != 1:
        raise DataError(f"labels must be 1-D, got shape {labels.shape}; pass one label per event")
    if probabilities.ndim != 2 or probabilities.shape[1] != len(CLASSES):
        raise DataError(
            f"probabilities must be n x {len(CLASSES)}, got shape {probabilities.shape}; "
            "pass one column per class (neither, breakout, reversion)"
        )
    if probabilities.shape[0] != labels.shape[0]:
        raise DataError(
            f"labels ({labels.shape[0]}) and probabilities ({probabilities.shape[0]} rows) differ "
            "in length; pass one probability row per labelled event"
        )
    if np.any((labels < 0) | (labels >= len(CLASSES))) or not np.all(np.isfinite(probabilities)):
        raise DataError("labels must lie in 0..2 and probabilities be finite; fix the inputs")


def _interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def skill_test(
    labels: np.ndarray,
    probabilities: np.ndarray,
    train_labels: np.ndarray,
    *,
    permutations: int = 999,
    bootstraps: int = 500,
    block: int = 0,
    seed: int = 0,
) -> SkillResult:
    """Does the model's macro AP beat the no-skill baseline on the test period?

    The p-value under "labels are unrelated to predictions" comes from block permutations of
    the labels, the CIs from a moving-block bootstrap of the events: both respect time order.

    Args:
        labels: n time-ordered test labels in 0..2.
        probabilities: n x 3 model probabilities.
        train_labels: training labels; their class frequencies are the baseline prediction.
        permutations: block permutations for the p-value.
        bootstraps: moving-block bootstrap draws for the CIs.
        block: events per block; 0 means `default_block_length(n)`.
        seed: random seed; equal seeds give equal results.

    Returns:
        The result with p_adjusted = p_value and skill False (see `decide_skill`). With fewer
        than 10 events or 2 classes, p_value is 1.0 and undefined metrics are NaN.
    """
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=float)
    _validate(labels, probabilities)
    n = labels.shape[0]
    block = block or default_block_length(n)
    baseline = baseline_probabilities(train_labels, n, len(CLASSES))
    test_ap = float(macro_average_precision_rows(labels, probabilities)[0])
    baseline_ap = float(_macro_constant(labels[None, :], len(CLASSES))[0])
    model_loss = log_loss_per_event(labels, probabilities)
    baseline_loss = log_loss_per_event(labels, baseline)
    ap_ci = loss_ci = (math.nan, math.nan)
    p_value = 1.0
    if n >= MIN_EVENTS and not math.isnan(test_ap):
        # vectorised over the draws: 2,000 events, 999 permutations and 500 bootstraps take
        # well under a second (no Python loop over draws, no sort per permutation)
        rng = np.random.default_rng(seed)
        permuted = labels.astype(np.int8)[block_permutation_indices(n, block, permutations, rng)]
        null = macro_average_precision_rows(permuted, probabilities)
        p_value = float((1 + np.sum(null >= test_ap - _TIE_TOLERANCE)) / (1 + permutations))
        draws = moving_block_bootstrap_indices(n, block, bootstraps, rng)
        resampled = _macro_resampled(labels, probabilities, draws)
        ap_ci = _interval(resampled - _macro_constant(labels[draws], len(CLASSES)))
        loss_ci = _interval((model_loss - baseline_loss)[draws].mean(axis=1))
    return SkillResult(
        n_events=n,
        test_ap=test_ap,
        baseline_ap=baseline_ap,
        ap_excess=test_ap - baseline_ap,
        ap_ci_low=ap_ci[0],
        ap_ci_high=ap_ci[1],
        test_log_loss=float(model_loss.mean()) if n else math.nan,
        baseline_log_loss=float(baseline_loss.mean()) if n else math.nan,
        log_loss_ci_low=loss_ci[0],
        log_loss_ci_high=loss_ci[1],
        p_value=p_value,
        block=block,
    )


def adjust_p_values(
    p_values: Mapping[str, float], method: Literal["holm", "bh"]
) -> dict[str, float]:
    """Returns the adjusted p-value per group (same keys), monotone and capped at 1.

    Args:
        p_values: raw p-value per group.
        method: "holm" (step-down, family-wise error) or "bh" (Benjamini-Hochberg step-up, FDR).
    """
    if method not in ("holm", "bh"):
        raise DataError(f"unknown p-value correction {method!r}; use 'holm' or 'bh'")
    keys = list(p_values)
    raw = np.array([p_values[k] for k in keys], dtype=float)
    if np.any(~np.isfinite(raw) | (raw < 0) | (raw > 1)):
        raise DataError("p-values must lie in [0, 1]; fix the skill results before adjusting")
    m, order = raw.size, np.argsort(raw, kind="stable")
    rank = np.arange(1, m + 1)
    if method == "holm":
        adjusted = np.maximum.accumulate((m - rank + 1) * raw[order])
    else:
        adjusted = np.minimum.accumulate((m / rank * raw[order])[::-1])[::-1]
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    return {k: float(v) for k, v in zip(keys, result, strict=True)}


def decide_skill(
    results: Mapping[str, SkillResult], alpha: float, method: Literal["holm", "bh"]
) -> dict[str, SkillResult]:
    """Returns new results with p_adjusted across the groups and skill = p_adjusted < alpha
    and AP above the baseline.

    Args:
        results: skill result per group.
        alpha: significance level.
        method: "holm" or "bh", see `adjust_p_values`.
    """
    adjusted = adjust_p_values({k: r.p_value for k, r in results.items()}, method)
    return {
        k: replace(r, p_adjusted=adjusted[k], skill=bool(adjusted[k] < alpha and r.ap_excess > 0))
        for k, r in results.items()
    }

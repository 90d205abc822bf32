"""Leak-free cross-validation folds over a variant's row timestamps (rolling and walk-forward).

A row at time t is labelled from bars after t up to its *label end* (the h-th next bar of its
symbol, see `alphafactory.data.splits`; an embargo moves it later). A fold validates on one
chronological block of rows and trains on rows whose label ends before the block starts;
rows after the block (only in :func:`purged_kfold_folds`) are kept only past the last
validation label end.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from alphafactory.errors import DataError

#: (train_mask, valid_mask): boolean masks aligned with the timestamps given.
Fold = tuple[np.ndarray, np.ndarray]


def _as_us(timestamps: np.ndarray) -> np.ndarray:
    return np.asarray(timestamps).astype("datetime64[us]")


def validation_blocks(
    stamps: np.ndarray, n_folds: int
) -> list[tuple[np.datetime64, np.datetime64]]:
    """Split time into ``n_folds + 1`` blocks of about equal row counts; the last n validate.

    Returns each validation block's (first, last) timestamp, chronological and disjoint.
    The first block only ever trains, so every fold has history before it.
    """
    ordered = np.sort(_as_us(stamps))
    unique = np.unique(ordered)
    if n_folds < 1 or len(unique) < n_folds + 1:
        raise DataError(
            f"cannot make {n_folds} folds from {len(unique)} distinct timestamps; "
            "use fewer folds or more rows"
        )
    cuts = [ordered[int(len(ordered) * k / (n_folds + 1))] for k in range(1, n_folds + 1)]
    starts = np.unique(np.asarray(cuts, dtype="datetime64[us]"))
    if len(starts) < n_folds:
        raise DataError(f"timestamps repeat too much to make {n_folds} disjoint folds")
    blocks: list[tuple[np.datetime64, np.datetime64]] = []
    for k, start in enumerate(starts):
        inside = unique[unique < starts[k + 1]] if k + 1 < len(starts) else unique
        blocks.append((start, inside[-1]))
    return blocks


def purge_training(
    timestamps: np.ndarray,
    label_ends: np.ndarray,
    candidates: np.ndarray,
    valid: np.ndarray,
) -> np.ndarray:
    """Drop candidate training rows that could leak into the validation rows `valid`.

    Rows before the block keep only if their label ends before it starts. Rows after it keep
    only if they come after the last validation label end, since their features may still
    carry information from the validation labels.
    """
    stamps, ends = _as_us(timestamps), _as_us(label_ends)
    before = ends < stamps[valid].min()
    after = stamps > ends[valid].max()
    return np.asarray(candidates, dtype=bool) & (before | after)


def _valid_mask(stamps: np.ndarray, block: tuple[np.datetime64, np.datetime64]) -> np.ndarray:
    return (stamps >= block[0]) & (stamps <= block[1])


def _checked(folds: list[Fold]) -> list[Fold]:
    for index, (train, valid) in enumerate(folds):
        if not train.any() or not valid.any():
            side = "training" if not train.any() else "validation"
            raise DataError(
                f"fold {index} has no {side} rows after purging; the label horizon or "
                "embargo is too long for the data, or there are too many folds"
            )
    return folds


def walk_forward_folds(
    timestamps: np.ndarray, n_folds: int = 5, *, label_ends: np.ndarray
) -> list[Fold]:
    """Expanding-window folds: fold k trains on all purged history before its validation block."""
    stamps = _as_us(timestamps)
    folds: list[Fold] = []
    for block in validation_blocks(stamps, n_folds):
        valid = _valid_mask(stamps, block)
        train = purge_training(stamps, label_ends, stamps < block[0], valid)
        folds.append((train, valid))
    return _checked(folds)


def rolling_folds(
    timestamps: np.ndarray,
    n_folds: int = 5,
    train_span: timedelta | np.timedelta64 | None = None,
    *,
    label_ends: np.ndarray,
) -> list[Fold]:
    """Rolling-window folds: fold k trains on the `train_span` of time just before its block.

    The window is ``[valid_start - train_span, valid_start)`` before purging; by default it is
    as long as the first (training-only) block, so every fold sees about as much history.
    """
    stamps = _as_us(timestamps)
    blocks = validation_blocks(stamps, n_folds)
    span = (
        np.timedelta64(train_span, "us") if train_span is not None else blocks[0][0] - stamps.min()
    )
    folds: list[Fold] = []
    for block in blocks:
        window = (stamps >= block[0] - span) & (stamps < block[0])
        valid = _valid_mask(stamps, block)
        folds.append((purge_training(stamps, label_ends, window, valid), valid))
    return _checked(folds)


def purged_kfold_folds(
    timestamps: np.ndarray, n_folds: int = 5, *, label_ends: np.ndarray
) -> list[Fold]:
    """Purged k-fold: each block validates once, training on rows on both sides of it.

    Uses the same ``n_folds + 1`` blocks as the chronological schemes (the first block never
    validates); training rows after a block start past its last label end.
    """
    stamps = _as_us(timestamps)
    folds: list[Fold] = []
    for block in validation_blocks(stamps, n_folds):
        valid = _valid_mask(stamps, block)
        folds.append((purge_training(stamps, label_ends, ~valid, valid), valid))
    return _checked(folds)

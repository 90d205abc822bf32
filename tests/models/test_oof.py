"""Purged walk-forward out-of-fold predictions: every prediction comes from a model that never
saw the row, nor any row whose label was still open when the row's block began."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alphafactory.errors import DataError
from alphafactory.models import Sample, _oof
from alphafactory.models._oof import TimeShare, out_of_fold, purged_folds, subsample

START = np.datetime64("2024-01-01T00:00", "us")


def irregular_sample(rows: int = 400, seed: int = 0) -> Sample:
    """Irregular event times (several events may share a bar) and label windows of 1-30
    hours, so neighbouring labels overlap; feature 0 is the row number (an audit trail)."""
    rng = np.random.default_rng(seed)
    stamps = START + np.sort(rng.integers(0, 6 * rows, size=rows)) * np.timedelta64(20, "m")
    ends = stamps + rng.integers(1, 31, size=rows) * np.timedelta64(1, "h")
    features = np.column_stack([np.arange(rows), rng.normal(size=rows)]).astype(np.float32)
    labels = rng.integers(0, 3, size=rows).astype(np.int32)
    return Sample(
        features, labels, ("row", "x"), weights=rng.random(rows), timestamps=stamps,
        label_ends=ends, aux={"move": rng.normal(size=rows)},
    )  # fmt: skip


class Memoriser:
    """A 'model' that remembers the rows it was fitted on and which rows it predicted; its
    probabilities carry its own number, so each prediction can be traced back to it."""

    def __init__(self, number: int, train: Sample) -> None:
        self.number = number
        self.seen = train.features[:, 0].astype(np.int64)
        self.train_stamps = train.timestamps
        self.train_ends = train.label_ends
        self.predicted: np.ndarray | None = None

    def signature(self) -> np.ndarray:
        return np.array([0.1 * (self.number + 1), 0.05, 0.95 - 0.1 * (self.number + 1)])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        assert self.predicted is None, "each fold model predicts its block once"
        self.predicted = features[:, 0].astype(np.int64)
        return np.tile(self.signature(), (len(features), 1))


def fit_memorisers(sample: Sample, n_folds: int) -> tuple[_oof.OutOfFold, list[Memoriser]]:
    models: list[Memoriser] = []

    def fit(train: Sample) -> Memoriser:
        models.append(Memoriser(len(models), train))
        return models[-1]

    return out_of_fold(sample, fit, n_folds), models


@pytest.mark.parametrize("n_folds", [2, 4, 6])
def test_every_prediction_comes_from_a_purged_causal_model(n_folds: int) -> None:
    sample = irregular_sample()
    stamps, ends = sample.timestamps, sample.label_ends
    assert stamps is not None and ends is not None
    oof, models = fit_memorisers(sample, n_folds)
    assert len(models) == len(oof.folds) == n_folds and all(f.fitted for f in oof.folds)
    purged_somewhere = False
    for row in np.flatnonzero(oof.mask):
        fold = oof.folds[oof.fold_of[row]]
        model = models[oof.fold_of[row]]
        assert model.predicted is not None and row in model.predicted
        # the stored probabilities are that model's (its signature)
        np.testing.assert_array_equal(oof.probabilities[row], model.signature())
        # the recorded training indices are exactly the rows the model was given
        np.testing.assert_array_equal(np.sort(model.seen), fold.train_index)
        assert row not in set(fold.train_index.tolist())
        block_start = stamps[fold.valid_index].min()
        assert stamps[row] >= block_start
        # purged: no training label ends at or after the block's first event
        assert np.all(ends[fold.train_index] < block_start)
        # walk-forward: strictly causal, every training event precedes the block
        assert np.all(stamps[fold.train_index] < block_start)
        # the model's view agrees with the sample's (no row was mislabelled in the cut)
        np.testing.assert_array_equal(model.train_ends, ends[fold.train_index])
        earlier = np.flatnonzero(stamps < block_start)
        purged_somewhere |= len(earlier) > len(fold.train_index)
    for fold, model in zip(oof.folds, models, strict=True):
        assert model.predicted is not None
        np.testing.assert_array_equal(model.predicted, fold.valid_index)
    assert purged_somewhere, "no label window overlapped a block: the test data is too easy"


def test_first_block_has_no_prediction_and_is_masked() -> None:
    sample = irregular_sample()
    stamps = sample.timestamps
    assert stamps is not None
    oof, _ = fit_memorisers(sample, 4)
    first_valid = stamps[oof.folds[0].valid_index].min()
    np.testing.assert_array_equal(oof.mask, stamps >= first_valid)
    assert np.all(np.isnan(oof.probabilities[~oof.mask]))
    assert np.all(oof.fold_of[~oof.mask] == -1)
    assert not np.isnan(oof.probabilities[oof.mask]).any()
    # the validation blocks tile everything after the first block, each row once
    covered = np.concatenate([fold.valid_index for fold in oof.folds])
    np.testing.assert_array_equal(np.sort(covered), np.flatnonzero(oof.mask))


def test_a_fold_whose_training_rows_hold_one_class_is_skipped() -> None:
    sample = irregular_sample()
    labels = sample.labels.copy()
    labels[: len(labels) // 4] = 0  # the first block (and some more) is all class 0
    sample = dataclasses.replace(sample, labels=labels)
    oof, models = fit_memorisers(sample, 4)
    assert [fold.fitted for fold in oof.folds] == [False, True, True, True]
    assert len(models) == 3
    assert not oof.mask[oof.folds[0].valid_index].any()
    assert oof.mask[oof.folds[1].valid_index].all()


def test_subsample_cuts_every_per_row_array() -> None:
    sample = irregular_sample(50)
    rows = np.array([3, 7, 11])
    cut = subsample(sample, rows)
    assert sample.weights is not None and cut.weights is not None
    np.testing.assert_array_equal(cut.features, sample.features[rows])
    np.testing.assert_array_equal(cut.weights, sample.weights[rows])
    np.testing.assert_array_equal(cut.aux["move"], sample.aux["move"][rows])
    assert cut.feature_names == sample.feature_names


@pytest.mark.parametrize("missing", ["timestamps", "label_ends"])
def test_missing_times_are_a_one_line_data_error(missing: str) -> None:
    sample = dataclasses.replace(irregular_sample(), **{missing: None})
    with pytest.raises(DataError, match=rf"need the sample's {missing}") as caught:
        out_of_fold(sample, lambda rows: Memoriser(0, rows), 4)
    assert "\n" not in str(caught.value)


def test_too_many_folds_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"cannot make 30 folds"):
        purged_folds(irregular_sample(20), 30)


def test_time_share_hands_out_time_in_proportion_to_work(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(_oof.time, "perf_counter", lambda: clock[0])
    share = TimeShare(10.0, total_work=10)
    assert share.take(2) == pytest.approx(2.0)  # 10 s left x 2/10
    clock[0] += 0.5  # the first sub-fit used only 0.5 of its 2 s
    assert share.take(4) == pytest.approx(9.5 * 4 / 8)  # the rest flows on
    clock[0] += 20.0
    assert share.take(4) == 0.0  # out of time: nothing, never negative
    assert TimeShare(None, 5).take(1) is None

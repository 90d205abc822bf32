"""Tests of the shard executor: bin a group once, fit each variant on subsets of that binning."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from alphafactory.data.splits import BEYOND_DATA, Periods, label_end_column, selection_split
from alphafactory.metrics import average_precision
from alphafactory.models import FitResult
from alphafactory.models.lightgbm import LightGBMModel
from alphafactory.models.lightgbm.family import DATASET_PARAMS, fixed_params
from alphafactory.models.lightgbm.shard import (
    GroupData,
    build_group,
    fit_groups,
    fit_many,
    fit_variant,
    variant_rows,
)
from alphafactory.targets.variants import Variant

N_ROWS, N_FEATURES = 3000, 30
HOUR = timedelta(hours=1)
HOURS = np.timedelta64(1, "h")
VARIANTS = [
    Variant("AAA", 3, "high", 1.0, 1.0, 6),  # every row labelled, rule on x0 / x1
    Variant("AAA", 3, "high", 2.0, 1.0, 6),  # half the rows, same rule
    Variant("AAA", 3, "high", 1.0, 1.0, 12),  # 70% of rows, the rule's classes swapped
]
PARAMS: dict[str, Any] = {
    **fixed_params(threads=1, seed=7),
    "num_leaves": 15,
    "max_depth": 5,
    "learning_rate": 0.1,
}
FIT = {"params": PARAMS, "num_rounds": 100, "early_stopping": 10, "min_rows": 30}


def rule(x_up: np.ndarray, x_down: np.ndarray) -> np.ndarray:
    return np.where(x_up > 0.5, 1, np.where(x_down > 0.5, 2, 0))


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """(timeline, float32 matrix, targets frame with one Int8 column per variant)."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(N_ROWS, N_FEATURES)).astype(np.float32)
    timeline = np.datetime64("2024-01-01T00:00", "us") + np.arange(N_ROWS) * np.timedelta64(1, "h")
    flip = rng.random(N_ROWS) < 0.05
    noise = rng.integers(0, 3, N_ROWS)
    first = np.where(flip, noise, rule(matrix[:, 0], matrix[:, 1]))
    swapped = np.where(flip, noise, rule(matrix[:, 1], matrix[:, 0]))
    half = rng.random(N_ROWS) < 0.5
    most = rng.random(N_ROWS) < 0.7
    targets = pl.DataFrame(
        {
            "timestamp": pl.Series(timeline).cast(pl.Datetime("us")),
            VARIANTS[0].variant_id: pl.Series(first, dtype=pl.Int8),
            VARIANTS[1].variant_id: pl.Series(np.where(half, first, -1), dtype=pl.Int8),
            VARIANTS[2].variant_id: pl.Series(np.where(most, swapped, -1), dtype=pl.Int8),
            # the frame is a slice of a longer hourly history: labels end h hours later
            **{
                label_end_column(h): pl.Series(timeline + h * np.timedelta64(1, "h"))
                for h in (6, 12)
            },
        }
    ).with_columns(pl.col(v.variant_id).replace(-1, None) for v in VARIANTS[1:])
    return timeline, matrix, targets


def split_at(timeline: np.ndarray, row: int, embargo_bars: int = 0) -> Any:
    """Train before `row`, select from it; the test period lies past the data."""
    return selection_split(Periods(timeline[row], BEYOND_DATA), embargo_bars)


def make_group(
    timeline: np.ndarray,
    matrix: np.ndarray,
    targets: pl.DataFrame,
    variants: list[Variant],
    max_train_rows: int | None = None,
) -> GroupData:
    train_union, valid_union, per_variant = variant_rows(
        timeline, targets, variants, split_at(timeline, 2400), max_train_rows
    )
    names = [f"f{i}" for i in range(matrix.shape[1])]
    return build_group(
        "AAA_w3_high", matrix, names, train_union, valid_union, per_variant, DATASET_PARAMS
    )


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    return make_data()


@pytest.fixture(scope="module")
def group(data: tuple[np.ndarray, np.ndarray, pl.DataFrame]) -> GroupData:
    return make_group(*data, VARIANTS)


@pytest.fixture(scope="module")
def sequential(group: GroupData) -> list[FitResult]:
    return fit_many(
        [partial(fit_variant, group, v.variant_id, keep_model=True, **FIT) for v in VARIANTS], 1
    )


def test_variant_rows_purge_and_labels(data: tuple[np.ndarray, np.ndarray, pl.DataFrame]) -> None:
    timeline, _, targets = data
    train_union, valid_union, per_variant = variant_rows(
        timeline, targets, VARIANTS, split_at(timeline, 2400)
    )
    train, train_y, valid, valid_y = per_variant[VARIANTS[0].variant_id]
    # Horizon 6 bars: rows whose label ends (t + 6h) before row 2400 are 0..2393.
    np.testing.assert_array_equal(train, np.arange(2394))
    np.testing.assert_array_equal(valid, np.arange(2400, 3000))
    labels = targets[VARIANTS[0].variant_id].to_numpy()
    np.testing.assert_array_equal(train_y, labels[:2394])
    np.testing.assert_array_equal(valid_y, labels[2400:])
    # Horizon 12 purges more; only labelled rows are used.
    train12, train12_y, valid12, _ = per_variant[VARIANTS[2].variant_id]
    assert train12.max() < 2388
    labelled12 = targets[VARIANTS[2].variant_id].is_not_null().to_numpy()
    assert labelled12[train12].all() and labelled12[valid12].all()
    assert len(train12) == labelled12[:2388].sum()
    np.testing.assert_array_equal(train12_y, targets[VARIANTS[2].variant_id].to_numpy()[train12])
    # Unions are sorted, unique and cover every variant's rows.
    np.testing.assert_array_equal(train_union, np.arange(2394))
    np.testing.assert_array_equal(valid_union, np.arange(2400, 3000))


def test_variant_rows_with_embargo_and_row_cap(
    data: tuple[np.ndarray, np.ndarray, pl.DataFrame],
) -> None:
    timeline, _, targets = data
    split = split_at(timeline, 2400, embargo_bars=5)
    _, _, per_variant = variant_rows(timeline, targets, VARIANTS[:1], split, 500)
    train, train_y, valid, _ = per_variant[VARIANTS[0].variant_id]
    assert len(train) == 500
    # the embargo moves label ends 5 bars later: t + 6h + 5h < row 2400 keeps 0..2388
    assert train[0] == 0 and train[-1] == 2388  # spread over the whole training period
    assert np.all(np.diff(train) > 0)
    np.testing.assert_array_equal(train_y, targets[VARIANTS[0].variant_id].to_numpy()[train])
    # selection rows need their embargoed end inside the data (the frame ends at row 2999)
    np.testing.assert_array_equal(valid, np.arange(2400, 2989))


def test_build_group_positions_point_at_the_same_rows(
    data: tuple[np.ndarray, np.ndarray, pl.DataFrame], group: GroupData
) -> None:
    _, matrix, _ = data
    assert group.feature_names == [f"f{i}" for i in range(N_FEATURES)]
    assert group.base_train.num_data() == 2394
    assert group.base_valid.num_data() == 600
    np.testing.assert_array_equal(group.valid_matrix, matrix[2400:])
    rows = group.rows[VARIANTS[1].variant_id]
    assert rows.train_index.dtype == np.int32
    assert len(rows.train_index) == len(rows.train_label) < 2394


def test_fit_variant_learns_the_signal(sequential: list[FitResult]) -> None:
    for variant, result in zip(VARIANTS, sequential, strict=True):
        assert result.variant_id == variant.variant_id
        assert result.status == "ok"
        # Chance AP is about the class prevalence (~1/3); the rule is learnable.
        assert result.average_precision > 0.5, result
        # More than one round proves the labels survived subset().construct() + set_label.
        assert result.best_iteration > 1
        assert result.model is not None
        assert result.valid_probabilities is not None
        assert result.valid_probabilities.shape == (result.n_valid, 3)
    assert sequential[0].n_train == 2394 and sequential[0].n_valid == 600
    assert sequential[1].n_train < sequential[0].n_train


def booster_of(result: FitResult) -> lgb.Booster:
    """The LightGBM booster inside a kept fit's model."""
    assert isinstance(result.model, LightGBMModel), result
    return result.model.booster


def test_variant_trains_on_its_own_labels(sequential: list[FitResult]) -> None:
    # Variant 3 swaps the classes: its model must rank x1 > 0.5 rows as breakout (class 1).
    model = booster_of(sequential[2])
    probe = np.zeros((2, N_FEATURES), dtype=np.float32)
    probe[0, 1] = 2.0  # x1 high -> class 1 for the swapped rule
    probe[1, 0] = 2.0  # x0 high -> class 2 for the swapped rule
    predicted = model.predict(probe).argmax(axis=1)
    assert predicted.tolist() == [1, 2]
    original = booster_of(sequential[0])
    assert original.predict(probe).argmax(axis=1).tolist() == [2, 1]


def test_set_label_before_construct_loses_the_label(group: GroupData) -> None:
    """Why `GroupData.datasets` calls construct() first: a subset built after set_label takes
    its label from the (label-less) reference, so the model sees one class and stops at once."""
    rows = group.rows[VARIANTS[0].variant_id]
    train = group.base_train.subset(rows.train_index.tolist())
    train.set_label(rows.train_label)
    train = train.construct()
    valid = group.base_valid.subset(rows.valid_index.tolist())
    valid.set_label(rows.valid_label)
    valid = valid.construct()
    assert np.unique(train.get_field("label")).tolist() == [0.0]
    booster = lgb.train(
        {**PARAMS, "min_child_samples": 24},
        train,
        num_boost_round=100,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(10, verbose=False)],
    )
    probabilities = booster.predict(
        group.valid_matrix[rows.valid_index], num_iteration=booster.best_iteration
    )
    assert booster.best_iteration <= 1
    assert np.allclose(probabilities.std(axis=0), 0.0, atol=1e-9)  # the same for every row
    assert average_precision(rows.valid_label, probabilities) < 0.4

    # The order the code uses keeps the labels.
    good_train, _ = group.datasets(VARIANTS[0].variant_id)
    np.testing.assert_array_equal(good_train.get_field("label"), rows.train_label)


def sparse_column(variant: Variant, train_rows: range, valid_rows: range) -> pl.Series:
    keep = np.zeros(N_ROWS, dtype=bool)
    keep[[*train_rows, *valid_rows]] = True
    labels = np.arange(N_ROWS) % 3  # both classes present wherever rows are kept
    return pl.Series(variant.variant_id, np.where(keep, labels, -1), dtype=pl.Int8).replace(
        -1, None
    )


def test_too_few_rows(data: tuple[np.ndarray, np.ndarray, pl.DataFrame]) -> None:
    timeline, matrix, targets = data
    few_train = Variant("AAA", 3, "high", 3.0, 1.0, 6)
    few_valid = Variant("AAA", 3, "high", 3.5, 1.0, 6)
    frame = targets.with_columns(
        sparse_column(few_train, range(0, 2000, 100), range(2400, 3000, 20)),  # 20 / 30 rows
        sparse_column(few_valid, range(0, 2000, 10), range(2400, 2409)),  # 200 / 9 rows
    )
    small = make_group(timeline, matrix, frame, [VARIANTS[0], few_train, few_valid])
    result = fit_variant(small, few_train.variant_id, **FIT)
    assert result.status == "too_few_rows"
    assert (result.n_train, result.n_valid) == (20, 30)
    assert result.best_iteration == 0
    assert np.isnan(result.average_precision)
    # Enough training rows but fewer than max(10, min_rows // 5) validation rows.
    result = fit_variant(small, few_valid.variant_id, **FIT)
    assert (result.status, result.n_train, result.n_valid) == ("too_few_rows", 200, 9)
    # Lowering min_rows lets the first one through.
    assert fit_variant(small, few_train.variant_id, **{**FIT, "min_rows": 20}).status == "ok"


def test_single_class(data: tuple[np.ndarray, np.ndarray, pl.DataFrame]) -> None:
    timeline, matrix, targets = data
    flat = Variant("AAA", 3, "high", 4.0, 1.0, 6)
    frame = targets.with_columns(pl.Series(flat.variant_id, np.zeros(N_ROWS), dtype=pl.Int8))
    small = make_group(timeline, matrix, frame, [VARIANTS[0], flat])
    result = fit_variant(small, flat.variant_id, **FIT)
    assert result.status == "single_class"
    assert result.n_train == 2394
    assert np.isnan(result.average_precision)


def test_concurrent_fits_match_sequential(group: GroupData, sequential: list[FitResult]) -> None:
    jobs = [partial(fit_variant, group, v.variant_id, keep_model=True, **FIT) for v in VARIANTS]
    concurrent = fit_many(jobs, concurrent_fits=2)
    assert [r.variant_id for r in concurrent] == [v.variant_id for v in VARIANTS]
    for parallel, serial in zip(concurrent, sequential, strict=True):
        assert parallel.average_precision == serial.average_precision
        assert parallel.best_iteration == serial.best_iteration
        np.testing.assert_array_equal(parallel.valid_probabilities, serial.valid_probabilities)


def test_results_are_deterministic_across_runs(sequential: list[FitResult]) -> None:
    fresh = make_group(*make_data(), VARIANTS)
    again = fit_many(
        [partial(fit_variant, fresh, v.variant_id, keep_model=True, **FIT) for v in VARIANTS], 1
    )
    for first, second in zip(sequential, again, strict=True):
        assert first.average_precision == second.average_precision
        assert first.best_iteration == second.best_iteration
        assert booster_of(first).model_to_string() == booster_of(second).model_to_string()


def test_summary_is_json_ready(sequential: list[FitResult]) -> None:
    summary = sequential[0].summary()
    assert summary["status"] == "ok"
    assert set(summary) == {
        "variant_id",
        "family",
        "status",
        "average_precision",
        "best_iteration",
        "n_train",
        "n_valid",
        "seconds",
    }
    assert summary["family"] == "lightgbm"
    assert "model" not in summary


def test_fit_groups_streams_groups_and_matches_one_by_one(
    data: tuple[np.ndarray, np.ndarray, pl.DataFrame], sequential: list[FitResult]
) -> None:
    """One pool over several groups: same results per variant, yielded group by group in
    order, the next group requested before the previous group's results are handed out."""
    events: list[str] = []
    ids = [v.variant_id for v in VARIANTS]

    def groups() -> Any:
        for name in ("g1", "empty", "g2"):
            events.append(f"build {name}")
            yield name, None if name == "empty" else make_group(*data, VARIANTS), ids

    fit = partial(fit_variant, keep_model=True, **FIT)
    out = []
    for gid, results in fit_groups(groups(), fit, concurrent_fits=2):
        events.append(f"yield {gid}")
        out.append((gid, results))

    # g1 is handed out only after "empty" was requested (binning overlaps g1's fits)
    assert events == ["build g1", "build empty", "yield g1", "build g2", "yield empty", "yield g2"]
    assert [gid for gid, _ in out] == ["g1", "empty", "g2"]
    assert out[1][1] is None
    for _, results in (out[0], out[2]):
        assert results is not None
        assert [r.variant_id for r in results] == ids  # caller's order, not longest-first
        for streamed, serial in zip(results, sequential, strict=True):
            assert streamed.average_precision == serial.average_precision
            assert streamed.best_iteration == serial.best_iteration
            assert booster_of(streamed).model_to_string() == booster_of(serial).model_to_string()


def test_fit_groups_propagates_a_failed_fit(
    data: tuple[np.ndarray, np.ndarray, pl.DataFrame],
) -> None:
    def broken(group: GroupData, vid: str) -> FitResult:
        raise RuntimeError(f"boom in {vid}")

    jobs = [("g1", make_group(*data, VARIANTS), [VARIANTS[0].variant_id])]
    with pytest.raises(RuntimeError, match="boom in"):
        list(fit_groups(jobs, broken, concurrent_fits=2))

"""Tests of the skill test: exact AP, block resampling, p-value calibration and corrections."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, log_loss

from alphafactory.errors import DataError
from alphafactory.metrics import average_precision
from alphafactory.skill import (
    SkillResult,
    adjust_p_values,
    average_precision_rows,
    baseline_probabilities,
    block_permutation_indices,
    decide_skill,
    default_block_length,
    fast_average_precision,
    log_loss_per_event,
    macro_average_precision_rows,
    moving_block_bootstrap_indices,
    skill_test,
)

PRIOR = np.array([0.5, 0.3, 0.2])


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Binary labels with at least one positive and scores with a random amount of ties."""
    n = int(rng.integers(1, 80))
    labels = rng.random(n) < rng.uniform(0.05, 0.95)
    labels[rng.integers(n)] = True
    scores = rng.random(n)
    kind = rng.integers(4)
    if kind == 1:
        scores = np.round(scores, 1)
    elif kind == 2:
        scores = np.round(scores * 2) / 2  # three distinct values: heavy ties
    elif kind == 3:
        scores = np.full(n, 0.3)
    return labels, scores


def noise_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, unrelated probabilities and training labels."""
    labels = rng.choice(3, size=n, p=PRIOR)
    return labels, rng.dirichlet(np.ones(3), size=n), rng.choice(3, size=400, p=PRIOR)


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """Three independent AR(1) series with unit variance: slow regimes when phi is near 1."""
    noise = rng.standard_normal((n, 3)) * math.sqrt(1 - phi**2)
    series = np.empty((n, 3))
    series[0] = rng.standard_normal(3)
    for t in range(1, n):
        series[t] = phi * series[t - 1] + noise[t]
    return series


# --- average precision ------------------------------------------------------------------------


def test_fast_average_precision_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(600):
        labels, scores = random_case(rng)
        expected = average_precision_score(labels, scores)
        assert fast_average_precision(labels, scores) == pytest.approx(expected, abs=1e-12)


def test_fast_average_precision_edge_cases() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.5, 0.3])
    everyone = np.ones(5, dtype=bool)
    assert fast_average_precision(everyone, scores) == pytest.approx(1.0, abs=1e-12)
    for position in range(5):
        one = np.zeros(5, dtype=int)
        one[position] = 1
        expected = average_precision_score(one, scores)
        assert fast_average_precision(one, scores) == pytest.approx(expected, abs=1e-12)
    # a hand-computed tie: positives at 0.9 and in the 0.5 tie group with one negative
    labels = np.array([1, 0, 1, 0, 0])
    assert fast_average_precision(labels, scores) == pytest.approx(0.5 * 1 + 0.5 * (2 / 3))
    assert math.isnan(fast_average_precision(np.zeros(5, dtype=int), scores))


def test_average_precision_rows_equals_sklearn_row_by_row() -> None:
    rng = np.random.default_rng(1)
    for _ in range(40):
        labels, scores = random_case(rng)
        rows = np.stack([rng.permutation(labels) for _ in range(25)])
        got = average_precision_rows(rows, scores)
        expected = [average_precision_score(row, scores) for row in rows]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_average_precision_rows_nan_without_positives() -> None:
    rows = np.array([[0, 0, 0, 0], [0, 1, 0, 0]])
    got = average_precision_rows(rows, np.array([0.1, 0.4, 0.4, 0.2]))
    assert math.isnan(got[0])
    assert got[1] == pytest.approx(average_precision_score(rows[1], [0.1, 0.4, 0.4, 0.2]))


@pytest.mark.parametrize("classes_present", [(0, 1, 2), (0, 2), (1,)])
def test_macro_rows_equal_metrics_average_precision(classes_present: tuple[int, ...]) -> None:
    rng = np.random.default_rng(2)
    labels = rng.choice(classes_present, size=60)
    probabilities = np.round(rng.dirichlet(np.ones(3), size=60), 1)  # ties in every column
    rows = np.stack([rng.permutation(labels) for _ in range(30)])
    got = macro_average_precision_rows(rows, probabilities)
    expected = [average_precision(row, probabilities) for row in rows]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)  # NaN == NaN here


# --- block resampling -------------------------------------------------------------------------


def is_block_shuffle(row: np.ndarray, n: int, block: int) -> bool:
    """Is `row` some circular offset of range(n), cut into blocks, blocks in some order?"""
    for offset in range(n):
        unshifted = (row - offset) % n
        position, starts = 0, []
        while position < n:
            start = unshifted[position]
            length = min(block, n - start)
            expected = np.arange(start, start + length)
            if start % block or not np.array_equal(
                unshifted[position : position + length], expected
            ):
                break
            starts.append(start)
            position += length
        if position == n and len(set(starts)) == len(starts):
            return True
    return False


@pytest.mark.parametrize(("n", "block"), [(1, 1), (7, 1), (20, 5), (23, 5), (40, 20), (31, 40)])
def test_block_permutations_are_block_shuffles(n: int, block: int) -> None:
    rows = block_permutation_indices(n, block, 60, np.random.default_rng(3))
    assert rows.shape == (60, n)
    for row in rows:
        assert np.array_equal(np.sort(row), np.arange(n))
        assert is_block_shuffle(row, n, min(block, n))


def test_block_permutation_with_two_halves_is_a_rotation() -> None:
    n = 40
    rows = block_permutation_indices(n, n // 2, 100, np.random.default_rng(4))
    for row in rows:
        assert np.array_equal(row, (np.arange(n) + row[0]) % n)
    assert len({int(row[0]) for row in rows}) > 10  # the circular offset moves block borders


def test_block_permutations_shuffle_blocks_and_vary_borders() -> None:
    n, block = 30, 5
    rows = block_permutation_indices(n, block, 300, np.random.default_rng(5))
    borders = {int(row[0]) % block for row in rows}
    assert borders == set(range(block))
    rotations = sum(np.array_equal(row, (np.arange(n) + row[0]) % n) for row in rows)
    assert rotations < 30  # 6 blocks: a random order is rarely the original one
    i_first = np.mean([np.flatnonzero(row == 0)[0] for row in rows])
    assert 8 < i_first < 22  # event 0 lands anywhere, on average near the middle


def test_block_permutation_is_reproducible() -> None:
    a = block_permutation_indices(50, 4, 20, np.random.default_rng(6))
    b = block_permutation_indices(50, 4, 20, np.random.default_rng(6))
    assert np.array_equal(a, b)


@pytest.mark.parametrize(("n", "block"), [(10, 1), (50, 7), (60, 6), (9, 20)])
def test_moving_block_bootstrap_rows_are_circular_runs(n: int, block: int) -> None:
    rows = moving_block_bootstrap_indices(n, block, 80, np.random.default_rng(7))
    assert rows.shape == (80, n)
    assert rows.min() >= 0 and rows.max() < n
    run = min(block, n)
    for row in rows:
        for start in range(0, n, run):
            chunk = row[start : start + run]
            assert np.all(np.diff(chunk) % n == 1)
    assert len({int(row[0]) for row in rows}) > min(n, 5)  # random starts


def test_default_block_length() -> None:
    sizes = (0, 1, 8, 27, 80, 1000, 2000)
    assert [default_block_length(n) for n in sizes] == [1, 1, 2, 3, 4, 10, 13]


# --- baseline and log loss --------------------------------------------------------------------


def test_baseline_probabilities_floor_unseen_classes() -> None:
    baseline = baseline_probabilities(np.array([0, 0, 0, 1]), 5)
    assert baseline.shape == (5, 3)
    np.testing.assert_allclose(baseline.sum(axis=1), 1.0)
    expected = np.array([0.75, 0.25, 1e-6]) / (1 + 1e-6)
    np.testing.assert_allclose(baseline[3], expected, rtol=1e-12)
    assert np.isfinite(log_loss_per_event(np.array([2]), baseline[:1])).all()
    with pytest.raises(DataError, match="0..2"):
        baseline_probabilities(np.array([0, 3]), 2)
    with pytest.raises(DataError, match="non-empty 1-D"):
        baseline_probabilities(np.array([], dtype=int), 2)


def test_log_loss_per_event_matches_sklearn() -> None:
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, 50)
    probabilities = rng.dirichlet(np.ones(3), size=50)
    expected = log_loss(labels, probabilities, labels=[0, 1, 2])
    assert log_loss_per_event(labels, probabilities).mean() == pytest.approx(expected)
    zero = np.array([[1.0, 0.0, 0.0]])
    assert log_loss_per_event(np.array([1]), zero)[0] == pytest.approx(-math.log(1e-15))


# --- skill test -------------------------------------------------------------------------------


def test_p_value_and_intervals_equal_a_sklearn_oracle() -> None:
    """Replays skill_test's draws (same generator, same order) with metrics.average_precision."""
    rng = np.random.default_rng(9)
    n = 60
    labels = rng.choice(3, size=n, p=[0.6, 0.34, 0.06])  # a rare class some draws miss
    train = rng.choice(3, size=400, p=PRIOR)
    probabilities = rng.dirichlet(np.ones(3), size=n)
    probabilities[np.arange(n), labels] += 0.1
    probabilities = np.round(probabilities / probabilities.sum(axis=1, keepdims=True), 2)
    probabilities[:, 2] = 1 - probabilities[:, :2].sum(axis=1)  # rows sum to 1, ties kept
    result = skill_test(labels, probabilities, train, permutations=99, bootstraps=60, seed=11)

    block = default_block_length(n)
    baseline = baseline_probabilities(train, n)
    draw_rng = np.random.default_rng(11)
    observed = average_precision(labels, probabilities)
    permutations = block_permutation_indices(n, block, 99, draw_rng)
    null = np.array([average_precision(labels[p], probabilities) for p in permutations])
    draws = moving_block_bootstrap_indices(n, block, 60, draw_rng)
    assert any(not np.any(labels[d] == 2) for d in draws)
    model = np.array([average_precision(labels[d], probabilities[d]) for d in draws])
    constant = np.array([average_precision(labels[d], baseline[d]) for d in draws])
    chosen = probabilities[np.arange(n), labels]
    excess_loss = np.log(baseline[np.arange(n), labels]) - np.log(chosen)

    assert result.block == block and result.n_events == n
    assert result.test_ap == pytest.approx(observed, abs=1e-12)
    assert result.baseline_ap == pytest.approx(average_precision(labels, baseline), abs=1e-12)
    assert result.ap_excess == pytest.approx(observed - result.baseline_ap, abs=1e-12)
    assert result.p_value == pytest.approx((1 + np.sum(null >= observed - 1e-12)) / 100)
    low, high = np.nanpercentile(model - constant, [2.5, 97.5])
    assert (result.ap_ci_low, result.ap_ci_high) == pytest.approx((low, high), abs=1e-12)
    low, high = np.percentile([excess_loss[d].mean() for d in draws], [2.5, 97.5])
    assert (result.log_loss_ci_low, result.log_loss_ci_high) == pytest.approx((low, high))
    assert result.test_log_loss == pytest.approx(-np.log(chosen).mean())
    assert result.baseline_log_loss == pytest.approx(log_loss(labels, baseline, labels=[0, 1, 2]))
    assert result.p_adjusted == result.p_value and result.skill is False


def test_null_p_values_are_calibrated() -> None:
    rng = np.random.default_rng(10)
    p_values = []
    for seed in range(300):
        labels, probabilities, train = noise_data(rng, 80)
        result = skill_test(
            labels, probabilities, train, permutations=199, bootstraps=20, seed=seed
        )
        p_values.append(result.p_value)
    p = np.array(p_values)
    assert 0.01 <= np.mean(p < 0.05) <= 0.10
    assert 0.35 <= np.mean(p < 0.5) <= 0.65
    assert 0.1 <= np.mean(p < 0.2) <= 0.3


def test_signal_is_detected() -> None:
    rng = np.random.default_rng(12)
    labels, probabilities, train = noise_data(rng, 500)
    probabilities[np.arange(500), labels] += 0.15
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    result = skill_test(labels, probabilities, train, seed=1)
    assert result.p_value < 0.01
    assert result.ap_excess > 0
    assert 0 < result.ap_ci_low <= result.ap_excess <= result.ap_ci_high


def test_calibrated_signal_lowers_log_loss() -> None:
    rng = np.random.default_rng(13)
    n = 800
    truth = 0.5 * PRIOR + 0.5 * rng.dirichlet(np.ones(3), size=n)  # calibrated by construction
    labels = np.array([rng.choice(3, p=row) for row in truth])
    train = rng.choice(3, size=5000, p=PRIOR)
    result = skill_test(labels, truth, train, seed=2)
    assert result.p_value < 0.01
    assert result.test_log_loss < result.baseline_log_loss
    assert result.log_loss_ci_low <= result.log_loss_ci_high < 0
    assert result.ap_ci_low > 0


def test_block_permutation_respects_serial_dependence() -> None:
    """Slow regimes in labels and in (independent) predictions: i.i.d. shuffles over-reject."""
    rates = {}
    for block in (1, 25):
        rejections = []
        for seed in range(100):
            rng = np.random.default_rng(1000 + seed)
            labels = ar1(rng, 200, 0.95).argmax(axis=1)
            scores = np.exp(1.5 * ar1(rng, 200, 0.95))
            probabilities = scores / scores.sum(axis=1, keepdims=True)
            result = skill_test(
                labels,
                probabilities,
                labels,
                permutations=199,
                bootstraps=20,
                block=block,
                seed=seed,
            )
            rejections.append(result.p_value < 0.05)
        rates[block] = float(np.mean(rejections))
    assert rates[1] >= 0.2
    assert rates[25] < rates[1]
    assert rates[25] <= 0.15


def test_skill_test_is_deterministic() -> None:
    rng = np.random.default_rng(14)
    labels, probabilities, train = noise_data(rng, 150)
    first = skill_test(labels, probabilities, train, permutations=99, bootstraps=50, seed=5)
    again = skill_test(labels, probabilities, train, permutations=99, bootstraps=50, seed=5)
    other = skill_test(labels, probabilities, train, permutations=99, bootstraps=50, seed=6)
    assert first == again
    assert (first.p_value, first.ap_ci_low) != (other.p_value, other.ap_ci_low)


def test_too_few_events_gives_no_skill() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    probabilities = np.eye(3)[labels] * 0.9 + 0.1 / 3
    result = skill_test(labels, probabilities, labels)
    assert result.p_value == 1.0 and result.skill is False and result.n_events == 9
    assert result.test_ap == pytest.approx(1.0)
    assert math.isnan(result.ap_ci_low) and math.isnan(result.log_loss_ci_high)
    assert decide_skill({"g": result}, 0.05, "holm")["g"].skill is False


def test_single_class_gives_no_skill() -> None:
    labels = np.ones(50, dtype=int)
    probabilities = np.random.default_rng(15).dirichlet(np.ones(3), size=50)
    result = skill_test(labels, probabilities, np.array([0, 1, 2]))
    assert result.p_value == 1.0 and result.skill is False
    assert math.isnan(result.test_ap) and math.isnan(result.ap_excess)
    assert math.isfinite(result.test_log_loss) and math.isfinite(result.baseline_log_loss)


def test_empty_input_gives_no_skill() -> None:
    result = skill_test(np.array([], dtype=int), np.empty((0, 3)), np.array([0, 1]))
    assert result.n_events == 0 and result.p_value == 1.0 and math.isnan(result.test_log_loss)


@pytest.mark.parametrize(
    ("labels", "probabilities", "message"),
    [
        (np.zeros((20, 1), dtype=int), np.full((20, 3), 1 / 3), "labels must be 1-D"),
        (np.zeros(20, dtype=int), np.full((20, 2), 0.5), r"n x 3, got shape \(20, 2\)"),
        (np.zeros(20, dtype=int), np.full(20, 0.5), r"n x 3, got shape \(20,\)"),
        (np.zeros(20, dtype=int), np.full((19, 3), 1 / 3), r"labels \(20\) and probabilities"),
        (np.full(20, 3), np.full((20, 3), 1 / 3), "labels must lie in 0..2"),
        (np.zeros(20, dtype=int), np.full((20, 3), np.nan), "probabilities be finite"),
    ],
)
def test_bad_shapes_raise_data_error(
    labels: np.ndarray, probabilities: np.ndarray, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        skill_test(labels, probabilities, np.array([0, 1, 2]))


def test_result_round_trips_through_json() -> None:
    rng = np.random.default_rng(16)
    result = skill_test(*noise_data(rng, 40), permutations=99, bootstraps=50)
    single = skill_test(np.ones(20, dtype=int), np.full((20, 3), 1 / 3), np.array([0, 1]))
    for item in (result, single):
        data = json.loads(json.dumps(item.to_dict()))
        back = SkillResult.from_dict(data)
        assert type(back.n_events) is int and type(back.skill) is bool
        for key, value in item.to_dict().items():
            other = getattr(back, key)
            assert other == value or (math.isnan(other) and math.isnan(value))


# --- multiple testing -------------------------------------------------------------------------


def test_holm_and_bh_hand_computed() -> None:
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}
    holm = adjust_p_values(p, "holm")
    bh = adjust_p_values(p, "bh")
    assert list(holm) == list(p) and list(bh) == list(p)
    assert [holm[k] for k in p] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [bh[k] for k in p] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p_values({"x": 0.7, "y": 0.8}, "holm") == pytest.approx({"x": 1.0, "y": 1.0})
    assert adjust_p_values({}, "bh") == {}


def test_adjusted_p_values_are_monotone_and_bounded() -> None:
    rng = np.random.default_rng(17)
    for _ in range(50):
        raw = rng.random(int(rng.integers(1, 20))) ** 3
        p = {f"g{i}": float(v) for i, v in enumerate(raw)}
        holm = np.array(list(adjust_p_values(p, "holm").values()))
        bh = np.array(list(adjust_p_values(p, "bh").values()))
        order = np.argsort(raw)
        for adjusted in (holm, bh):
            assert np.all(np.diff(adjusted[order]) >= 0)
            assert np.all(adjusted >= raw - 1e-15) and np.all(adjusted <= 1.0)
        assert np.all(holm >= bh - 1e-15)  # Holm controls the stricter error rate
        assert holm[order[0]] == pytest.approx(min(1.0, raw.size * raw.min()))


def test_adjust_rejects_unknown_method_and_bad_values() -> None:
    with pytest.raises(DataError, match="'holm' or 'bh'"):
        adjust_p_values({"a": 0.1}, "bonferroni")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        adjust_p_values({"a": float("nan")}, "holm")


def make_result(p_value: float, ap_excess: float) -> SkillResult:
    nan = math.nan
    return SkillResult(
        200, 0.4 + ap_excess, 0.4, ap_excess, nan, nan, 1.0, 1.0, nan, nan, p_value, block=6
    )


def test_decide_skill_holm_versus_bh() -> None:
    # ten groups: one tiny p of 0.006 and nine of 0.04 (one of them below the baseline)
    # holm: 10 x 0.006 = 0.06 and 9 x 0.04 = 0.36; bh: min(10 x 0.006, 10 x 0.04 / 10) = 0.04
    results = {"tiny": make_result(0.006, 0.05), "worse": make_result(0.04, -0.01)}
    results |= {f"g{i}": make_result(0.04, 0.02) for i in range(8)}
    holm = decide_skill(results, 0.05, "holm")
    bh = decide_skill(results, 0.05, "bh")
    assert holm["tiny"].p_adjusted == pytest.approx(0.06) and not holm["tiny"].skill
    assert holm["g0"].p_adjusted == pytest.approx(0.36) and not holm["g0"].skill
    assert bh["tiny"].p_adjusted == pytest.approx(0.04) and bh["tiny"].skill
    assert all(bh[f"g{i}"].skill for i in range(8))
    assert bh["worse"].p_adjusted == pytest.approx(0.04) and not bh["worse"].skill
    assert results["tiny"].p_adjusted == 0.006 and not results["tiny"].skill  # inputs unchanged
    assert decide_skill({"only": make_result(0.006, 0.05)}, 0.05, "holm")["only"].skill

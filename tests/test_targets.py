"""Pin the swing-event label semantics of `alphafactory.targets.swing` on hand-made series.

Conventions used below (from the module docstring): for a swing high at t with move
threshold b, breakout (1) = a later high reaches ``high_t + b*sigma_t`` first; reversion (2) =
a later low reaches ``close_t - b*sigma_t`` first; both in one bar or none within h = 0;
no touch and fewer than h bars left = unknown (-1 / null). A swing low mirrors it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from alphafactory.config import GridConfig
from alphafactory.data.synthetic import generate_bars
from alphafactory.targets.swing import (
    BREAKOUT,
    NEITHER,
    REVERSION,
    barrier_labels,
    barrier_outcomes,
    build_targets,
    first_touch,
    group_targets,
    move_column,
    swing_excursion,
    trailing_sigma,
)
from alphafactory.targets.variants import Variant, expand_grid, group_variants

UNKNOWN = -1


def ohlc(rows: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low, close) arrays from rows of (high, low, close)."""
    table = np.asarray(rows, dtype=np.float64)
    return table[:, 0], table[:, 1], table[:, 2]


def labels_at_zero(
    rows: list[tuple[float, float, float]],
    swing_type: str,
    horizons: tuple[int, ...],
    move_threshold: float = 1.0,
    sigma: float = 1.0,
    at: int = 0,
) -> dict[int, int]:
    """Label of bar `at` for each horizon, with a constant sigma."""
    high, low, close = ohlc(rows)
    result = barrier_labels(
        high, low, close, np.full(len(high), sigma), swing_type, move_threshold, list(horizons)
    )
    return {h: int(result[h][at]) for h in horizons}


# Swing-high event at bar 0: high 10, low 8.5, close 9; sigma 1, b 1 -> upper 11, lower 8.
HIGH_EVENT = (10.0, 8.5, 9.0)
QUIET_AFTER_HIGH = (10.5, 8.5, 9.0)  # inside (8, 11); as an event itself it touches nothing


def test_swing_high_breakout() -> None:
    rows = [HIGH_EVENT, QUIET_AFTER_HIGH, (11.0, 9.0, 10.5), *[QUIET_AFTER_HIGH] * 5]
    assert labels_at_zero(rows, "high", (1, 2, 5)) == {1: NEITHER, 2: BREAKOUT, 5: BREAKOUT}


def test_swing_high_breakout_barrier_is_from_the_high_not_the_close() -> None:
    # 10.5 would pass close_0 + 1 = 10 but not high_0 + 1 = 11.
    rows = [HIGH_EVENT, (10.9, 8.5, 10.0), *[QUIET_AFTER_HIGH] * 5]
    assert labels_at_zero(rows, "high", (3,)) == {3: NEITHER}


def test_swing_high_reversion() -> None:
    rows = [
        HIGH_EVENT,
        QUIET_AFTER_HIGH,
        QUIET_AFTER_HIGH,
        (9.0, 8.0, 8.2),
        *[QUIET_AFTER_HIGH] * 4,
    ]
    assert labels_at_zero(rows, "high", (2, 3, 6)) == {2: NEITHER, 3: REVERSION, 6: REVERSION}


def test_swing_high_reversion_barrier_is_from_the_close_not_the_low() -> None:
    # low 8.0 reaches close_0 - 1 = 8 although it never reaches low_0 - 1 = 7.5.
    rows = [HIGH_EVENT, (9.0, 8.0, 8.5), *[QUIET_AFTER_HIGH] * 3]
    assert labels_at_zero(rows, "high", (1,)) == {1: REVERSION}


def test_swing_high_first_barrier_wins() -> None:
    # Reversion at bar 2, breakout at bar 3: reversion came first.
    rows = [HIGH_EVENT, QUIET_AFTER_HIGH, (9.0, 7.9, 8.0), (11.5, 9.0, 11.0), QUIET_AFTER_HIGH]
    assert labels_at_zero(rows, "high", (2, 4)) == {2: REVERSION, 4: REVERSION}
    # Breakout at bar 1, reversion at bar 2: breakout came first.
    rows = [HIGH_EVENT, (11.2, 9.0, 11.0), (9.0, 7.0, 7.5), QUIET_AFTER_HIGH]
    assert labels_at_zero(rows, "high", (1, 3)) == {1: BREAKOUT, 3: BREAKOUT}


def test_swing_high_neither_within_horizon() -> None:
    rows = [HIGH_EVENT, *[QUIET_AFTER_HIGH] * 4, (12.0, 9.0, 11.5), QUIET_AFTER_HIGH]
    # The breakout at bar 5 is outside horizons 1..4 but inside 5.
    assert labels_at_zero(rows, "high", (1, 4, 5)) == {1: NEITHER, 4: NEITHER, 5: BREAKOUT}


def test_swing_high_both_barriers_in_one_bar_is_neither() -> None:
    rows = [HIGH_EVENT, QUIET_AFTER_HIGH, (11.5, 7.5, 9.0), (12.0, 9.0, 11.0), QUIET_AFTER_HIGH]
    # Both touched at bar 2: neither, even though a clean breakout follows at bar 3.
    assert labels_at_zero(rows, "high", (1, 2, 4)) == {1: NEITHER, 2: NEITHER, 4: NEITHER}


def test_swing_high_horizon_past_end_is_unknown() -> None:
    rows = [QUIET_AFTER_HIGH] * 3 + [HIGH_EVENT, QUIET_AFTER_HIGH, QUIET_AFTER_HIGH]
    # The event is bar 3; only bars 4 and 5 follow.
    assert labels_at_zero(rows, "high", (1, 2, 3, 5), at=3) == {
        1: NEITHER,
        2: NEITHER,
        3: UNKNOWN,
        5: UNKNOWN,
    }


def test_swing_high_touch_before_end_is_known() -> None:
    rows = [QUIET_AFTER_HIGH] * 3 + [HIGH_EVENT, QUIET_AFTER_HIGH, (11.0, 9.0, 10.5)]
    # Only 2 bars follow the event at bar 3, but the breakout at bar 5 settles the label.
    assert labels_at_zero(rows, "high", (5,), at=3) == {5: BREAKOUT}


def test_barrier_labels_horizon_longer_than_series() -> None:
    # A series shorter than the horizon: every bar is unknown, none raises.
    rows = [HIGH_EVENT, QUIET_AFTER_HIGH, QUIET_AFTER_HIGH]
    high, low, close = ohlc(rows)
    labels = barrier_labels(high, low, close, np.ones(3), "high", 1.0, [2, 5])
    assert labels[2].tolist() == [NEITHER, UNKNOWN, UNKNOWN]
    assert labels[5].tolist() == [UNKNOWN, UNKNOWN, UNKNOWN]


def test_last_bars_are_unknown_without_touch() -> None:
    high, low, close = ohlc([HIGH_EVENT] + [QUIET_AFTER_HIGH] * 5)
    labels = barrier_labels(high, low, close, np.full(6, 1.0), "high", 1.0, [3])[3]
    # Bars 3, 4, 5 have 2, 1, 0 bars ahead: fewer than 3, and nothing is touched.
    assert labels.tolist() == [NEITHER, NEITHER, NEITHER, UNKNOWN, UNKNOWN, UNKNOWN]
    assert labels.dtype == np.int8


def test_move_threshold_scales_sigma() -> None:
    rows = [HIGH_EVENT, (10.9, 8.7, 10.0), (11.0, 8.5, 10.0), QUIET_AFTER_HIGH]
    # b * sigma = 2 * 0.5 = 1: same barriers as b=1, sigma=1 -> breakout at bar 2.
    assert labels_at_zero(rows, "high", (3,), move_threshold=2.0, sigma=0.5) == {3: BREAKOUT}
    # b * sigma = 0.5: the barrier 10.5 is crossed at bar 1.
    assert labels_at_zero(rows, "high", (1,), move_threshold=1.0, sigma=0.5) == {1: BREAKOUT}
    # b * sigma = 1.5: barrier 11.5 never reached, lower 7.5 never reached.
    assert labels_at_zero(rows, "high", (3,), move_threshold=1.5, sigma=1.0) == {3: NEITHER}


# Swing-low event at bar 0: high 11.5, low 10, close 11; sigma 1, b 1 -> breakout below 9,
# reversion above close + 1 = 12.
LOW_EVENT = (11.5, 10.0, 11.0)
QUIET_AFTER_LOW = (11.8, 9.5, 10.5)  # inside (9, 12)


def test_swing_low_breakout() -> None:
    rows = [LOW_EVENT, QUIET_AFTER_LOW, (10.0, 9.0, 9.2), *[QUIET_AFTER_LOW] * 3]
    assert labels_at_zero(rows, "low", (1, 2, 4)) == {1: NEITHER, 2: BREAKOUT, 4: BREAKOUT}


def test_swing_low_breakout_barrier_is_from_the_low_not_the_close() -> None:
    # 9.5 would reach close_0 - 1 = 10 but not low_0 - 1 = 9.
    rows = [LOW_EVENT, (11.0, 9.1, 10.0), *[QUIET_AFTER_LOW] * 3]
    assert labels_at_zero(rows, "low", (3,)) == {3: NEITHER}


def test_swing_low_reversion() -> None:
    rows = [LOW_EVENT, (12.0, 10.5, 11.8), *[QUIET_AFTER_LOW] * 3]
    assert labels_at_zero(rows, "low", (1, 3)) == {1: REVERSION, 3: REVERSION}


def test_swing_low_reversion_barrier_is_from_the_close_not_the_high() -> None:
    # 12.2 reaches close_0 + 1 = 12 but not high_0 + 1 = 12.5.
    rows = [LOW_EVENT, QUIET_AFTER_LOW, (12.2, 10.5, 12.0), QUIET_AFTER_LOW]
    assert labels_at_zero(rows, "low", (2,)) == {2: REVERSION}


def test_swing_low_neither_and_same_bar_and_unknown() -> None:
    rows = [LOW_EVENT, *[QUIET_AFTER_LOW] * 4]
    assert labels_at_zero(rows, "low", (4,)) == {4: NEITHER}
    rows = [LOW_EVENT, (12.5, 8.5, 10.0), QUIET_AFTER_LOW]
    assert labels_at_zero(rows, "low", (2,)) == {2: NEITHER}
    rows = [LOW_EVENT, QUIET_AFTER_LOW]
    assert labels_at_zero(rows, "low", (1, 2)) == {1: NEITHER, 2: UNKNOWN}


def test_first_touch_counts_bars_and_marks_never() -> None:
    high = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    low = np.array([1.0, 0.5, 0.0, 1.0, 1.0])
    upper = np.full(5, 3.0)
    lower = np.full(5, 0.5)
    first_up, first_down = first_touch(high, low, upper, lower, max_horizon=3)
    # Up: bar 2 has high 3 (>= 3, inclusive). From bar 0 that is 2 bars ahead; from 1, 1 bar;
    # from 2, bar 3 (1 ahead); from 3, bar 4; from 4 nothing is ahead -> 3 + 1.
    assert first_up.tolist() == [2, 1, 1, 1, 4]
    # Down: lows 0.5 at bar 1 and 0.0 at bar 2; the bar itself never counts.
    assert first_down.tolist() == [1, 1, 4, 4, 4]
    assert first_up.dtype == np.int32


def test_first_touch_beyond_max_horizon_is_never() -> None:
    high = np.array([0.0, 0.0, 0.0, 0.0, 9.0])
    low = np.zeros(5)
    first_up, _ = first_touch(high, low, np.full(5, 5.0), np.full(5, -1.0), max_horizon=2)
    assert first_up.tolist() == [3, 3, 2, 1, 3]


# A 30-bar hand series for swing_excursion and group_targets. Closes alternate 100, 101, so
# every 20-bar window of log returns holds ten +r and ten -r with r = ln(1.01): the sample
# std is r * sqrt(20/19). Highs drift down from 102 except for spikes at bars 5, 24, 26, 29.
N_HAND = 30
HAND_CLOSE = np.where(np.arange(N_HAND) % 2 == 0, 100.0, 101.0)
HAND_HIGH = 102.0 - 0.01 * np.arange(N_HAND)
HAND_HIGH[[5, 24, 26, 29]] = [120.0, 115.0, 117.0, 120.0]
HAND_LOW = np.full(N_HAND, 99.5)
HAND_LOW[27] = 98.0
R_STD = np.log(1.01) * np.sqrt(20 / 19)


def test_trailing_sigma_matches_hand_value() -> None:
    sigma = trailing_sigma(HAND_CLOSE, window=3)
    assert np.all(np.isnan(sigma[:20]))  # the first log return is undefined
    np.testing.assert_allclose(sigma[20:], HAND_CLOSE[20:] * R_STD, rtol=1e-9)
    # A longer window needs 2w bars of history.
    assert np.isnan(trailing_sigma(HAND_CLOSE, window=14)[27])


def test_swing_excursion_flags_new_highs_after_warm_up() -> None:
    is_new, excursion = swing_excursion(HAND_HIGH, HAND_LOW, HAND_CLOSE, 3, "high")
    # Bar 5 is a new high but falls in the sigma warm-up; 25, 27, 28 are below a recent spike.
    assert np.flatnonzero(is_new).tolist() == [24, 26, 29]
    sigma_even, sigma_odd = 100.0 * R_STD, 101.0 * R_STD
    expected = {
        24: (115.0 - (100 + 101 + 100) / 3) / sigma_even,
        26: (117.0 - (100 + 101 + 100) / 3) / sigma_even,
        29: (120.0 - (101 + 100 + 101) / 3) / sigma_odd,
    }
    for bar, value in expected.items():
        assert excursion[bar] == pytest.approx(value, rel=1e-9)
    assert np.all(np.isnan(excursion[:20]))
    # Not a new high, but the excursion is still reported (it can be negative).
    assert excursion[25] == pytest.approx((101.75 - (101 + 100 + 101) / 3) / sigma_odd)


def test_swing_excursion_equal_high_counts_as_new_high() -> None:
    high = HAND_HIGH.copy()
    high[22] = 110.0
    high[23] = 110.0  # ties with the previous bar's high
    is_new, _ = swing_excursion(high, HAND_LOW, HAND_CLOSE, 3, "high")
    assert bool(is_new[22]) and bool(is_new[23])


def test_swing_excursion_low_mirrors_high() -> None:
    # Reflect prices: lows become 200 - highs, so the spikes become new lows.
    low = 200.0 - HAND_HIGH
    close = 200.0 - HAND_CLOSE
    high = np.full(N_HAND, 200.5)
    is_new, excursion = swing_excursion(high, low, close, 3, "low")
    assert np.flatnonzero(is_new).tolist() == [24, 26, 29]
    r_std = np.log(100 / 99) * np.sqrt(20 / 19)
    sigma_24 = close[24] * r_std
    expected_24 = ((100 + 99 + 100) / 3 - low[24]) / sigma_24
    assert excursion[24] == pytest.approx(expected_24, rel=1e-9)


def hand_bars() -> pl.DataFrame:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "timestamp": [start + timedelta(hours=i) for i in range(N_HAND)],
            "symbol": ["AAA"] * N_HAND,
            "open": HAND_CLOSE,
            "high": HAND_HIGH,
            "low": HAND_LOW,
            "close": HAND_CLOSE,
        }
    )


def test_label_ends_follow_the_symbols_own_uneven_bars() -> None:
    bars = hand_bars()
    gap = pl.when(pl.int_range(pl.len()) >= 10).then(pl.duration(hours=30)).otherwise(pl.duration())
    uneven = bars.with_columns(pl.col("timestamp") + gap)  # an outage before bar 10
    frame = group_targets(uneven, [Variant("AAA", 3, "high", 10.0, 1.0, 3)])
    # bar 8's third next bar is bar 11, 32 hours later, not 3 hours
    assert frame["label_end_h3"][8] == uneven["timestamp"].dt.replace_time_zone(None)[11]


def test_group_targets_on_hand_series() -> None:
    variants = [Variant("AAA", 3, "high", k, 1.0, h) for k in (10.0, 15.0, 17.0) for h in (1, 3, 6)]
    frame = group_targets(hand_bars(), variants)
    ends = ["label_end_h1", "label_end_h3", "label_end_h6"]
    labels_and_moves = [
        name for v in variants for name in (v.variant_id, move_column(v.variant_id))
    ]
    assert frame.columns == ["timestamp", *labels_and_moves, *ends]
    assert frame.height == N_HAND
    # every row's label end is the h-th next bar of the symbol; past the data: never
    stamps = hand_bars()["timestamp"].dt.replace_time_zone(None).to_list()
    for horizon, column in zip((1, 3, 6), ends, strict=True):
        expected = stamps[horizon:] + [datetime(9999, 12, 31)] * horizon
        assert frame[column].to_list() == expected

    def labelled(variant_id: str) -> dict[int, int]:
        column = frame[variant_id]
        return {i: int(column[i]) for i in range(N_HAND) if column[i] is not None}

    # Bar 24 (excursion ~14.4): upper 115 + sigma ~ 116.02 reached by bar 26's high 117
    # (2 bars ahead); lower 100 - sigma ~ 98.98 reached by bar 27's low 98 (3 bars ahead).
    # Bar 26 (excursion ~16.3): lower ~98.98 reached by bar 27 (1 bar ahead).
    # Bar 29 (excursion ~18.7): last bar, nothing ahead -> unknown -> null.
    assert labelled("AAA_w3_high_s10_m1_h1") == {24: NEITHER, 26: REVERSION}
    assert labelled("AAA_w3_high_s10_m1_h3") == {24: BREAKOUT, 26: REVERSION}
    assert labelled("AAA_w3_high_s10_m1_h6") == {24: BREAKOUT, 26: REVERSION}
    assert labelled("AAA_w3_high_s15_m1_h3") == {26: REVERSION}
    assert labelled("AAA_w3_high_s17_m1_h3") == {}
    assert all(frame[v.variant_id].dtype == pl.Int8 for v in variants)


@pytest.fixture(scope="module")
def random_targets() -> tuple[pl.DataFrame, GridConfig, dict[str, pl.DataFrame]]:
    bars = generate_bars(("AAA", "BBB"), n_bars=600, seed=3)
    grid = GridConfig(
        windows=[3, 10],
        swing_types=["high", "low"],
        std_thresholds=[0.5, 1.5],
        move_thresholds=[1.0],
        horizons=[3, 12],
    )
    return bars, grid, build_targets(bars, grid)


def test_build_targets_one_frame_per_group(
    random_targets: tuple[pl.DataFrame, GridConfig, dict[str, pl.DataFrame]],
) -> None:
    bars, grid, targets = random_targets
    groups = group_variants(expand_grid(grid, ["AAA", "BBB"]))
    assert list(targets) == list(groups)
    assert len(targets) == 8
    for gid, frame in targets.items():
        ends = ["label_end_h3", "label_end_h12"]
        paired = [n for v in groups[gid] for n in (v.variant_id, move_column(v.variant_id))]
        assert frame.columns == ["timestamp", *paired, *ends]
        assert frame.height == 600
        for variant in groups[gid]:
            column = frame[variant.variant_id]
            assert column.dtype == pl.Int8
            assert set(column.drop_nulls().unique().to_list()) <= {0, 1, 2}
            assert 0 < column.null_count() < 600


def test_build_targets_nulls_exactly_where_no_event(
    random_targets: tuple[pl.DataFrame, GridConfig, dict[str, pl.DataFrame]],
) -> None:
    bars, _, targets = random_targets
    one = bars.filter(pl.col("symbol") == "BBB").sort("timestamp")
    high, low, close = (one[c].to_numpy() for c in ("high", "low", "close"))
    is_new, excursion = swing_excursion(high, low, close, 10, "low")
    labels = barrier_labels(high, low, close, trailing_sigma(close, 10), "low", 1.0, [12])[12]
    event = is_new & (excursion >= 0.5) & (labels != UNKNOWN)
    assert event.sum() > 10
    assert labels[-1] == UNKNOWN  # nothing lies ahead of the last bar
    column = targets["BBB_w10_low"]["BBB_w10_low_s0.5_m1_h12"]
    np.testing.assert_array_equal(column.is_not_null().to_numpy(), event)
    np.testing.assert_array_equal(column.drop_nulls().to_numpy(), labels[event])


def test_higher_std_threshold_labels_a_subset(
    random_targets: tuple[pl.DataFrame, GridConfig, dict[str, pl.DataFrame]],
) -> None:
    _, _, targets = random_targets
    for gid, frame in targets.items():
        for horizon in (3, 12):
            loose = frame[f"{gid}_s0.5_m1_h{horizon}"]
            strict = frame[f"{gid}_s1.5_m1_h{horizon}"]
            strict_rows = strict.is_not_null().to_numpy()
            loose_rows = loose.is_not_null().to_numpy()
            assert np.all(loose_rows[strict_rows])
            assert strict_rows.sum() < loose_rows.sum()
            # Where both are labelled, the label is the same (it does not depend on k).
            np.testing.assert_array_equal(
                strict.to_numpy()[strict_rows], loose.to_numpy()[strict_rows]
            )


def test_build_targets_uses_only_requested_symbols(
    random_targets: tuple[pl.DataFrame, GridConfig, dict[str, pl.DataFrame]],
) -> None:
    bars, grid, _ = random_targets
    only = build_targets(bars, grid, ["BBB"])
    assert sorted(only) == ["BBB_w10_high", "BBB_w10_low", "BBB_w3_high", "BBB_w3_low"]


def test_moves_agree_with_labels_and_the_close_to_close_rule() -> None:
    """+1 / -1 exactly for breakout / reversion, inside (-1, 1) for neither, where it is the
    horizon's close-to-close move over b*sigma (sign towards the breakout barrier)."""
    rng = np.random.default_rng(3)
    n = 400
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    high, low = close * 1.004, close * 0.996
    sigma = trailing_sigma(close, 5)
    checked = {0: 0, 1: 0, 2: 0}
    for swing_type, direction in (("high", 1.0), ("low", -1.0)):
        labels, moves = barrier_outcomes(high, low, close, sigma, swing_type, 1.0, [4])
        label, move = labels[4], moves[4]
        for t in range(40, n - 4):
            if label[t] == 1:
                assert move[t] == 1.0
            elif label[t] == 2:
                assert move[t] == -1.0
            elif label[t] == 0 and not np.isnan(move[t]) and abs(move[t]) < 0.999:
                expected = direction * (close[t + 4] - close[t]) / sigma[t]
                assert move[t] == pytest.approx(expected)
            else:
                continue
            checked[int(label[t])] += 1
    assert min(checked.values()) > 10, checked

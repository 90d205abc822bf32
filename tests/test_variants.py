"""Tests of the variant grid, its groups and the shard plan."""

from __future__ import annotations

from collections import Counter

import pytest

from alphafactory.config import GridConfig
from alphafactory.targets.variants import (
    Variant,
    expand_grid,
    group_id,
    group_variants,
    plan_shards,
)

SYMBOLS = ["BTC", "ETH", "SOL"]


@pytest.fixture(scope="module")
def default_variants() -> list[Variant]:
    return expand_grid(GridConfig(), SYMBOLS)


def test_default_grid_has_2160_variants(default_variants: list[Variant]) -> None:
    assert len(default_variants) == 2160
    assert len(set(default_variants)) == 2160


def test_default_grid_has_36_groups_of_60(default_variants: list[Variant]) -> None:
    groups = group_variants(default_variants)
    assert len(groups) == 36
    assert {len(vs) for vs in groups.values()} == {60}
    for gid, variants in groups.items():
        assert {v.group_id for v in variants} == {gid}


def test_120_variants_per_symbol_and_window(default_variants: list[Variant]) -> None:
    counts = Counter((v.symbol, v.window) for v in default_variants)
    assert len(counts) == 3 * 6
    assert set(counts.values()) == {120}


def test_variant_ids_unique_and_stable(default_variants: list[Variant]) -> None:
    ids = [v.variant_id for v in default_variants]
    assert len(set(ids)) == len(ids)
    again = [v.variant_id for v in expand_grid(GridConfig(), SYMBOLS)]
    assert ids == again
    assert ids[0] == "BTC_w2_high_s1_m0.5_h3"
    assert ids[-1] == "SOL_w50_low_s2.5_m1.5_h48"


def test_variant_naming() -> None:
    variant = Variant("ETH", 10, "low", 1.5, 1.0, 24)
    assert variant.group_id == "ETH_w10_low" == group_id("ETH", 10, "low")
    assert variant.event_key == "ETH_w10_low_s1.5"
    assert variant.variant_id == "ETH_w10_low_s1.5_m1_h24"


def test_variant_round_trips_through_dict(default_variants: list[Variant]) -> None:
    for variant in default_variants[::97]:
        assert Variant.from_dict(variant.to_dict()) == variant


def test_counts_follow_the_grid() -> None:
    grid = GridConfig(windows=[3, 10], swing_types=["low"], horizons=[6])
    variants = expand_grid(grid, ["BTC", "ETH"])
    assert len(variants) == 2 * 2 * 1 * 4 * 3 * 1
    assert len(group_variants(variants)) == 4


@pytest.mark.parametrize("n_shards", [1, 5, 7, 12, 36, 100])
def test_plan_shards_keeps_groups_whole_and_balanced(
    default_variants: list[Variant], n_shards: int
) -> None:
    group_ids = list(group_variants(default_variants))
    shards = plan_shards(group_ids, n_shards)
    assert len(shards) == min(n_shards, len(group_ids))
    placed = [gid for shard in shards for gid in shard]
    assert sorted(placed) == sorted(group_ids)  # each group in exactly one shard
    assert len(placed) == len(set(placed))
    sizes = [len(shard) for shard in shards]
    assert min(sizes) >= 1
    assert max(sizes) - min(sizes) <= 1


def test_plan_shards_never_more_shards_than_groups() -> None:
    assert plan_shards(["a", "b", "c"], 10) == [["a"], ["b"], ["c"]]
    assert plan_shards(["a", "b", "c"], 2) == [["a", "c"], ["b"]]
    assert plan_shards(["a"], 0) == [["a"]]
    assert plan_shards([], 4) == []

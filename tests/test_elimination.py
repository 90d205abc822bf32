"""Successive halving over a group's variants (alphafactory.models.lightgbm.elimination)."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.models.lightgbm.elimination import ELIMINATED, HalvingSchedule, fit_group_halving
from alphafactory.models.lightgbm.family import DATASET_PARAMS, fixed_params
from alphafactory.models.lightgbm.shard import GroupData, RowsAndLabels, build_group, fit_variant

N_ROWS, N_FEATURES, N_TRAIN = 2400, 12, 1800


def _labels_from(score: np.ndarray) -> np.ndarray:
    """3 classes by terciles of a score."""
    low, high = np.quantile(score, [1 / 3, 2 / 3])
    return np.where(score < low, 0, np.where(score > high, 1, 2)).astype(np.int32)


def _group(noise_levels: list[float], seed: int = 5) -> tuple[GroupData, list[str]]:
    """One group whose variant k has labels = f(features) + noise_levels[k] * noise."""
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((N_ROWS, N_FEATURES)).astype(np.float32)
    signal = matrix[:, 0] + 0.5 * matrix[:, 1]
    per_variant: dict[str, RowsAndLabels] = {}
    ids: list[str] = []
    for k, noise in enumerate(noise_levels):
        vid = f"v{k}"
        labels = _labels_from(signal + noise * rng.standard_normal(N_ROWS))
        rows = np.arange(N_ROWS)[k % 2 :: 1]  # variants differ in rows too
        train = rows[rows < N_TRAIN]
        valid = rows[rows >= N_TRAIN]
        per_variant[vid] = (train, labels[train], valid, labels[valid])
        ids.append(vid)
    train_union = np.unique(np.concatenate([v[0] for v in per_variant.values()]))
    valid_union = np.unique(np.concatenate([v[2] for v in per_variant.values()]))
    names = [f"f{i}" for i in range(N_FEATURES)]
    group = build_group(
        "g", matrix, names, train_union, valid_union, per_variant, {**DATASET_PARAMS}
    )
    return group, ids


PARAMS = {**fixed_params(1, 7), "num_leaves": 7, "max_depth": 3, "learning_rate": 0.1}


def test_schedule_budgets_and_keep() -> None:
    plan = HalvingSchedule(first_rounds=5, eta=3)
    assert plan.budgets(45) == [5, 15, 45]
    assert plan.budgets(50) == [5, 15, 45, 50]
    assert plan.budgets(5) == [5]
    # floor(n / eta), at least min_survivors and never more than n
    assert [plan.keep(n) for n in (10, 9, 5, 4, 3, 2, 1)] == [3, 3, 1, 1, 1, 1, 1]
    assert HalvingSchedule(min_survivors=2).keep(3) == 2
    assert HalvingSchedule(min_survivors=2).keep(7) == 2
    assert HalvingSchedule(min_survivors=4).keep(3) == 3
    with pytest.raises(ValueError):
        HalvingSchedule(eta=1)


def test_clear_winner_survives_and_fit_counts_per_rung() -> None:
    # v3 is clearly best (least label noise); no variant can early-stop before 45 rounds.
    group, ids = _group([3.0, 2.5, 2.0, 0.1, 3.5, 2.8, 4.0, 1.5, 3.2])
    outcome = fit_group_halving(
        group,
        ids,
        PARAMS,
        num_rounds=45,
        early_stopping=45,
        min_rows=50,
        schedule=HalvingSchedule(first_rounds=5, eta=3),
        concurrent_fits=2,
    )
    assert [(r.budget, r.trained, r.kept) for r in outcome.rungs] == [
        (5, 9, 3),
        (15, 3, 1),
        (45, 1, 0),
    ]
    statuses = {r.variant_id: r.status for r in outcome.results}
    assert statuses["v3"] == "ok"
    assert sum(s == "ok" for s in statuses.values()) == 1
    assert sum(s == ELIMINATED for s in statuses.values()) == 8
    assert outcome.rounds_trained == 9 * 5 + 3 * 10 + 1 * 30
    assert [r.variant_id for r in outcome.results] == ids  # input order
    best = max(outcome.results, key=lambda r: r.average_precision)
    assert best.variant_id == "v3"


def test_survivor_equals_plain_fit_variant() -> None:
    group, ids = _group([2.0, 0.3, 1.0, 3.0])
    outcome = fit_group_halving(
        group,
        ids,
        PARAMS,
        num_rounds=200,
        early_stopping=10,
        min_rows=50,
        schedule=HalvingSchedule(first_rounds=4, eta=2),
    )
    plain = {
        vid: fit_variant(group, vid, PARAMS, num_rounds=200, early_stopping=10, min_rows=50)
        for vid in ids
    }
    finished = [r for r in outcome.results if r.status == "ok"]
    assert finished, "at least the leader trains to the end"
    for result in finished:
        reference = plain[result.variant_id]
        assert result.best_iteration == reference.best_iteration
        assert result.average_precision == reference.average_precision  # same model
    winner = max(plain.values(), key=lambda r: r.average_precision)
    assert winner.variant_id == "v1"
    assert {r.variant_id for r in finished} >= {"v1"}


def test_skipped_variants_keep_fit_variant_statuses() -> None:
    group, ids = _group([0.5, 1.0])
    group.rows["v1"].train_label[:] = 1  # one class only
    outcome = fit_group_halving(
        group, ids, PARAMS, num_rounds=20, early_stopping=5, min_rows=50, keep_model=True
    )
    by_id = {r.variant_id: r for r in outcome.results}
    assert by_id["v1"].status == "single_class"
    assert by_id["v0"].status == "ok"
    assert by_id["v0"].model is not None and by_id["v0"].valid_probabilities is not None
    too_big = fit_group_halving(group, ["v0"], PARAMS, 20, 5, min_rows=5000)
    assert too_big.results[0].status == "too_few_rows"
    assert too_big.rungs == []


def test_stage1_picks_the_same_winner_with_and_without_elimination() -> None:
    from alphafactory.config import load_environment
    from alphafactory.stages.tune import fit_stage1, pick_winners

    group, ids = _group([3.0, 2.5, 2.0, 0.1, 3.5, 2.8])
    base = load_environment("local-dev")
    rows = {}
    for elimination in (False, True):
        tune = base.tune.model_copy(
            update={"elimination": elimination, "num_rounds": 45, "min_rows": 50}
        )
        config = base.model_copy(update={"tune": tune})
        results = fit_stage1(group, ids, PARAMS, config)
        rows[elimination] = [{**r.summary(), "group_id": "g"} for r in results]
    statuses = [r["status"] for r in rows[True]]
    assert statuses.count("eliminated") >= 3  # halving really dropped variants
    assert all(r["status"] == "ok" for r in rows[False])
    assert pick_winners(rows[True])["g"]["variant_id"] == "v3"
    assert pick_winners(rows[False])["g"]["variant_id"] == "v3"


def test_halve_groups_shares_one_pool_and_matches_each_group_alone() -> None:
    """Consecutive groups' rungs on one pool: each group's outcome is the one it gets alone."""
    from functools import partial

    from alphafactory.models.lightgbm.elimination import halve_groups

    noise = {"g1": [0.2, 1.0, 2.0, 3.0, 4.0], "g2": [3.0, 0.4, 2.5, 1.5, 5.0]}
    built = {
        gid: _group(levels, seed=len(gid) + i) for i, (gid, levels) in enumerate(noise.items())
    }
    halve = partial(
        fit_group_halving, params=PARAMS, num_rounds=80, early_stopping=10, min_rows=30,
        schedule=HalvingSchedule(first_rounds=5, eta=2),
    )  # fmt: skip
    alone = {gid: halve(group, ids) for gid, (group, ids) in built.items()}
    jobs = [("g1", *built["g1"]), ("none", None, ["x"]), ("g2", *built["g2"])]
    streamed = list(halve_groups(jobs, lambda g, v, pool: halve(g, v, pool=pool), 2))

    assert [gid for gid, _ in streamed] == ["g1", "none", "g2"]
    assert streamed[1][1] is None
    for gid, outcome in (streamed[0], streamed[2]):
        assert outcome is not None
        expected = alone[gid]
        assert [vars(r) for r in outcome.rungs] == [vars(r) for r in expected.rungs]
        assert outcome.rounds_trained == expected.rounds_trained
        got = [(r.variant_id, r.status, r.best_iteration, r.average_precision)
               for r in outcome.results]  # fmt: skip
        want = [(r.variant_id, r.status, r.best_iteration, r.average_precision)
                for r in expected.results]  # fmt: skip
        assert got == want
        assert sum(r.status == ELIMINATED for r in outcome.results) >= 2

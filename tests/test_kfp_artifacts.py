"""What KFP shows of a shard: ROC points of the train results, the pooled ClassificationMetrics
artifacts (kfp's real class) and the Markdown summaries, on hand-made results."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from kfp import dsl
from sklearn.metrics import roc_curve

from alphafactory import io
from alphafactory.config import load_environment
from alphafactory.layout import RunLayout
from alphafactory.stages.kfp_artifacts import (
    backtest_summary_markdown,
    grid_auc,
    log_classification,
    pooled_classification,
    publish_backtest_shard,
    publish_train_shard,
    train_summary_markdown,
)
from alphafactory.stages.train import ROC_THRESHOLDS, roc_curves

if TYPE_CHECKING:
    from tiny_run import TinyRuns

GRID = [round(0.005 * k, 3) for k in range(201)]
CLASSES = ("neither", "breakout", "reversion")
CATEGORIES = [{"displayName": name} for name in CLASSES]


def _step(scores: list[float], t: float) -> float:
    """The share of `scores` at or above `t`, as stored (4 decimals)."""
    return round(sum(s >= t for s in scores) / len(scores), 4)


def _curve(positives: list[float], negatives: list[float]) -> dict[str, list[float]]:
    return {
        "fpr": [_step(negatives, t) for t in GRID],
        "tpr": [_step(positives, t) for t in GRID],
        "thresholds": GRID,
    }


A_LABELS, A_PROBS = [1, 2], [[0.1, 0.7, 0.2], [0.2, 0.3, 0.5]]
B_LABELS = [0, 1, 1, 2]
B_PROBS = [[0.5, 0.25, 0.25], [0.15, 0.45, 0.4], [0.3, 0.3, 0.4], [0.05, 0.05, 0.9]]


def test_roc_points_are_read_on_the_fixed_grid_with_at_or_above() -> None:
    assert ROC_THRESHOLDS.tolist() == GRID
    curves = roc_curves(np.array(B_LABELS), np.array(B_PROBS))
    assert curves == {
        "neither": _curve([0.5], [0.15, 0.3, 0.05]),
        "breakout": _curve([0.45, 0.3], [0.25, 0.05]),
        "reversion": _curve([0.9], [0.25, 0.4, 0.4]),
    }
    # a score equal to the threshold (0.15, 0.3) counts as predicted
    at = [GRID.index(t) for t in (0.15, 0.155, 0.3, 0.305)]
    assert [curves["neither"]["fpr"][k] for k in at] == [0.6667, 0.3333, 0.3333, 0.0]
    # no "neither" event in A: no curve for it
    assert roc_curves(np.array(A_LABELS), np.array(A_PROBS)) == {
        "breakout": _curve([0.7], [0.3]),
        "reversion": _curve([0.5], [0.2]),
    }


def test_roc_points_lie_on_sklearns_curve() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 300)
    probabilities = rng.dirichlet([1.0, 1.0, 1.0], 300)
    curves = roc_curves(labels, probabilities)
    assert list(curves) == ["neither", "breakout", "reversion"]
    for index, curve in enumerate(curves.values()):
        fpr, tpr, thresholds = roc_curve(
            labels == index, probabilities[:, index], drop_intermediate=False
        )
        for t, f, p in zip(curve["thresholds"], curve["fpr"], curve["tpr"], strict=True):
            at = thresholds >= t  # sklearn's point of the lowest threshold at or above t
            expected = (fpr[at][-1], tpr[at][-1]) if at.any() else (0.0, 0.0)
            assert (f, p) == pytest.approx(expected, abs=5e-5), t


def _test_part(labels: list[int], probabilities: list[list[float]], **scores: Any) -> dict:
    from alphafactory.metrics import class_confusion

    y, p = np.array(labels), np.array(probabilities)
    return {
        "n_events": len(labels), "confusion_matrix": class_confusion(y, p),
        "roc_curves": roc_curves(y, p), **scores,
    }  # fmt: skip


def hand_made_results() -> dict[str, Any]:
    """A shard of four groups: two champions with test events (in reverse natural order),
    one without test events, one that could not be fitted."""
    return {
        "ETH_w10_low": {"status": "ok", "family": "xgboost", "test": _test_part(
            B_LABELS, B_PROBS, test_ap=0.61234, baseline_ap=0.33333, p_value=0.0213,
            p_adjusted=0.0426, skill=True)},
        "ETH_w2_low": {"status": "ok", "family": "lightgbm", "test": _test_part(
            A_LABELS, A_PROBS, test_ap=0.75, baseline_ap=0.5, p_value=0.5, p_adjusted=0.5,
            skill=False)},
        "ETH_w3_high": {"status": "ok", "family": "lightgbm", "test": {
            "n_events": 0, "test_ap": float("nan"), "skill": None}},
        "BTC_w3_low": {"status": "no_rows", "variant_id": "BTC_w3_low_s1.0_m1.0_h6"},
    }  # fmt: skip


#: The pooled one-vs-rest events of the hand-made shard (positive scores, negative scores):
#: "neither" only from B, the one group with a positive; breakout and reversion from A and B.
POOLED = {
    "neither": ([0.5], [0.15, 0.3, 0.05]),
    "breakout": ([0.7, 0.45, 0.3], [0.3, 0.25, 0.05]),
    "reversion": ([0.5, 0.9], [0.2, 0.25, 0.4, 0.4]),
}


def _share(scores: list[float], t: float) -> float:
    return round(sum(s >= t for s in scores) / len(scores), 4)


def test_pooling_sums_the_matrices_and_pools_each_class_curve() -> None:
    pooled = pooled_classification(hand_made_results())
    assert pooled.groups == ("ETH_w2_low", "ETH_w10_low")  # natural order, tested only
    # A predicts breakout, reversion; B predicts neither, breakout, reversion, reversion
    assert pooled.matrix == [[1, 0, 0], [0, 2, 1], [0, 0, 2]]
    assert pooled.events == 6
    assert pooled.thresholds == GRID
    assert pooled.curves == {
        name: ([_share(neg, t) for t in GRID], [_share(pos, t) for t in GRID])
        for name, (pos, neg) in POOLED.items()
    }
    fpr, tpr = pooled.curves["breakout"]
    assert [(fpr[GRID.index(t)], tpr[GRID.index(t)]) for t in (0.3, 0.305, 0.45)] == [
        (0.3333, 1.0), (0.0, 0.6667), (0.0, 0.6667)
    ]  # fmt: skip


def test_a_model_that_knows_only_the_base_rates_gets_the_diagonal() -> None:
    labels = [0] + [1] * 3 + [2] * 6
    test = _test_part(labels, [[0.1, 0.3, 0.6]] * 10)
    pooled = pooled_classification({"BTC_w3_high": {"status": "ok", "test": test}})
    assert list(pooled.curves) == list(CLASSES)
    for fpr, tpr in pooled.curves.values():
        assert fpr == tpr and grid_auc(fpr, tpr) == 0.5


def test_nothing_tested_gives_an_empty_matrix_and_no_curve() -> None:
    results = {
        gid: r for gid, r in hand_made_results().items() if gid.startswith(("BTC", "ETH_w3"))
    }
    pooled = pooled_classification(results)
    assert (pooled.groups, pooled.matrix, pooled.thresholds) == ((), [[0] * 3] * 3, [])
    assert pooled.curves == {}
    artifact = dsl.ClassificationMetrics(name="roc_breakout")
    log_classification(artifact, pooled, "breakout")
    assert artifact.metadata == {
        "confusionMatrix": {"annotationSpecs": CATEGORIES, "rows": [{"row": [0, 0, 0]}] * 3}
    }


def test_a_group_without_roc_points_adds_to_the_matrix_only() -> None:
    results = hand_made_results()
    del results["ETH_w2_low"]["test"]["roc_curves"]
    pooled = pooled_classification(results)
    assert pooled.events == 6
    alone = results["ETH_w10_low"]["test"]["roc_curves"]
    assert pooled.curves == {name: (c["fpr"], c["tpr"]) for name, c in alone.items()}


def test_curves_on_different_grids_are_refused() -> None:
    results = hand_made_results()
    results["ETH_w2_low"]["test"]["roc_curves"]["breakout"]["thresholds"] = GRID[::-1]
    with pytest.raises(ValueError, match="different threshold grids"):
        pooled_classification(results)


def test_each_class_artifact_holds_the_pooled_matrix_and_its_curve() -> None:
    pooled = pooled_classification(hand_made_results())
    for name in CLASSES:
        artifact = dsl.ClassificationMetrics(name=f"roc_{name}")
        log_classification(artifact, pooled, name)
        assert set(artifact.metadata) == {"confusionMatrix", "confidenceMetrics"}
        assert artifact.metadata["confusionMatrix"] == {
            "annotationSpecs": CATEGORIES,
            "rows": [{"row": [1, 0, 0]}, {"row": [0, 2, 1]}, {"row": [0, 0, 2]}],
        }
        positives, negatives = POOLED[name]
        assert artifact.metadata["confidenceMetrics"] == [
            {"confidenceThreshold": t, "recall": _share(positives, t),
             "falsePositiveRate": _share(negatives, t)}
            for t in GRID
        ]  # fmt: skip


def test_grid_auc() -> None:
    assert grid_auc([1.0, 0.0, 0.0], [1.0, 1.0, 0.0]) == 1.0
    assert grid_auc([1.0, 0.5, 0.0], [1.0, 0.5, 0.0]) == 0.5
    assert grid_auc([0.5], [1.0]) == 0.75  # closed: (0, 0) - (0.5, 1) - (1, 1)


def test_train_summary_lists_every_group_and_each_tested_groups_matrix() -> None:
    text = train_summary_markdown(3, hand_made_results())
    lines = text.splitlines()
    assert lines[0] == "# Train shard 3: 2 champions scored on the test period"
    assert "(6 events)" in text and "(area neither 1.000, breakout 0.944, reversion 1.000)" in text
    table = [line for line in lines if line.startswith("| ") and "_" in line.split("|")[1]]
    assert table == [
        "| BTC_w3_low | — | no_rows | — | — | — | — |",
        "| ETH_w2_low | lightgbm | ok | 2 | 0.7500 | 0.5000 | 0.500 |",
        "| ETH_w3_high | lightgbm | no test-period events | — | — | — | — |",
        "| ETH_w10_low | xgboost | ok | 4 | 0.6123 | 0.3333 | 0.021 |",
    ]
    assert [line for line in lines if line.startswith("## ")] == ["## ETH_w2_low", "## ETH_w10_low"]
    section = lines[lines.index("## ETH_w10_low") :]
    assert section[4:9] == [
        "| true \\ predicted | neither | breakout | reversion |",
        "|---|---|---|---|",
        "| neither | 1 | 0 | 0 |",
        "| breakout | 0 | 1 | 1 |",
        "| reversion | 0 | 0 | 1 |",
    ]
    # B separates every class: each class's positives score above its negatives
    assert section[10] == (
        "ROC AUC (one-vs-rest, on the threshold grid): neither 1.000, breakout 1.000, "
        "reversion 1.000; macro 1.000"
    )
    assert lines[lines.index("## ETH_w2_low") + 10] == (
        "ROC AUC (one-vs-rest, on the threshold grid): breakout 1.000, reversion 1.000; macro 1.000"
    )


BACKTESTED = {
    "BTC_w10_high": {
        "family": "lightgbm", "n_trials": 72, "passes_deflated_sharpe": False,
        "deflated_sharpe": {"probability": 0.1563}, "pbo": {"pbo": 0.3436},
        "metrics": {"n_trades": 23, "total_return": 0.0081, "annual_return": 0.371,
                    "sharpe": 1.4856, "sortino": 2.027, "max_drawdown": 0.0283, "hit_rate": 0.6957,
                    "profit_factor": 1.1284, "exposure": 0.2622},
        "walk_forward": {"windows": 1, "refits": 1},
        "variant": {"symbol": "BTC", "window": 10, "swing_type": "high", "std_threshold": 1.0,
                    "move_threshold": 1.0, "horizon": 12},
    },
}  # fmt: skip


def test_backtest_summary_has_a_row_per_champion() -> None:
    config = load_environment("local-dev", use_env_vars=False)
    lines = backtest_summary_markdown(config, 1, BACKTESTED).splitlines()
    assert lines[0] == "# Backtest shard 1"
    assert lines[2].startswith("Backtest: 0 of 1 champions pass the deflated-Sharpe gate")
    (row,) = [line for line in lines if line.startswith("| BTC_w10_high |")]
    assert row.startswith("| BTC_w10_high | lightgbm | 23 | 0.8% | 37.1% | 1.49 | 2.03 | 2.8% |")
    assert "0.156 (N=72)" in row and "| 0.34 |" in row
    off = config.model_copy(
        update={"backtest": config.backtest.model_copy(update={"enabled": False})}
    )
    assert backtest_summary_markdown(off, 1, {}).splitlines()[2] == (
        "The backtest is disabled in this environment."
    )


def test_publish_reads_the_shard_files_of_the_run_folder(tmp_path: Path) -> None:
    layout = RunLayout(str(tmp_path))
    io.write_json(layout.train_shard(2), hand_made_results())
    io.write_json(layout.backtest_shard(2), BACKTESTED)
    rocs = {name: dsl.ClassificationMetrics(name=f"roc_{name}") for name in CLASSES}
    summary = dsl.Markdown(name="summary", uri=str(tmp_path / "train.md"))
    publish_train_shard(str(tmp_path), 2, rocs, summary)
    for name, artifact in rocs.items():
        assert artifact.metadata["confusionMatrix"]["rows"][1] == {"row": [0, 2, 1]}
        points = artifact.metadata["confidenceMetrics"]
        assert [p["recall"] for p in points] == [_share(POOLED[name][0], t) for t in GRID]
    with pytest.raises(ValueError, match="one ClassificationMetrics per class"):
        publish_train_shard(str(tmp_path), 2, {"breakout": rocs["breakout"]}, summary)
    assert (tmp_path / "train.md").read_text() == train_summary_markdown(2, hand_made_results())
    config = load_environment("local-dev", use_env_vars=False)
    summary = dsl.Markdown(name="summary", uri=str(tmp_path / "backtest.md"))
    publish_backtest_shard(config, str(tmp_path), 2, summary)
    assert (tmp_path / "backtest.md").read_text() == backtest_summary_markdown(
        config, 2, BACKTESTED
    )


def test_a_real_runs_shards_pool_every_tested_event(tiny_runs: TinyRuns) -> None:
    layout = RunLayout(str(tiny_runs.run_dir))
    shards = sorted((tiny_runs.run_dir / "train" / "shards").glob("shard-*.json"))
    assert len(shards) == 2
    for shard in range(len(shards)):
        results = io.read_json(layout.train_shard(shard))
        tested = {g: r["test"] for g, r in results.items() if r["test"].get("n_events")}
        curves = [c for t in tested.values() for c in t["roc_curves"].values()]
        assert tested and curves and all(c["thresholds"] == GRID for c in curves)
        pooled = pooled_classification(results)
        assert pooled.events == sum(t["n_events"] for t in tested.values())
        assert pooled.curves and pooled.thresholds == GRID
        for fpr, tpr in pooled.curves.values():
            assert fpr[0] == tpr[0] == 1.0 and fpr[-1] == tpr[-1] == 0.0
        summary = train_summary_markdown(shard, results)
        assert all(f"## {gid}" in summary for gid in tested)

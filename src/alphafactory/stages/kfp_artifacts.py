"""What the KFP UI and the Vertex console show of a shard: its train results as one
`ClassificationMetrics` artifact and a Markdown summary, its backtest results as a Markdown
summary. Plain dicts in, plain values out; artifacts are duck-typed (no kfp import).

KFP holds one confusion matrix and one ROC curve per `ClassificationMetrics` artifact, and a
shard trains several groups of a three-class target, so a train shard task has one artifact
per class (`roc_neither`, `roc_breakout`, `roc_reversion`), each over the pooled test-period
events of the shard's champions:

* the confusion matrix (the same in the three) is the sum of the champions' test-period
  matrices: its entries add up to the shard's test-period events;
* the ROC curve is the class's one-vs-rest curve of the pooled events, read at the
  thresholds of `alphafactory.stages.train.ROC_THRESHOLDS`. Every group's curves are read on
  that one grid, so the pooled rates are the groups' rates weighted by their positive (true
  positive rate) and negative (false positive rate) events of the class, from the confusion
  matrices, exactly up to the 4-decimal rounding of the stored rates. A group enters a
  class's curve when the class has positive and negative test events in it.

One curve per class rather than one averaged curve: a micro-average ranks the classes'
probabilities against each other and credits a model that knows only the class base rates;
a threshold average mixes classes whose probabilities lie in different bands. KFP's
ClassificationMetrics has no PR curve: those stay in the train results and the run report,
and the summary gives each group's test AP.

Every group's own figures (test AP against its baseline, p, confusion matrix, ROC AUC per
class) are in the Markdown summary. The backtest summary reuses the run report's backtest
table (`alphafactory.stages.report_backtest`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import RunLayout
from alphafactory.runtime import FileArtifact, write_artifact_text
from alphafactory.stages.report_backtest import (
    HEADERS,
    group_summary,
    headline_line,
    note_line,
    sharpe_order,
    table_values,
)
from alphafactory.stages.report_parts import MISSING, natural_key
from alphafactory.targets.swing import CLASS_NAMES


class ClassificationSink(Protocol):
    """What `log_classification` needs of a `kfp.dsl.ClassificationMetrics` artifact."""

    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None: ...

    def log_roc_curve(self, fpr: list[float], tpr: list[float], threshold: list[float]) -> None: ...


@dataclass(frozen=True)
class PooledClassification:
    """The test-period events of a shard's champions, pooled."""

    groups: tuple[str, ...]
    matrix: list[list[int]]
    thresholds: list[float]
    #: (fpr, tpr) at `thresholds` per class that has a pooled curve
    curves: dict[str, tuple[list[float], list[float]]]

    @property
    def events(self) -> int:
        return sum(sum(row) for row in self.matrix)


def tested_champions(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The `test` part of every trained group that has test-period events, in natural order."""
    tested = {}
    for gid in sorted(results, key=natural_key):
        test = results[gid].get("test") if results[gid].get("status") == "ok" else None
        if test and test.get("confusion_matrix"):
            tested[gid] = test
    return tested


def pooled_classification(results: Mapping[str, Any]) -> PooledClassification:
    """Sum of the champions' test-period confusion matrices and the one-vs-rest ROC curve of
    each class over their pooled events (a train shard's results, as in `layout.train_shard`)."""
    tested = tested_champions(results)
    size = len(CLASS_NAMES)
    matrix = [[0] * size for _ in range(size)]
    for test in tested.values():
        for i, row in enumerate(test["confusion_matrix"]):
            for j, count in enumerate(row):
                matrix[i][j] += int(count)
    grids = {
        tuple(curve["thresholds"])
        for test in tested.values()
        for curve in test.get("roc_curves", {}).values()
    }
    if len(grids) > 1:
        raise ValueError(f"ROC curves on different threshold grids: {sorted(tested)}")
    thresholds = list(grids.pop()) if grids else []
    curves = {}
    for index, name in enumerate(CLASS_NAMES):
        pooled = _pooled_class(tested, index, len(thresholds))
        if pooled is not None:
            curves[name] = pooled
    return PooledClassification(tuple(tested), matrix, thresholds, curves)


def _pooled_class(
    tested: Mapping[str, Mapping[str, Any]], index: int, points: int
) -> tuple[list[float], list[float]] | None:
    """(fpr, tpr) of class `index` over the pooled events of the groups that have its curve."""
    weighted: list[tuple[int, int, dict[str, Any]]] = []
    for test in tested.values():
        curve = test.get("roc_curves", {}).get(CLASS_NAMES[index])
        if curve:
            positives = sum(int(c) for c in test["confusion_matrix"][index])
            weighted.append((_events(test) - positives, positives, curve))
    if not weighted:
        return None
    negatives = sum(n for n, _, _ in weighted)
    positives = sum(p for _, p, _ in weighted)
    fpr = [sum(n * c["fpr"][k] for n, _, c in weighted) / negatives for k in range(points)]
    tpr = [sum(p * c["tpr"][k] for _, p, c in weighted) / positives for k in range(points)]
    return [round(x, 4) for x in fpr], [round(x, 4) for x in tpr]


def log_classification(
    sink: ClassificationSink, pooled: PooledClassification, class_name: str
) -> None:
    """Write the pooled confusion matrix and the pooled ROC curve of `class_name` (when the
    class has one) into the artifact."""
    sink.log_confusion_matrix(list(CLASS_NAMES), pooled.matrix)
    if class_name in pooled.curves:
        fpr, tpr = pooled.curves[class_name]
        sink.log_roc_curve(fpr, tpr, pooled.thresholds)


def grid_auc(fpr: Sequence[float], tpr: Sequence[float]) -> float:
    """Trapezoidal area under a curve read on a threshold grid, closed at (0, 0) and (1, 1)."""
    points = sorted({(0.0, 0.0), (1.0, 1.0), *zip(fpr, tpr, strict=True)})
    return sum(
        (x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False)
    )


def _pooled_areas(pooled: PooledClassification) -> str:
    areas = [f"{name} {grid_auc(*curve):.3f}" for name, curve in pooled.curves.items()]
    return ", ".join(areas) or MISSING


def _events(test: Mapping[str, Any]) -> int:
    return sum(sum(int(c) for c in row) for row in test["confusion_matrix"])


def _num(value: Any, digits: int) -> str:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
    return f"{value:.{digits}f}" if ok else MISSING


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return [_row(headers), "|" + "---|" * len(headers), *(_row(r) for r in rows)]


def _auc_line(test: Mapping[str, Any]) -> str:
    curves = test.get("roc_curves", {})  # JSON files hold it with sorted keys
    areas = {n: grid_auc(curves[n]["fpr"], curves[n]["tpr"]) for n in CLASS_NAMES if n in curves}
    if not areas:
        return "ROC AUC: " + MISSING
    parts = [f"{name} {area:.3f}" for name, area in areas.items()]
    macro = sum(areas.values()) / len(areas)
    return f"ROC AUC (one-vs-rest, on the threshold grid): {', '.join(parts)}; macro {macro:.3f}"


def train_summary_markdown(shard: int, results: Mapping[str, Any]) -> str:
    """The Markdown summary of a train shard: the artifact's rule, a table of every group and
    per group its test-period figures and confusion matrix."""
    tested = tested_champions(results)
    pooled = pooled_classification(results)
    lines = [
        f"# Train shard {shard}: {len(tested)} champions scored on the test period",
        "",
        "The ClassificationMetrics artifacts (one per class) pool the test-period events of "
        f"these champions ({pooled.events} events): the sum of their confusion matrices and "
        f"the class's one-vs-rest ROC curve of the pooled events (area {_pooled_areas(pooled)}). "
        "Each group's own figures follow: p is the block-permutation p-value of its test AP "
        "against the baseline, before the adjustment across the run's groups (see the run "
        f"report); {MISSING} means no value (no production model, or no test-period events).",
        "",
    ]
    rows = []
    for gid in sorted(results, key=natural_key):
        group, test = results[gid], tested.get(gid, {})
        status = str(group.get("status", MISSING))
        if group.get("status") == "ok" and not test:
            status = "no test-period events"
        rows.append([
            gid, group.get("family", MISSING), status, test.get("n_events", MISSING),
            _num(test.get("test_ap"), 4), _num(test.get("baseline_ap"), 4),
            _num(test.get("p_value"), 3),
        ])  # fmt: skip
    headers = ["group", "family", "status", "test events", "test AP", "baseline AP", "p"]
    lines += [*_table(headers, rows), ""]
    for gid, test in tested.items():
        matrix = [
            [name, *row] for name, row in zip(CLASS_NAMES, test["confusion_matrix"], strict=True)
        ]
        lines += [
            f"## {gid}",
            "",
            f"Test AP {_num(test.get('test_ap'), 4)} against a baseline of "
            f"{_num(test.get('baseline_ap'), 4)} on {test.get('n_events', MISSING)} events, "
            f"p {_num(test.get('p_value'), 3)}. Confusion matrix (rows: true class, columns: "
            "predicted class):",
            "",
            *_table(["true \\ predicted", *CLASS_NAMES], matrix),
            "",
            _auc_line(test),
            "",
        ]
    return "\n".join(lines)


def backtest_summary_markdown(
    config: EnvironmentConfig, shard: int, results: Mapping[str, Any]
) -> str:
    """The Markdown summary of a backtest shard: the run report's backtest table, for the
    shard's champions."""
    groups = {gid: dict(group) for gid, group in results.items()}
    lines = [f"# Backtest shard {shard}", ""]
    if not config.backtest.enabled:
        return "\n".join([*lines, "The backtest is disabled in this environment.", ""])
    order = sharpe_order(groups)
    rows = [[text for text, _ in table_values(gid, groups[gid])] for gid in order]
    return "\n".join([
        *lines, headline_line(config, groups), "", *_table(HEADERS, rows), "",
        note_line(config), "", *(f"- {group_summary(gid, groups[gid])}" for gid in order), "",
    ])  # fmt: skip


def publish_train_shard(
    run_dir: str,
    shard: int,
    classifications: Mapping[str, ClassificationSink],
    summary: FileArtifact,
) -> None:
    """Fill a train shard task's ClassificationMetrics artifacts (one per class name) and its
    Markdown artifact."""
    if sorted(classifications) != sorted(CLASS_NAMES):
        raise ValueError(f"one ClassificationMetrics per class {CLASS_NAMES} is needed")
    results = io.read_json(RunLayout(run_dir).train_shard(shard))
    pooled = pooled_classification(results)
    for name, sink in classifications.items():
        log_classification(sink, pooled, name)
    write_artifact_text(summary, train_summary_markdown(shard, results))


def publish_backtest_shard(
    config: EnvironmentConfig, run_dir: str, shard: int, summary: FileArtifact
) -> None:
    """Fill a backtest shard task's Markdown artifact."""
    results = io.read_json(RunLayout(run_dir).backtest_shard(shard))
    write_artifact_text(summary, backtest_summary_markdown(config, shard, results))

"""The run report's part per group: the untouched test period's precision-recall curves,
confusion matrix and class shares, and the production model's gain feature importance, all
from the group's train-shard output (`test.pr_curves`, `test.confusion_matrix`,
`importance`)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from alphafactory.stages.report_parts import MISSING
from alphafactory.stages.report_plots import (
    Figure,
    confusion_svg,
    figure,
    importance_svg,
    pr_svg,
)
from alphafactory.stages.report_tables import Table
from alphafactory.targets.swing import CLASS_NAMES

#: Features listed by name in report.md (the figure shows every one the train stage kept).
TOP_FEATURES = 10


def class_shares(test: dict[str, Any]) -> dict[str, float] | None:
    """Each class's share of the test events (the confusion matrix's row sums); None
    without test events."""
    matrix = test.get("confusion_matrix")
    totals = [sum(row) for row in matrix] if matrix else []
    events = sum(totals)
    if not events:
        return None
    return {name: count / events for name, count in zip(CLASS_NAMES, totals, strict=True)}


def shares_text(shares: dict[str, float] | None) -> str:
    """`0.62/0.21/0.17` in class order (neither/breakout/reversion)."""
    return MISSING if shares is None else "/".join(f"{shares[n]:.2f}" for n in CLASS_NAMES)


@dataclass(frozen=True)
class GroupPart:
    """One group's figures (to write), Markdown lines, HTML `<details>` and tables."""

    figures: list[Figure] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    html: str = ""
    tables: list[Table] = field(default_factory=list)


def confusion_table(matrix: list[list[int]]) -> Table:
    headers = ["true \\ predicted", *CLASS_NAMES, "events"]
    rows = [[name, *map(str, row), str(sum(row))] for name, row in zip(CLASS_NAMES, matrix,
                                                                        strict=True)]  # fmt: skip
    return Table(headers, rows, css="confusion")


def group_figures(gid: str, fitted: dict[str, Any]) -> list[Figure]:
    """PR curves and confusion matrix of the test period (when it has events) and the gain
    importance (when the family reports one)."""
    test = fitted.get("test", {})
    shares, events = class_shares(test), test.get("n_events", 0)
    figures = []
    if shares is not None:
        figures.append(
            figure(
                ("pr", f"{gid}.svg"),
                pr_svg(test.get("pr_curves", {}), shares, f"{gid}: test precision-recall"),
                f"{gid}: test-period precision-recall curves",
                f"Precision-recall per class on the {events} test events; dashed: the class's "
                "share, the precision of a no-skill score",
            )
        )
        figures.append(
            figure(
                ("confusion", f"{gid}.svg"),
                confusion_svg(test["confusion_matrix"], f"{gid}: test confusion matrix"),
                f"{gid}: test-period confusion matrix",
                "Rows: the true class; columns: the arg-max prediction; shade and %: share "
                "of the row",
            )
        )
    importance = fitted.get("importance") or []
    if importance:
        figures.append(
            figure(
                ("importance", f"{gid}.svg"),
                importance_svg(importance, f"{gid}: feature importance (gain)"),
                f"{gid}: feature importance (gain)",
                f"Total gain of the production model's {len(importance)} most important "
                "features (model-internal; not a test-period figure)",
            )
        )
    return figures


def summary_text(row: dict[str, Any]) -> str:
    """A group's test-period line: events, class shares, AP against baseline, interval, p."""
    if not row["model"]:
        return f"{row['group']}: no production model"

    def fmt(value: Any, spec: str = ".4f") -> str:
        return MISSING if value is None else format(value, spec)

    return (
        f"{row['group']}: {row['n_test'] or 0} test events, class shares "
        f"(neither/breakout/reversion) {row['shares']}; test AP {fmt(row['test_ap'])} vs "
        f"baseline {fmt(row['baseline_ap'])}, excess {row['excess']}; p (corrected) "
        f"{fmt(row['p_adjusted'], '.3f')}; skill {row['skill'] or MISSING}"
    )


def group_part(row: dict[str, Any], fitted: dict[str, Any]) -> GroupPart:
    """The group's Markdown subsection and HTML `<details>` (figures linked / embedded)."""
    gid = row["group"]
    figures = group_figures(gid, fitted)
    matrix = fitted.get("test", {}).get("confusion_matrix")
    tables = [confusion_table(matrix)] if matrix and class_shares(fitted["test"]) else []
    importance = fitted.get("importance") or []
    top = ", ".join(f"{r['feature']} {float(r['gain']):.4g}" for r in importance[:TOP_FEATURES])
    empty = "" if figures else "No test events and no feature importance: nothing to draw."
    markdown = [
        f"### {gid}",
        "",
        summary_text(row),
        "",
        *[line for table in tables for line in (*table.markdown(), "")],
        *([f"Top features by gain: {top}", ""] if top else []),
        *[item.markdown() for item in figures],
        *([empty] if empty else []),
        "",
    ]
    page = (
        f'<details class="group"><summary>{html.escape(summary_text(row))}</summary>'
        f'<div class="figures">{"".join(item.html() for item in figures)}</div>'
        f"{f'<p>{empty}</p>' if empty else ''}</details>"
    )
    return GroupPart(figures, markdown, page, tables)

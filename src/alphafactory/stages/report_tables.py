"""Tables of the run report: one `Table` renders as Markdown and HTML; the summaries per
symbol and per window; and the legend that says what each "—" in a table means."""

from __future__ import annotations

import html
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alphafactory.stages.report_parts import MISSING, md_cell, natural_key


@dataclass(frozen=True)
class Table:
    """Headers and rows of formatted cells; `legend` says what a "—" means in a column
    (by header); `css` is the HTML table's class."""

    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    legend: Mapping[str, str] = field(default_factory=dict)
    css: str = ""

    def markdown(self) -> list[str]:
        return [
            "| " + " | ".join(md_cell(h) for h in self.headers) + " |",
            "|" + "---|" * len(self.headers),
            *["| " + " | ".join(md_cell(c) for c in row) + " |" for row in self.rows],
        ]

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td{_align(c)}>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        css = f' class="{self.css}"' if self.css else ""
        return f"<table{css}><tr>{head}</tr>{body}</table>"

    def missing_headers(self) -> list[str]:
        """Headers of the columns that hold at least one "—", in column order."""
        return [h for i, h in enumerate(self.headers) if any(MISSING in r[i] for r in self.rows)]


FALLBACK = "not available"
#: Cells that read as one number (figures right-aligned, on one line; text left-aligned).
NUMBER = re.compile(rf"[+-]?[\d.,/]+%?( \[.*\])?|{MISSING}")


def _align(cell: str) -> str:
    return ' class="num"' if NUMBER.fullmatch(cell) else ' class="text"'


#: A "—" in a sentence rather than a table cell.
LEGEND_TEXT = f"{MISSING} in a sentence: the value is undefined, as in the tables."


def legend_lines(tables: Iterable[Table]) -> list[str]:
    """'header: meaning' for every column that shows a "—" in `tables` (each meaning once)."""
    seen: dict[str, None] = {}
    for table in tables:
        seen.update(
            {f"{h}: {table.legend.get(h, FALLBACK)}": None for h in table.missing_headers()}
        )
    return [*seen, LEGEND_TEXT]


def unexplained(tables: Iterable[Table]) -> set[str]:
    """Headers with a "—" that their table's legend does not explain (a report bug)."""
    return {h for t in tables for h in t.missing_headers() if h not in t.legend}


#: "—" in the summaries per symbol and per window.
SUMMARY_LEGEND = {
    "median test AP": "no model of the symbol or window has a test AP",
    "median excess AP": "no model of the window has a test AP",
    "best group (test AP)": "no model of the symbol has a test AP",
}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, sign: bool = False) -> str:
    if value is None:
        return MISSING
    return f"{value:+.4f}" if sign else f"{value:.4f}"


STATUS_WORDS = {
    "no_rows": "no event rows",
    "too_few_rows": "too few event rows (tune.min_rows)",
    "single_class": "a single class among the events",
    "failed": "the fit failed",
}


def no_model_reason(gid: str, stage1: list[dict[str, Any]], train: dict[str, Any]) -> str:
    """Why a group has no production model, from its stage-1 rows and its train output."""
    fitted = train.get(gid)
    if fitted is not None and fitted.get("status") != "ok":
        words = STATUS_WORDS.get(str(fitted.get("status")), str(fitted.get("status")))
        return f"{gid}: production fit not made ({words})"
    counts = Counter(str(r["status"]) for r in stage1 if r["group_id"] == gid)
    if not counts:
        return f"{gid}: not fitted in stage 1"
    parts = ", ".join(
        f"{n} {STATUS_WORDS.get(status, status)}" for status, n in sorted(counts.items())
    )
    return f"{gid}: no stage-1 winner (variants: {parts})"


def symbol_summary(
    symbols: Sequence[str],
    rows: Sequence[dict[str, Any]],
    stage1: list[dict[str, Any]],
    train: dict[str, Any],
) -> Table:
    """Per symbol of the data: its groups, models, skill, champions, and a note that says
    why a symbol (or some of its groups) has no model, or no model with skill."""
    body = []
    for symbol in sorted(symbols, key=natural_key):
        mine = [r for r in rows if r["symbol"] == symbol]
        models = [r for r in mine if r["model"]]
        skilled = [r for r in mine if r["skill"] == "yes"]
        champions = sum(r["champion"] == "yes" for r in mine)
        scored = [r for r in models if r["test_ap"] is not None]
        best = max(scored, key=lambda r: r["test_ap"], default=None)
        body.append(
            [
                symbol,
                str(len(mine)),
                str(sum(r["variant"] is not None for r in mine)),
                str(len(models)),
                str(len(skilled)),
                str(champions),
                _fmt(_median([r["test_ap"] for r in scored])),
                MISSING if best is None else f"{best['group']} ({best['test_ap']:.4f})",
                symbol_note(mine, models, skilled, stage1, train),
            ]
        )
    headers = ("symbol", "groups", "with winner", "models", "with skill", "champions",
               "median test AP", "best group (test AP)", "note")  # fmt: skip
    return Table(headers, body, SUMMARY_LEGEND)


def symbol_note(
    mine: Sequence[dict[str, Any]],
    models: Sequence[dict[str, Any]],
    skilled: Sequence[dict[str, Any]],
    stage1: list[dict[str, Any]],
    train: dict[str, Any],
) -> str:
    if not mine:
        return "no group: the grid made no variant for this symbol"
    modelled = {r["group"] for r in models}
    reasons = [
        no_model_reason(r["group"], stage1, train) for r in mine if r["group"] not in modelled
    ]
    if not models:
        return "no model: " + "; ".join(reasons)
    if skilled:
        note = f"{len(skilled)} of {len(models)} models beat the no-skill baseline"
    else:
        p_values = [r["p_adjusted"] for r in models if r["p_adjusted"] is not None]
        lowest = f" (lowest corrected p {min(p_values):.3f})" if p_values else ""
        note = f"no model beats the no-skill baseline on the test period{lowest}"
    return "; ".join([note, *reasons])


def window_summary(rows: Sequence[dict[str, Any]]) -> Table:
    """Per target window (bars of the swing definition): groups, models, skill, median APs."""
    body = []
    for window in sorted({int(r["window"]) for r in rows}):
        mine = [r for r in rows if r["window"] == window]
        scored = [r for r in mine if r["test_ap"] is not None]
        excess = [r["test_ap"] - r["baseline_ap"] for r in scored if r["baseline_ap"] is not None]
        body.append(
            [
                f"w{window}",
                str(len(mine)),
                str(sum(bool(r["model"]) for r in mine)),
                str(sum(r["skill"] == "yes" for r in mine)),
                str(sum(r["champion"] == "yes" for r in mine)),
                _fmt(_median([r["test_ap"] for r in scored])),
                _fmt(_median(excess), sign=True),
            ]
        )
    headers = ("window", "groups", "models", "with skill", "champions", "median test AP",
               "median excess AP")  # fmt: skip
    return Table(headers, body, SUMMARY_LEGEND)

"""The run report's backtest section: the champions' walk-forward results from
`backtest/results.json` as a sortable table, per-group equity and drawdown charts, a headline.
"""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import polars as pl

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import RunLayout
from alphafactory.stages.report_parts import (
    MISSING,
    Formatter,
    fmt_time,
    md_cell,
    natural_key,
    series_svg,
)
from alphafactory.stages.report_tables import Table
from alphafactory.targets.variants import Variant

TITLE = "Walk-forward backtest (test period, after costs)"


@dataclass(frozen=True)
class BacktestSection:
    """What the report adds: headline lines, Markdown lines, an HTML fragment and its
    tables (for the report's legend of "—")."""

    headline: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    html: str = ""
    tables: list[Table] = field(default_factory=list)


def number(value: Any) -> float | None:
    """A float for ints and floats (infinities kept), None for NaN, None and anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def fmt_pct(value: Any) -> str:
    x = number(value)
    if x is None:
        return MISSING
    return f"{x * 100:,.1f}%" if math.isfinite(x) else ("∞" if x > 0 else "-∞")


def fmt_ratio(value: Any) -> str:
    x = number(value)
    if x is None:
        return MISSING
    return f"{x:.2f}" if math.isfinite(x) else ("∞" if x > 0 else "-∞")


def fmt_count(value: Any) -> str:
    x = number(value)
    return MISSING if x is None else str(int(x))


def fmt_deflated(group: dict[str, Any]) -> str:
    probability = number((group.get("deflated_sharpe") or {}).get("probability"))
    text = MISSING if probability is None else f"{probability:.3f}"
    return f"{text} (N={group['n_trials']})" if "n_trials" in group else text


def fmt_pbo(group: dict[str, Any]) -> str:
    scores = group.get("pbo")
    return MISSING if not scores else fmt_ratio(scores.get("pbo"))


def fmt_gate(group: dict[str, Any]) -> str:
    return "✓ pass" if group.get("passes_deflated_sharpe") else "✗ fail"


METRIC_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("trades", "n_trades", fmt_count),
    ("total return", "total_return", fmt_pct),
    ("annualised return", "annual_return", fmt_pct),
    ("Sharpe", "sharpe", fmt_ratio),
    ("Sortino", "sortino", fmt_ratio),
    ("max drawdown", "max_drawdown", fmt_pct),
    ("hit rate", "hit_rate", fmt_pct),
    ("profit factor", "profit_factor", fmt_ratio),
    ("exposure", "exposure", fmt_pct),
)
HEADERS = (
    "group",
    "family",
    *(title for title, _, _ in METRIC_COLUMNS),
    "deflated Sharpe p (trials N)",
    "PBO",
    "gate",
)


#: What "—" means in the backtest tables, by column (any other column: `NO_VALUE`).
LEGEND = {
    "family": "no family recorded",
    "Sharpe": "fewer than two bars or constant returns (no trade: a flat equity)",
    "Sortino": "no losing bar (no downside) or fewer than two bars",
    "hit rate": "no closed trade",
    "profit factor": "no closed trade with a gain or a loss",
    "deflated Sharpe p (trials N)": "no Sharpe to deflate",
    "PBO": "fewer than two stage-1 variants with a Sharpe, or fewer bars than backtest.pbo_splits",
    "reason": "nothing to explain: the window fitted",
}
NO_VALUE = "no value: the window (or the group's backtest) recorded none"


def legend(headers: Sequence[str]) -> dict[str, str]:
    return {header: LEGEND.get(header, NO_VALUE) for header in headers}


def table_values(gid: str, group: dict[str, Any]) -> list[tuple[str, Any]]:
    """(cell text, sort value) per column of the run-level table, for one group."""
    metrics = group.get("metrics", {})
    return [
        (gid, gid),
        (str(group.get("family", MISSING)), str(group.get("family", ""))),
        *((fmt(metrics.get(key)), metrics.get(key)) for _, key, fmt in METRIC_COLUMNS),
        (fmt_deflated(group), (group.get("deflated_sharpe") or {}).get("probability")),
        (fmt_pbo(group), (group.get("pbo") or {}).get("pbo")),
        (fmt_gate(group), int(bool(group.get("passes_deflated_sharpe")))),
    ]


def load_backtest(layout: RunLayout) -> dict[str, Any] | None:
    """`backtest/results.json`, or None when the run has none."""
    uri = layout.backtest_results
    return io.read_json(uri) if io.exists(uri) else None


def sharpe_order(groups: dict[str, dict[str, Any]]) -> list[str]:
    """Group ids by test-period Sharpe, best first; groups without a Sharpe last."""

    def key(gid: str) -> tuple[bool, float, Any]:
        sharpe = number(groups[gid].get("metrics", {}).get("sharpe"))
        return (sharpe is None, -(sharpe or 0.0), natural_key(gid))

    return sorted(groups, key=key)


def headline_line(config: EnvironmentConfig, groups: dict[str, dict[str, Any]]) -> str:
    if not groups:
        return "Backtest: no champion was backtested"
    passed = sum(bool(g.get("passes_deflated_sharpe")) for g in groups.values())
    sharpes = [number(g.get("metrics", {}).get("sharpe")) for g in groups.values()]
    finite = [s for s in sharpes if s is not None and math.isfinite(s)]
    median = fmt_ratio(statistics.median(finite)) if finite else MISSING
    return (
        f"Backtest: {passed} of {len(groups)} champions pass the deflated-Sharpe gate "
        f"(p ≥ {config.backtest.significance:g}); median Sharpe {median}"
    )


def note_line(config: EnvironmentConfig) -> str:
    """The trade rule and the two population scores, in one paragraph."""
    rule = config.backtest
    confidence = f", only at confidence ≥ {rule.min_confidence:g}" if rule.min_confidence else ""
    return (
        "Each window refits the champion on history before it; a prediction trades at the next "
        "bar's open (never the event bar's close), one position at a time, and exits at the "
        "label's take-profit or stop barrier or at its horizon's close"
        f"{confidence}; costs {rule.fee_bps:g} bps fee + {rule.slippage_bps:g} bps slippage "
        "per side. Deflated Sharpe p: the probability that the true Sharpe beats the best one "
        "expected from N unskilled trials (the group's stage-1 fits and tuning trials); the "
        f"gate needs p ≥ {rule.significance:g}. PBO: the share of the CSCV block combinations in "
        "which the stage-1 variant that was best in-sample ranks at or below the median "
        "out-of-sample (high: the selection overfits)."
    )


def group_summary(gid: str, group: dict[str, Any]) -> str:
    """One line of a group's key figures (plain text)."""
    metrics = group.get("metrics", {})
    walk = group.get("walk_forward", {})
    variant = Variant.from_dict(group["variant"]).variant_id if group.get("variant") else MISSING
    return (
        f"{gid} ({group.get('family', MISSING)}, {variant}): Sharpe "
        f"{fmt_ratio(metrics.get('sharpe'))}, total return {fmt_pct(metrics.get('total_return'))}, "
        f"max drawdown {fmt_pct(metrics.get('max_drawdown'))}, "
        f"{fmt_count(metrics.get('n_trades'))} trades in {walk.get('windows', 0)} windows "
        f"({walk.get('refits', 0)} refits); deflated Sharpe p {fmt_deflated(group)}, "
        f"PBO {fmt_pbo(group)}, {fmt_gate(group)}"
    )


def markdown_lines(config: EnvironmentConfig, groups: dict[str, dict[str, Any]]) -> list[str]:
    order = sharpe_order(groups)
    rows = [
        "| " + " | ".join(md_cell(text) for text, _ in table_values(g, groups[g])) + " |"
        for g in order
    ]
    here = RunLayout("")  # paths relative to the report, which lies at the run folder's top
    details = [
        f"- {md_cell(group_summary(gid, groups[gid]))}; "
        f"[bars]({quote(here.backtest_bars(gid))}), [trades]({quote(here.backtest_trades(gid))})"
        for gid in order
    ]
    return [
        f"## {TITLE}",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
        *rows,
        "",
        note_line(config),
        "",
        "### Per group (equity curves and per-window figures: report.html)",
        "",
        *details,
        "",
    ]


def _sort_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    x = number(value)
    return "" if x is None else repr(x).replace("inf", "Infinity")


def table_html(groups: dict[str, dict[str, Any]]) -> str:
    """The run-level table, sortable by a click on a header (see `SORT_SCRIPT`)."""
    head = "".join(f"<th>{html.escape(title)}</th>" for title in HEADERS)
    body = []
    for gid in sharpe_order(groups):
        cells = "".join(
            f'<td data-value="{html.escape(_sort_value(value))}">{html.escape(text)}</td>'
            for text, value in table_values(gid, groups[gid])
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


#: Click a header: sort the rows by that column (numbers by value), again to reverse;
#: empty cells (no value) stay last.
SORT_SCRIPT = """<script>
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.style.cursor = "pointer";
    th.addEventListener("click", function () {
      var body = table.tBodies[0], up = th.dataset.dir !== "asc";
      th.dataset.dir = up ? "asc" : "desc";
      var rows = Array.from(body.rows), key = function (r) { return r.cells[col].dataset.value; };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        if (x === "" || y === "") return (x === "") - (y === "");
        var d = isNaN(nx) || isNaN(ny) ? x.localeCompare(y, undefined, {numeric: true}) : nx - ny;
        return up ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
</script>"""


WINDOW_COLUMNS = (
    ("window", "index", fmt_count),
    ("test start (UTC)", "test_start", fmt_time),
    ("test end", "test_end", fmt_time),
    ("status", "status", str),
    ("fit rows", "n_fit", fmt_count),
    ("bars", "bars", fmt_count),
    ("trades", "n_trades", fmt_count),
    ("total return", "total_return", fmt_pct),
    ("Sharpe", "sharpe", fmt_ratio),
    ("max drawdown", "max_drawdown", fmt_pct),
    ("hit rate", "hit_rate", fmt_pct),
    ("exposure", "exposure", fmt_pct),
    ("reason", "reason", str),
)


def window_rows(group: dict[str, Any]) -> list[list[str]]:
    """Per walk-forward window: its record (dates, fit) joined with its metrics, formatted."""
    records = {r.get("index"): r for r in group.get("walk_forward", {}).get("records", [])}
    rows = []
    for window in group.get("windows", []):
        merged = {**records.get(window.get("index"), {}), **window}
        rows.append(
            [
                MISSING if merged.get(k) in (None, "") else fmt(merged[k])
                for _, k, fmt in WINDOW_COLUMNS
            ]
        )
    return rows


def group_html(layout: RunLayout, gid: str, group: dict[str, Any]) -> str:
    """A group's `<details>`: equity and drawdown charts and its per-window table."""
    records = group.get("walk_forward", {}).get("records", [])
    uri = layout.backtest_bars(gid)
    if io.exists(uri):
        bars = io.read_parquet(uri, columns=["timestamp", "equity", "drawdown"])
        stamps = bars["timestamp"].cast(pl.Datetime("us")).to_numpy()
        charts = series_svg(
            stamps, bars["equity"].to_numpy(), records, title="Equity (start 1.0)",
            kind="equity", label=lambda v: f"{v:.3f}", reference=1.0,
        ) + series_svg(
            stamps, -bars["drawdown"].to_numpy(), records, title="Drawdown",
            kind="drawdown", label=fmt_pct, reference=0.0,
        )  # fmt: skip
    else:
        charts = "<p>No equity bars were written for this group.</p>"
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _, _ in WINDOW_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in window_rows(group)
    )
    return (
        f'<details class="backtest"><summary>{html.escape(group_summary(gid, group))}</summary>'
        f"<div>{charts}</div><table><tr>{head}</tr>{body}</table></details>"
    )


def html_fragment(
    config: EnvironmentConfig, layout: RunLayout, groups: dict[str, dict[str, Any]]
) -> str:
    details = "".join(group_html(layout, gid, groups[gid]) for gid in sharpe_order(groups))
    return (
        f"<h2>{html.escape(TITLE)}</h2>{table_html(groups)}"
        f"<p>{html.escape(note_line(config))}</p>"
        "<h3>Per group (click to open; shaded bands: the walk-forward windows' test ranges)"
        f"</h3>{details}{SORT_SCRIPT}"
    )


def backtest_section(config: EnvironmentConfig, layout: RunLayout) -> BacktestSection:
    """The report's backtest part: empty without `backtest/results.json`, one headline line
    when the backtest was disabled."""
    results = load_backtest(layout)
    if results is None:
        return BacktestSection()
    if not results.get("enabled", False):
        return BacktestSection(headline=["Backtest: disabled (backtest.enabled is false)"])
    groups: dict[str, dict[str, Any]] = results.get("groups", {})
    if not groups:
        return BacktestSection(headline=[headline_line(config, groups)])
    return BacktestSection(
        headline=[headline_line(config, groups)],
        markdown=markdown_lines(config, groups),
        html=html_fragment(config, layout, groups),
        tables=section_tables(groups),
    )


def section_tables(groups: dict[str, dict[str, Any]]) -> list[Table]:
    """The run-level table and every group's window table, as cells."""
    run = Table(
        HEADERS,
        [[text for text, _ in table_values(gid, groups[gid])] for gid in sharpe_order(groups)],
        legend(HEADERS),
    )
    titles = [title for title, _, _ in WINDOW_COLUMNS]
    windows = [Table(titles, window_rows(groups[gid]), legend(titles)) for gid in groups]
    return [run, *windows]

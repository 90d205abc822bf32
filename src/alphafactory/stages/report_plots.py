"""Figures of the run report, as small hand-written SVG (the runtime image has no plotting
library): test AP per group, precision-recall curves, confusion matrices, gain feature
importance and the stage-1 variants. Each figure is written as a file under `figures/` of the
run folder; report.md links the file, report.html embeds it (so the page stands alone, as in
the KFP UI) inside a link to the same file."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from alphafactory import io
from alphafactory.layout import RunLayout
from alphafactory.stages.report_parts import MISSING, natural_key
from alphafactory.targets.swing import CLASS_NAMES

#: The run folder's sub-folder that holds the report's own figures.
FIGURES = "figures"
CLASS_COLOURS = dict(zip(CLASS_NAMES, ("#8a8a8a", "#2f6fb0", "#d0702c"), strict=True))
PALETTE = ("#2f6fb0", "#d0702c", "#3a8a4a", "#9a4ab0", "#b03a3a", "#5a5a5a")
#: Gain bars are blue; the tuning studies' hyperparameter importance bars are green.
GAIN_COLOUR = "#2f6fb0"


@dataclass(frozen=True)
class Figure:
    """An SVG image, the path of its file under the run folder, its alt text and caption."""

    path: tuple[str, ...]
    svg: str
    alt: str
    caption: str = ""

    @property
    def href(self) -> str:
        """The file's link relative to the report, which lies at the run folder's top."""
        return quote("/".join(self.path))

    def html(self) -> str:
        data = base64.b64encode(self.svg.encode()).decode()
        caption = f"<figcaption>{escape(self.caption)}</figcaption>" if self.caption else ""
        return (
            f'<figure><a href="{self.href}"><img src="data:image/svg+xml;base64,{data}" '
            f'alt="{escape(self.alt)}"></a>{caption}</figure>'
        )

    def markdown(self) -> str:
        return f"![{self.alt}]({self.href})"


def figure(parts: Sequence[str], svg: str, alt: str, caption: str = "") -> Figure:
    """A report figure whose file lies at `figures/<parts>`."""
    return Figure((FIGURES, *parts), svg, alt, caption)


def write_figures(layout: RunLayout, figures: Sequence[Figure]) -> None:
    for item in figures:
        io.write_text(layout.path(*item.path), item.svg)


def svg(width: float, height: float, title: str, body: Sequence[str]) -> str:
    """An SVG document on a white ground with its title at the top left."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="10">'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<text x="6" y="14" font-size="12">{escape(title)}</text>{"".join(body)}</svg>'
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def ap_chart_svg(rows: Sequence[dict[str, Any]]) -> str:
    """Test AP (bar), the no-skill baseline (red tick) and the 95% interval of the excess
    over the baseline drawn from the baseline (whisker), one line per group."""
    bar, gap, label_width, width, top = 14, 4, 150, 360, 24
    body = []
    for index, row in enumerate(rows):
        y = top + index * (bar + gap)
        ap, base = _number(row["test_ap"]) or 0.0, _number(row["baseline_ap"]) or 0.0
        low, high = _number(row.get("ci_low")), _number(row.get("ci_high"))
        colour = "#3a8a4a" if row["skill"] == "yes" else "#a0a0a0"
        body += [
            f'<text x="6" y="{y + bar - 3}">{escape(row["group"])}</text>',
            f'<rect x="{label_width}" y="{y}" width="{ap * width:.1f}" height="{bar}" '
            f'fill="{colour}"/>',
            f'<line x1="{label_width + base * width:.1f}" x2="{label_width + base * width:.1f}" '
            f'y1="{y - 1}" y2="{y + bar + 1}" stroke="#c03030" stroke-width="2"/>',
        ]
        if low is not None and high is not None:
            x0, x1 = (label_width + min(max(base + v, 0.0), 1.0) * width for v in (low, high))
            body.append(
                f'<line class="ci" x1="{x0:.1f}" x2="{x1:.1f}" y1="{y + bar / 2}" '
                f'y2="{y + bar / 2}" stroke="black" stroke-width="1.2"/>'
            )
        text = MISSING if row["test_ap"] is None else f"{row['test_ap']:.4f}"
        body.append(
            f'<text x="{label_width + width + 6}" y="{y + bar - 3}">{text} '
            f"(skill: {escape(row['skill'] or MISSING)})</text>"
        )
    height = top + len(rows) * (bar + gap) + 6
    title = "Test AP (bar), no-skill baseline (red), 95% interval of the excess (whisker)"
    return svg(label_width + width + 110, height, title, body)


PLOT = (44, 28, 200, 190)  # left, top, width, height of the unit square of PR curves


def _xy(x: float, y: float) -> tuple[float, float]:
    left, top, width, height = PLOT
    return left + x * width, top + (1.0 - y) * height


def pr_svg(curves: dict[str, Any], shares: dict[str, float], title: str) -> str:
    """Per-class precision against recall, each with its class share (the precision of a
    no-skill score) as a dashed line of the same colour."""
    left, top, width, height = PLOT
    body = [
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#444"/>',
        f'<text x="{left + width / 2}" y="{top + height + 24}" text-anchor="middle">recall</text>',
        f'<text x="12" y="{top + height / 2}" transform="rotate(-90 12 {top + height / 2})" '
        'text-anchor="middle">precision</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        x, y = _xy(tick, tick)
        body += [
            f'<text x="{x:.1f}" y="{top + height + 12}" text-anchor="middle">{tick:g}</text>',
            f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{tick:g}</text>',
        ]
    for row, name in enumerate(CLASS_NAMES):
        colour, share = CLASS_COLOURS[name], shares.get(name)
        curve = curves.get(name)
        if curve:
            points = " ".join(
                "{:.1f},{:.1f}".format(*_xy(r, p))
                for r, p in zip(curve["recall"], curve["precision"], strict=True)
            )
            body.append(
                f'<polyline class="pr" fill="none" stroke="{colour}" stroke-width="1.5" '
                f'points="{points}"/>'
            )
        if share is not None:
            y = _xy(0.0, share)[1]
            body.append(
                f'<line x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{colour}" stroke-dasharray="4,3"/>'
            )
        label = name if share is None else f"{name} (share {share:.2f})"
        y = top + 10 + row * 16
        body += [
            f'<rect x="{left + width + 10}" y="{y - 8}" width="10" height="10" fill="{colour}"/>',
            f'<text x="{left + width + 24}" y="{y}">{escape(label)}</text>',
        ]
    return svg(left + width + 150, top + height + 34, title, body)


def confusion_svg(matrix: Sequence[Sequence[int]], title: str) -> str:
    """Counts per true class (rows) and arg-max prediction (columns); shade and percentage:
    the share of the row."""
    cell, left, top = 62, 92, 48
    body = [f'<text x="{left + 1.5 * cell}" y="{top - 22}" text-anchor="middle">predicted</text>']
    for j, name in enumerate(CLASS_NAMES):
        body.append(
            f'<text x="{left + (j + 0.5) * cell}" y="{top - 6}" text-anchor="middle">'
            f"{escape(name)}</text>"
        )
    for i, row in enumerate(matrix):
        total = sum(row)
        y = top + i * cell
        body.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 3}" text-anchor="end">true '
            f"{escape(CLASS_NAMES[i])}</text>"
        )
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            x = left + j * cell
            ink = "white" if share > 0.55 else "black"
            body += [
                f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="#2f6fb0" fill-opacity="{0.05 + 0.9 * share:.3f}" stroke="#fff"/>',
                f'<text x="{x + cell / 2}" y="{y + cell / 2 - 2}" text-anchor="middle" '
                f'font-size="12" fill="{ink}">{count}</text>',
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 12}" text-anchor="middle" '
                f'fill="{ink}">{share:.0%}</text>',
            ]
        body.append(f'<text x="{left + 3 * cell + 6}" y="{y + cell / 2 + 3}">n={total}</text>')
    return svg(left + 3 * cell + 60, top + 3 * cell + 10, title, body)


def importance_svg(rows: Sequence[dict[str, Any]], title: str) -> str:
    """Horizontal bars of each feature's total gain, largest first."""
    bar, gap, left, width, top = 12, 3, 250, 300, 26
    largest = max((float(r["gain"]) for r in rows), default=0.0) or 1.0
    body = []
    for index, row in enumerate(rows):
        y = top + index * (bar + gap)
        name, gain = str(row["feature"]), float(row["gain"])
        shown = name if len(name) <= 42 else name[:41] + "…"
        length = gain / largest * width
        body += [
            f'<text x="{left - 6}" y="{y + bar - 2}" text-anchor="end">{escape(shown)}'
            f"<title>{escape(name)}</title></text>",
            f'<rect class="gain" x="{left}" y="{y}" width="{length:.1f}" height="{bar}" '
            f'fill="{GAIN_COLOUR}"/>',
            f'<text x="{left + length + 4:.1f}" y="{y + bar - 2}">{gain:.4g}</text>',
        ]
    return svg(left + width + 70, top + len(rows) * (bar + gap) + 6, title, body)


def stage1_svg(variants: Sequence[dict[str, Any]], winners: dict[str, dict[str, Any]]) -> str:
    """Stage 1's search: the selection AP of every variant fitted (a dot, coloured by family)
    per group; the winner is ringed."""
    fitted = [
        r for r in variants
        if r.get("status") == "ok" and _number(r.get("average_precision")) is not None
    ]  # fmt: skip
    groups = sorted({str(r["group_id"]) for r in variants}, key=natural_key)
    families = sorted({str(r.get("family", "lightgbm")) for r in fitted})
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(families)}
    scores = [float(r["average_precision"]) for r in fitted]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    low, high = (low - 0.01, high + 0.01) if high - low < 0.02 else (low, high)
    row, left, width, top = 14, 150, 360, 48

    def x(score: float) -> float:
        return left + (score - low) / (high - low) * width

    body = [
        f'<text x="{left}" y="{top - 4}">{low:.3f}</text>',
        f'<text x="{left + width}" y="{top - 4}" text-anchor="end">{high:.3f}</text>',
    ]
    body += [
        f'<circle cx="{10 + 90 * i}" cy="26" r="4" fill="{colours[name]}"/>'
        f'<text x="{18 + 90 * i}" y="29">{escape(name)}</text>'
        for i, name in enumerate(families)
    ]
    for index, gid in enumerate(groups):
        y = top + index * row + row / 2
        body.append(f'<text x="6" y="{y + 3}">{escape(gid)}</text>')
        body.append(f'<line x1="{left}" x2="{left + width}" y1="{y}" y2="{y}" stroke="#e4e4e4"/>')
        for r in (r for r in fitted if r["group_id"] == gid):
            body.append(
                f'<circle class="variant" cx="{x(float(r["average_precision"])):.1f}" '
                f'cy="{y}" r="3" fill="{colours[str(r.get("family", "lightgbm"))]}" '
                'fill-opacity="0.7"/>'
            )
        won = _number(winners.get(gid, {}).get("average_precision"))
        if won is not None:
            body.append(
                f'<circle class="winner" cx="{x(won):.1f}" cy="{y}" r="5.5" fill="none" '
                'stroke="black"/>'
            )
    title = "Stage 1: selection AP of each variant fitted (ring: the group's winner)"
    return svg(left + width + 30, top + len(groups) * row + 8, title, body)

"""Pieces the run report's sections share: natural ordering of group ids, time labels, and
small hand-written SVG line charts with the walk-forward windows shaded."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from alphafactory.data.splits import parse_time

MISSING = "—"
#: Most points one chart's polyline draws: longer series keep each bucket's low and high.
MAX_POINTS = 400
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 170, 58, 12, 22, 20

Formatter = Callable[[Any], str]


def natural_key(text: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key that orders embedded numbers by value (`BTC_w2_high` before `BTC_w10_high`);
    texts that differ only in leading zeros (`w02`, `w2`) fall back to plain text order."""
    parts = re.split(r"(\d+)", text)  # text, number, text, ...: a number always at odd places
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), text


def md_cell(text: str) -> str:
    """A Markdown table cell: HTML-escaped (renderers show it as written), pipes escaped."""
    return html.escape(text, quote=False).replace("|", "\\|")


def fmt_time(value: Any) -> str:
    """An ISO timestamp to the minute, as `2019-05-06 00:00` (UTC)."""
    return str(value)[:16].replace("T", " ")


def chart_indices(values: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of the points a chart draws: all of them up to `limit`, else `limit` (even):
    per bucket of consecutive points its lowest and highest one (first and last when flat)."""
    n = len(values)
    if n <= limit:
        return np.arange(n)
    picked: list[int] = []
    for bucket in np.array_split(np.arange(n), limit // 2):
        low, high = int(np.argmin(values[bucket])), int(np.argmax(values[bucket]))
        pair = (low, high) if low != high else (0, len(bucket) - 1)
        picked.extend(bucket[sorted(pair)])
    return np.asarray(picked)


def _micros(stamps: Any) -> np.ndarray:
    return np.asarray(stamps).astype("datetime64[us]").astype(np.int64)


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    return start + (value - low) / ((high - low) or 1.0) * (end - start)


def window_bands(records: list[dict[str, Any]], span: tuple[int, int], height: float) -> list[str]:
    """One shaded band per walk-forward window over its test range (clipped to the chart)."""
    bands = []
    for position, record in enumerate(records):
        low, high = (
            float(np.clip(_micros(parse_time(record[k])), *span))
            for k in ("test_start", "test_end")
        )
        x0, x1 = (_scale(t, span[0], span[1], LEFT, WIDTH - RIGHT) for t in (low, high))
        tip = (
            f"window {record.get('index', position)}: {fmt_time(record['test_start'])} to "
            f"{fmt_time(record['test_end'])} UTC ({record.get('status', MISSING)})"
        )
        bands.append(
            f'<rect class="window" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 0.0):.1f}" '
            f'height="{height:.1f}" fill="{("#e8eef8", "#f4f4f4")[position % 2]}" '
            f'stroke="#b8c4d8" stroke-width="0.5"><title>{html.escape(tip)}</title></rect>'
        )
    return bands


def series_svg(
    stamps: np.ndarray,
    values: np.ndarray,
    records: list[dict[str, Any]],
    *,
    title: str,
    kind: str,
    label: Formatter,
    reference: float | None = None,
) -> str:
    """A line chart of `values` over time with the windows' test ranges shaded."""
    keep = np.isfinite(values)
    times, ys = _micros(stamps)[keep], values[keep]
    if len(ys) < 2:
        return f"<p>{html.escape(title)}: fewer than two bars to draw.</p>"
    span = (int(times[0]), int(times[-1]))
    marks = [float(ys.min()), float(ys.max()), *([] if reference is None else [reference])]
    low, high = min(marks) + 0.0, max(marks) + 0.0  # + 0.0: no "-0.0" label
    bottom = HEIGHT - BOTTOM

    def xy(t: float, y: float) -> str:
        x = _scale(t, span[0], span[1], LEFT, WIDTH - RIGHT)
        return f"{x:.1f},{_scale(y, low, high, bottom, TOP):.1f}"

    chosen = chart_indices(ys)
    points = " ".join(xy(float(times[i]), float(ys[i])) for i in chosen)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="10" class="{kind}">',
        f'<text x="{LEFT}" y="14" font-size="12">{html.escape(title)}</text>',
        *window_bands(records, span, bottom - TOP),
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{html.escape(label(high))}</text>',
        f'<text x="{LEFT - 4}" y="{bottom}" text-anchor="end">{html.escape(label(low))}</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 6}">{html.escape(str(stamps[0])[:10])}</text>',
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{html.escape(str(stamps[-1])[:10])}</text>",
    ]
    if reference is not None:
        y = _scale(reference, low, high, bottom, TOP)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#888" stroke-dasharray="3,3"/>'
        )
    colour = "#2f6fb0" if kind == "equity" else "#c03030"
    parts += [
        f'<polyline class="{kind}" fill="none" stroke="{colour}" stroke-width="1.2" '
        f'points="{points}"/>',
        "</svg>",
    ]
    return "".join(parts)

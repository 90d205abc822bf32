"""The run report: an HTML page (for people and the KFP UI) and a Markdown twin."""

from __future__ import annotations

import html
from typing import Any

from alphafactory import io
from alphafactory.config.models import EnvironmentConfig
from alphafactory.stages.common import Plan, RunLayout


def winner_rows(
    layout: RunLayout,
    plan: Plan,
    models: dict[str, dict[str, Any]],
    published: dict[str, dict[str, Any]] | None = None,
) -> list[dict]:
    """One row per group: winning variant, stage-1 AP, production AP, sizes, registry entry."""
    stage1 = io.read_json(layout.tune_winners(1))["winners"]
    stage4_uri = layout.tune_winners(4)
    stage4 = io.read_json(stage4_uri)["units"] if io.exists(stage4_uri) else {}
    registered = published or {}
    rows = []
    for gid in plan.groups:
        first = stage1.get(gid, {})
        fitted = models.get(gid, {})
        rows.append(
            {
                "group": gid,
                "variant": first.get("variant_id", "—"),
                "stage1_ap": first.get("average_precision"),
                "stage4_ap": _finite(stage4.get(gid, {}).get("best_value")),
                "production_ap": fitted.get("average_precision"),
                "best_iteration": fitted.get("best_iteration"),
                "n_train": fitted.get("n_train"),
                "n_valid": fitted.get("n_valid"),
                "version": registered.get(gid, {}).get("semver"),
                "grade": registered.get(gid, {}).get("grade"),
            }
        )
    return rows


COLUMNS = (
    ("group", "group"),
    ("winning variant", "variant"),
    ("stage-1 AP", "stage1_ap"),
    ("stage-4 AP", "stage4_ap"),
    ("production AP", "production_ap"),
    ("best iter", "best_iteration"),
    ("train rows", "n_train"),
    ("valid rows", "n_valid"),
    ("version", "version"),
    ("grade", "grade"),
)


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None


def budget_lines(layout: RunLayout) -> list[str]:
    """Planned vs used compute per tune stage, from the budget ledger."""
    uri = layout.tune_winners(4)
    if not io.exists(uri):
        return []
    rows = io.read_json(uri).get("budget", [])
    return [
        f"stage {r['stage']}: planned {r['planned']:.0f}, carried {r['carried']:+.0f}, "
        f"allowed {r['allowance']:.0f}, used {r['used']:.0f} {r.get('unit', 'core-seconds')}"
        for r in rows
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def ap_chart_svg(rows: list[dict]) -> str:
    """A horizontal bar chart of production AP per group, as inline SVG."""
    bar, gap, label_width, width = 14, 4, 150, 360
    height = len(rows) * (bar + gap) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + width + 60}" '
        f'height="{height}" font-family="sans-serif" font-size="11">'
    ]
    for index, row in enumerate(rows):
        y = index * (bar + gap) + 10
        ap = row["production_ap"] or 0.0
        parts.append(f'<text x="0" y="{y + bar - 3}">{html.escape(row["group"])}</text>')
        parts.append(
            f'<rect x="{label_width}" y="{y}" width="{ap * width:.1f}" height="{bar}" '
            'fill="#4878a8"/>'
        )
        parts.append(
            f'<text x="{label_width + ap * width + 4:.1f}" y="{y + bar - 3}">'
            f"{_fmt(row['production_ap'])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _study_charts(layout: RunLayout) -> str:
    """Optimisation history and parameter importance of the stage-2 studies, inline."""
    parts = []
    for unit_dir in io.list_files(layout.path("tune", "stage2", "reports")):
        unit = unit_dir.rstrip("/").rsplit("/", 1)[-1]
        charts = [io.join(unit_dir, name) for name in ("history.svg", "importance.svg")]
        svgs = "".join(io.read_text(c) for c in charts if io.exists(c))
        parts.append(f"<h3>stage 2, window {html.escape(unit)}</h3>{svgs}")
    return "<h2>Stage-2 studies</h2>" + "".join(parts) if parts else ""


def summary_lines(config: EnvironmentConfig, layout: RunLayout, plan: Plan) -> list[str]:
    prepare = io.read_json(layout.path("prepare", "report.json"))
    selected = io.read_json(layout.selected_features)
    return [
        f"Environment: {config.name}; data: {config.data.uri or 'synthetic'} "
        f"({', '.join(plan.symbols)}, {plan.n_rows} rows, data hash {plan.data_hash[:12]})",
        f"Variants: {plan.n_variants} in {len(plan.groups)} groups, {len(plan.shards)} shards",
        f"Features: {prepare['kept']} kept after hygiene "
        f"(dropped: {', '.join(f'{k} {v}' for k, v in prepare['counts'].items())}); "
        f"{len(selected)} selected by screening",
        f"Validation period starts {plan.cutoff}",
    ]


def write_report(
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    models: dict[str, dict[str, Any]],
    published: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Write `report.html` and `report.md` at the run folder's top."""
    rows = winner_rows(layout, plan, models, published)
    lines = summary_lines(config, layout, plan)
    headers = [title for title, _ in COLUMNS]
    keys = [key for _, key in COLUMNS]
    budget = budget_lines(layout)
    markdown = [
        "# alphafactory run report",
        "",
        *[f"- {line}" for line in lines],
        "",
        f"## Group winners ({sum(r['production_ap'] is not None for r in rows)} models)",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    markdown += ["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in rows]
    markdown += [
        "",
        "## Tuning budget",
        "",
        *[f"- {line}" for line in budget],
        "",
        "Study reports (history and parameter importance): `tune/stage*/reports/`.",
    ]
    io.write_text(layout.path("report.md"), "\n".join(markdown) + "\n")
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[k]))}</td>" for k in keys) + "</tr>"
        for r in rows
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>alphafactory run</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,td:nth-child(2)
{{text-align:left}}</style></head><body><h1>alphafactory run report</h1>
<ul>{"".join(f"<li>{html.escape(line)}</li>" for line in lines)}</ul>
<h2>Group winners</h2><table><tr>{"".join(f"<th>{h}</th>" for h in headers)}</tr>{table}</table>
<p>Stage-1 and stage-4 AP are measured on the same validation period; stage 4 chose its
parameters on it, so its figure is optimistic (bench/ measures on a held-out period).</p>
<h2>Tuning budget</h2><ul>{"".join(f"<li>{html.escape(line)}</li>" for line in budget)}</ul>
{_study_charts(layout)}
<h2>Production average precision per group</h2>{ap_chart_svg(rows)}</body></html>"""
    io.write_text(layout.path("report.html"), page)

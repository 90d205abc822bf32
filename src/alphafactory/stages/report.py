"""The run report: an HTML page (for people and the KFP UI) and a Markdown twin.

It leads with the untouched test period: per group the test AP against the no-skill
baseline, the corrected p-value and whether the model has skill. Selection-period figures
(stage 1 and the production fit's early-stopping period) chose the model, so they are
labelled optimistic.
"""

from __future__ import annotations

import html
from typing import Any

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import Plan, RunLayout
from alphafactory.stages.adoption import adoption_of
from alphafactory.stages.report_backtest import backtest_section
from alphafactory.stages.report_parts import MISSING, natural_key


def winner_rows(
    layout: RunLayout,
    plan: Plan,
    models: dict[str, dict[str, Any]],
    published: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per group: winning variant, parameters used, selection and test scores."""
    stage1 = io.read_json(layout.tune_winners(1))["winners"]
    truth = planted_groups(layout)
    registered = published or {}
    rows = []
    for gid in sorted(plan.groups, key=natural_key):
        fitted = models.get(gid, {})
        entry = registered.get(gid, {})
        skill = entry.get("skill") or fitted.get("test") or {}
        verdict = adoption_of(layout, gid)
        rows.append(
            {
                "group": gid,
                "planted": None if truth is None else ("planted" if truth.get(gid) else "noise"),
                "variant": stage1.get(gid, {}).get("variant_id"),
                "family": stage1.get(gid, {}).get("family", "lightgbm"),
                "params": "tuned" if verdict.get("adopted") else "default",
                "params_reason": verdict.get("reason", "stages 2-4 did not run"),
                "selection_ap": _finite(fitted.get("average_precision")),
                "test_ap": _finite(skill.get("test_ap")),
                "baseline_ap": _finite(skill.get("baseline_ap")),
                "p_adjusted": _finite(skill.get("p_adjusted")),
                "skill": None if not skill else ("yes" if skill.get("skill") else "no"),
                "n_test": skill.get("n_events"),
                "best_iteration": fitted.get("best_iteration"),
                "version": entry.get("semver"),
                "grade": entry.get("grade"),
                "champion": None if not entry else ("yes" if entry.get("champion") else "no"),
            }
        )
    return rows


def family_rows(layout: RunLayout, plan: Plan) -> tuple[list[str], list[list[str]]]:
    """Families that fitted in stage 1 and, per group, each family's best selection AP (over
    the variants it fitted; `*` marks the group's winner, `failed` a family that never fit)."""
    table = io.read_json(layout.path("tune", "stage1", "variants.json"))
    winners = io.read_json(layout.tune_winners(1))["winners"]
    names = sorted({str(r.get("family", "lightgbm")) for r in table if "family" in r})
    best: dict[tuple[str, str], float] = {}
    tried: set[tuple[str, str]] = set()
    for row in table:
        key = (row["group_id"], str(row.get("family", "lightgbm")))
        tried.add(key)
        score = row.get("average_precision")
        if row["status"] == "ok" and isinstance(score, float) and score == score:
            best[key] = max(score, best.get(key, -1.0))
    rows = []
    for gid in sorted(plan.groups, key=natural_key):
        won = winners.get(gid, {}).get("family")
        cells = []
        for name in names:
            if (gid, name) in best:
                cells.append(f"{best[(gid, name)]:.4f}{' *' if name == won else ''}")
            else:
                cells.append("failed" if (gid, name) in tried else "—")
        rows.append([gid, *cells])
    return names, rows


def planted_groups(layout: RunLayout) -> dict[str, bool] | None:
    """Group id -> planted, from the synthetic generator's ground truth (None: real data)."""
    if not io.exists(layout.ground_truth):
        return None
    groups = io.read_json(layout.ground_truth)["groups"]
    return {gid: kind == "planted" for gid, kind in groups.items()}


COLUMNS = (
    ("group", "group"),
    ("ground truth", "planted"),
    ("winning variant", "variant"),
    ("family", "family"),
    ("params", "params"),
    ("test AP", "test_ap"),
    ("baseline AP", "baseline_ap"),
    ("p (corrected)", "p_adjusted"),
    ("skill", "skill"),
    ("test events", "n_test"),
    ("selection AP (optimistic)", "selection_ap"),
    ("best iter", "best_iteration"),
    ("version", "version"),
    ("grade", "grade"),
    ("champion", "champion"),
)


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None


def _fmt(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def skill_lines(config: EnvironmentConfig, rows: list[dict[str, Any]]) -> list[str]:
    """The headline: how many models have skill on the test period, against the ground truth."""
    judged = [r for r in rows if r["skill"] is not None]
    skilled = [r for r in judged if r["skill"] == "yes"]
    correction = {"holm": "Holm", "bh": "Benjamini-Hochberg"}[config.skill.correction]
    lines = [
        f"Skill on the untouched test period: {len(skilled)} of {len(judged)} models beat the "
        f"no-skill baseline (alpha {config.skill.alpha}, {correction}-corrected over "
        f"{len(judged)} groups; block permutation test of test AP)",
    ]
    planted = [r for r in judged if r["planted"] == "planted"]
    noise = [r for r in judged if r["planted"] == "noise"]
    if planted or noise:
        found = sum(r["skill"] == "yes" for r in planted)
        false = sum(r["skill"] == "yes" for r in noise)
        lines.append(
            f"Ground truth (planted signal): {found} of {len(planted)} planted groups have "
            f"skill; {false} of {len(noise)} groups without a planted signal do"
        )
    kept = sum(r["params"] == "default" for r in rows)
    lines.append(
        f"Parameters: {len(rows) - kept} groups use tuned parameters, {kept} keep the stage-1 "
        "defaults (tuned parameters must beat them on the selection period, which no search saw)"
    )
    return lines


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


def summary_lines(config: EnvironmentConfig, layout: RunLayout, plan: Plan) -> list[str]:
    prepare = io.read_json(layout.path("prepare", "report.json"))
    selected = io.read_json(layout.selected_features)
    periods = plan.periods.to_dict()
    return [
        f"Environment: {config.name}; data: {config.data.uri or 'synthetic'} "
        f"({', '.join(plan.symbols)}, {plan.n_rows} rows, data hash {plan.data_hash[:12]})",
        f"Variants: {plan.n_variants} in {len(plan.groups)} groups, {len(plan.shards)} shards",
        f"Features: {prepare['kept']} kept after hygiene "
        f"(dropped: {', '.join(f'{k} {v}' for k, v in prepare['counts'].items())}); "
        f"{len(selected)} selected by screening",
        f"Periods: train until {periods['selection_start']}, selection until "
        f"{periods['test_start']}, then test (touched once, by the final scores); rows are "
        "purged by their label's end",
    ]


def ap_chart_svg(rows: list[dict[str, Any]]) -> str:
    """Test AP (bar) against the no-skill baseline (tick) per group, as inline SVG."""
    bar, gap, label_width, width = 14, 4, 150, 360
    height = len(rows) * (bar + gap) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + width + 90}" '
        f'height="{height}" font-family="sans-serif" font-size="11">'
    ]
    for index, row in enumerate(rows):
        y = index * (bar + gap) + 10
        ap, base = row["test_ap"] or 0.0, row["baseline_ap"] or 0.0
        colour = "#3a8a4a" if row["skill"] == "yes" else "#a0a0a0"
        parts += [
            f'<text x="0" y="{y + bar - 3}">{html.escape(row["group"])}</text>',
            f'<rect x="{label_width}" y="{y}" width="{ap * width:.1f}" height="{bar}" '
            f'fill="{colour}"/>',
            f'<line x1="{label_width + base * width:.1f}" x2="{label_width + base * width:.1f}" '
            f'y1="{y - 1}" y2="{y + bar + 1}" stroke="#c03030" stroke-width="2"/>',
            f'<text x="{label_width + ap * width + 4:.1f}" y="{y + bar - 3}">'
            f"{_fmt(row['test_ap'])} (skill: {row['skill'] or MISSING})</text>",
        ]
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


NOTES = (
    "Test AP, baseline and p-value come from the last part of the timeline, which no choice "
    "saw: not hygiene, screening, winners, tuning or early stopping. The baseline predicts the "
    "training class frequencies. A model without skill is graded F and never made champion.",
    "The baseline's macro AP is 1/3 whenever all three classes occur: a constant score's AP "
    "for a class is that class's share.",
    "Selection AP is measured on the period that chose the variant, the parameters and the "
    "number of boosting rounds: it is optimistic.",
    f"{MISSING}: not available (no model for the group, or stages 2-4 did not run).",
)


def write_report(
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    models: dict[str, dict[str, Any]],
    published: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Write `report.html` and `report.md` at the run folder's top."""
    rows = winner_rows(layout, plan, models, published)
    backtest = backtest_section(config, layout)
    headline = skill_lines(config, rows) + backtest.headline
    lines = summary_lines(config, layout, plan)
    headers = [title for title, _ in COLUMNS]
    keys = [key for _, key in COLUMNS]
    budget = budget_lines(layout)
    defaults = [f"{r['group']}: {r['params_reason']}" for r in rows if r["params"] == "default"]
    families, family_table = family_rows(layout, plan)
    family_md = [
        "## Families per group (selection-period AP of stage 1; * = winner)",
        "",
        "| group | " + " | ".join(families) + " |",
        "|" + "---|" * (len(families) + 1),
        *["| " + " | ".join(cells) + " |" for cells in family_table],
        "",
    ] if len(families) > 1 else []  # fmt: skip
    markdown = [
        "# alphafactory run report",
        "",
        *[f"**{line}**  " for line in headline],
        "",
        *[f"- {line}" for line in lines],
        "",
        f"## Test-period results ({sum(r['test_ap'] is not None for r in rows)} models)",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in rows],
        "",
        *[f"- {note}" for note in NOTES],
        "",
        *backtest.markdown,
        *family_md,
        "## Groups that kept the stage-1 defaults",
        "",
        *[f"- {line}" for line in defaults],
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

    def items(values: list[str]) -> str:
        return "".join(f"<li>{html.escape(v)}</li>" for v in values)

    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>alphafactory run</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,td:nth-child(2)
,td:nth-child(3){{text-align:left}}.headline{{font-size:1.1em;font-weight:bold}}</style>
</head><body><h1>alphafactory run report</h1>
<ul class="headline">{items(headline)}</ul><ul>{items(lines)}</ul>
<h2>Test-period results</h2><table><tr>{"".join(f"<th>{h}</th>" for h in headers)}</tr>
{table}</table><ul>{items(list(NOTES))}</ul>
<h2>Test AP against the no-skill baseline (red tick)</h2>{ap_chart_svg(rows)}
{backtest.html}
{_family_html(families, family_table)}
<h2>Groups that kept the stage-1 defaults</h2><ul>{items(defaults)}</ul>
<h2>Tuning budget</h2><ul>{items(budget)}</ul>
{_study_charts(layout)}</body></html>"""
    io.write_text(layout.path("report.html"), page)


def _family_html(families: list[str], rows: list[list[str]]) -> str:
    if len(families) < 2:
        return ""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ["group", *families])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
        for cells in rows
    )
    return (
        "<h2>Families per group (selection-period AP of stage 1; * = winner)</h2>"
        f"<table><tr>{head}</tr>{body}</table>"
    )

"""The run report: an HTML page (for people and the KFP UI; it embeds its figures) and a
Markdown twin (it links them, under `figures/`).

It leads with the untouched test period: per group the test AP against the no-skill
baseline with its interval, the class shares, the corrected p-value and whether the model
has skill; then summaries per symbol and per window, a legend of every "—", the backtest,
per group its precision-recall curves, confusion matrix and gain feature importance, and
the tuning stages. Selection-period figures (stage 1 and the production fit's
early-stopping period) chose the model, so they are labelled optimistic.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.sources import read_bars_origin
from alphafactory.layout import Plan, RunLayout
from alphafactory.skill import MIN_EVENTS
from alphafactory.stages.adoption import adoption_of
from alphafactory.stages.report_backtest import backtest_section
from alphafactory.stages.report_groups import GroupPart, class_shares, group_part, shares_text
from alphafactory.stages.report_parts import MISSING, natural_key
from alphafactory.stages.report_plots import Figure, ap_chart_svg, figure, write_figures
from alphafactory.stages.report_tables import (
    Table,
    legend_lines,
    symbol_summary,
    unexplained,
    window_summary,
)
from alphafactory.stages.report_tuning import TuningPart, budget_lines, tuning_part
from alphafactory.targets.swing import CLASS_NAMES

log = logging.getLogger(__name__)


def winner_rows(
    layout: RunLayout,
    plan: Plan,
    models: dict[str, dict[str, Any]],
    published: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per group (natural order): winning variant, parameters used, selection and
    test scores with their uncertainty, the test period's class shares."""
    stage1 = io.read_json(layout.tune_winners(1))["winners"]
    truth = planted_groups(layout)
    registered = published or {}
    rows = []
    for gid in sorted(plan.groups, key=natural_key):
        fitted = models.get(gid, {})
        entry = registered.get(gid, {})
        skill = entry.get("skill") or fitted.get("test") or {}
        verdict = adoption_of(layout, gid)
        winner = stage1.get(gid)
        test_ap, baseline = _finite(skill.get("test_ap")), _finite(skill.get("baseline_ap"))
        ci = (_finite(skill.get("ap_ci_low")), _finite(skill.get("ap_ci_high")))
        rows.append(
            {
                "group": gid,
                "symbol": plan.groups[gid][0].symbol,
                "window": plan.groups[gid][0].window,
                "model": gid in models,
                "planted": None if truth is None else ("planted" if truth.get(gid) else "noise"),
                "variant": None if winner is None else winner.get("variant_id"),
                "family": None if winner is None else winner.get("family", "lightgbm"),
                "params": "tuned" if verdict.get("adopted") else "default",
                "params_reason": verdict.get("reason", "stages 2-4 did not run"),
                "selection_ap": _finite(fitted.get("average_precision")),
                "test_ap": test_ap,
                "baseline_ap": baseline,
                "ci_low": ci[0],
                "ci_high": ci[1],
                "excess": excess_text(test_ap, baseline, ci),
                "shares": shares_text(class_shares(fitted.get("test", {}))),
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


def excess_text(
    test_ap: float | None, baseline: float | None, ci: tuple[float | None, float | None]
) -> str:
    """`+0.0412 [+0.0105, +0.0730]`: test AP minus baseline and its 95% block-bootstrap
    interval (`alphafactory.skill.skill_test`); `[—]` without an interval."""
    if test_ap is None or baseline is None:
        return MISSING
    low, high = ci
    interval = MISSING if low is None or high is None else f"{low:+.4f}, {high:+.4f}"
    return f"{test_ap - baseline:+.4f} [{interval}]"


def family_table(layout: RunLayout, plan: Plan) -> Table:
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
                cells.append("failed" if (gid, name) in tried else MISSING)
        rows.append([gid, *cells])
    untried = "not fitted for this group (not among its LightGBM finalists)"
    return Table(["group", *names], rows, {name: untried for name in names})


def planted_groups(layout: RunLayout) -> dict[str, bool] | None:
    """Group id -> planted, from the synthetic generator's ground truth (None: real data)."""
    if not io.exists(layout.ground_truth):
        return None
    groups = io.read_json(layout.ground_truth)["groups"]
    return {gid: kind == "planted" for gid, kind in groups.items()}


NO_MODEL = "no production model (see the per-symbol notes)"
NOT_REGISTERED = "not registered: no production model"
#: The test-period table: header, row key, and what "—" means in the column.
COLUMNS = (
    ("group", "group", ""),
    ("ground truth", "planted", "no ground truth: the bars did not come from the embedded "
     "generator (prepare/ground_truth.json)"),
    ("winning variant", "variant", "no stage-1 winner: no variant could be fitted"),
    ("family", "family", "no stage-1 winner"),
    ("params", "params", ""),
    ("test AP", "test_ap", f"{NO_MODEL}, or fewer than two classes among the test events"),
    ("baseline AP", "baseline_ap", f"{NO_MODEL}, or fewer than two classes among the events"),
    ("excess AP (95% CI)", "excess",
     f"{NO_MODEL}; [—]: fewer than {MIN_EVENTS} test events, no interval"),
    (f"test class shares ({'/'.join(CLASS_NAMES)})", "shares", f"{NO_MODEL}, or no test events"),
    ("p (corrected)", "p_adjusted", NO_MODEL),
    ("skill", "skill", NO_MODEL),
    ("test events", "n_test", NO_MODEL),
    ("selection AP (optimistic)", "selection_ap", NO_MODEL),
    ("best iter", "best_iteration", NO_MODEL),
    ("version", "version", NOT_REGISTERED),
    ("grade", "grade", NOT_REGISTERED),
    ("champion", "champion", NOT_REGISTERED),
)  # fmt: skip


def results_table(rows: list[dict[str, Any]]) -> Table:
    cells = [[_fmt(row[key]) for _, key, _ in COLUMNS] for row in rows]
    legend = {header: meaning for header, _, meaning in COLUMNS if meaning}
    return Table([header for header, _, _ in COLUMNS], cells, legend, css="results")


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


def summary_lines(config: EnvironmentConfig, layout: RunLayout, plan: Plan) -> list[str]:
    prepare = io.read_json(layout.path("prepare", "report.json"))
    selected = io.read_json(layout.selected_features)
    periods = plan.periods.to_dict()
    origin = read_bars_origin(layout.root)
    data = origin.label if origin is not None else config.data.label
    warning = (
        ["WARNING: these models were trained on synthetic stand-in bars, not the configured "
         f"data; promote refuses them. {origin.line}"]
        if origin is not None and origin.fallback
        else []
    )  # fmt: skip
    return [
        *warning,
        f"Environment: {config.name}; data: {data} "
        f"({', '.join(plan.symbols)}, {plan.n_rows} rows, data hash {plan.data_hash[:12]})",
        f"Variants: {plan.n_variants} in {len(plan.groups)} groups, {len(plan.shards)} shards",
        f"Features: {prepare['kept']} kept after hygiene "
        f"(dropped: {', '.join(f'{k} {v}' for k, v in prepare['counts'].items())}); "
        f"{len(selected)} selected by screening",
        f"Periods: train until {periods['selection_start']}, selection until "
        f"{periods['test_start']}, then test (touched once, by the final scores); rows are "
        "purged by their label's end",
    ]


NOTES = (
    "Test AP, baseline and p-value come from the last part of the timeline, which no choice "
    "saw: not hygiene, screening, winners, tuning or early stopping. The baseline predicts the "
    "training class frequencies. A model without skill is graded F and never made champion.",
    "The baseline's macro AP is 1/3 whenever all three classes occur: a constant score's AP "
    "for a class is that class's share (the test class shares; the dashed lines of the "
    "precision-recall curves).",
    "Excess AP: test AP minus the baseline, with the 95% interval of a moving-block bootstrap "
    "of the test events (blocks keep the time order). It is not the skill test: any "
    "non-constant score beats the constant baseline's AP on few events by chance (a rare "
    "class's AP under a random ranking exceeds its share), so an interval above zero can come "
    "with p = 1. Skill is decided by the block permutation p-value alone, which compares the "
    "test AP with the same predictions scored against shuffled labels.",
    "Selection AP is measured on the period that chose the variant, the parameters and the "
    "number of boosting rounds: it is optimistic.",
    "Feature importance (blue bars) is the production model's total gain per feature; the "
    "tuning studies' green bars are hyperparameter importance (fANOVA), another thing.",
)


def train_outputs(layout: RunLayout, plan: Plan) -> dict[str, dict[str, Any]]:
    """Every group's train-shard entry, failed fits included."""
    outputs: dict[str, dict[str, Any]] = {}
    for shard in range(len(plan.shards)):
        if io.exists(layout.train_shard(shard)):
            outputs.update(io.read_json(layout.train_shard(shard)))
    return outputs


def write_report(
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    models: dict[str, dict[str, Any]],
    published: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Write `report.html`, `report.md` and their figures (`figures/`) in the run folder."""
    rows = winner_rows(layout, plan, models, published)
    backtest = backtest_section(config, layout)
    defaults = [f"{r['group']}: {r['params_reason']}" for r in rows if r["params"] == "default"]
    budget = budget_lines(layout, bounded=config.tune.budget_core_seconds is not None)
    tuning = tuning_part(layout, budget, defaults)
    groups = [group_part(row, models.get(row["group"], {})) for row in rows]
    chart = figure(("test_ap.svg",), ap_chart_svg(rows), "test AP per group")
    write_figures(layout, [chart, *tuning.figures, *(f for g in groups for f in g.figures)])
    stage1 = io.read_json(layout.path("tune", "stage1", "variants.json"))
    families = family_table(layout, plan)
    tables = {
        "results": results_table(rows),
        "symbols": symbol_summary(plan.symbols, rows, stage1, train_outputs(layout, plan)),
        "windows": window_summary(rows),
        **({"families": families} if len(families.headers) > 2 else {}),
    }
    every = [*tables.values(), *(t for g in groups for t in g.tables), *tuning.tables,
             *backtest.tables]  # fmt: skip
    if unexplained(every):
        log.warning("report: no legend for the — in %s", ", ".join(sorted(unexplained(every))))
    text = Text(
        headline=skill_lines(config, rows) + backtest.headline,
        summary=summary_lines(config, layout, plan),
        legend=legend_lines(every),
        n_models=sum(r["test_ap"] is not None for r in rows),
    )
    io.write_text(
        layout.path("report.md"),
        "\n".join(markdown_lines(text, tables, chart, backtest.markdown, groups, tuning)) + "\n",
    )
    io.write_text(layout.path("report.html"), html_page(text, tables, chart, backtest.html,
                                                        groups, tuning))  # fmt: skip


@dataclass(frozen=True)
class Text:
    """The report's sentences: headline, run summary, legend of "—"."""

    headline: list[str]
    summary: list[str]
    legend: list[str]
    n_models: int


GROUPS_TITLE = "Per group: test-period curves and confusion matrix, feature importance"
FAMILIES_TITLE = "Families per group (selection-period AP of stage 1; * = winner)"


def markdown_lines(
    text: Text,
    tables: dict[str, Table],
    chart: Figure,
    backtest: list[str],
    groups: list[GroupPart],
    tuning: TuningPart,
) -> list[str]:
    families = tables.get("families")
    return [
        "# alphafactory run report",
        "",
        *[f"**{line}**  " for line in text.headline],
        "",
        *[f"- {line}" for line in text.summary],
        "",
        f"## Test-period results ({text.n_models} models)",
        "",
        *tables["results"].markdown(),
        "",
        *[f"- {note}" for note in NOTES],
        "",
        chart.markdown(),
        "",
        "## Per symbol",
        "",
        *tables["symbols"].markdown(),
        "",
        "## Per window",
        "",
        *tables["windows"].markdown(),
        "",
        f"## What {MISSING} means",
        "",
        *[f"- {line}" for line in text.legend],
        "",
        *backtest,
        *([f"## {FAMILIES_TITLE}", "", *families.markdown(), ""] if families else []),
        f"## {GROUPS_TITLE}",
        "",
        *[line for group in groups for line in group.markdown],
        *tuning.markdown,
    ]


STYLE = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}
td.text{text-align:left}td.num{white-space:nowrap}
.headline{font-size:1.1em;font-weight:bold}.figures{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:.5em 0}figcaption{font-size:.85em;color:#555;max-width:32em}
details{margin:.3em 0}summary{cursor:pointer}"""


def html_page(
    text: Text,
    tables: dict[str, Table],
    chart: Figure,
    backtest: str,
    groups: list[GroupPart],
    tuning: TuningPart,
) -> str:
    def items(values: list[str] | tuple[str, ...]) -> str:
        return "".join(f"<li>{html.escape(v)}</li>" for v in values)

    families = tables.get("families")
    family_html = f"<h2>{html.escape(FAMILIES_TITLE)}</h2>{families.html()}" if families else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>alphafactory run</title>
<style>{STYLE}</style></head><body><h1>alphafactory run report</h1>
<ul class="headline">{items(text.headline)}</ul><ul>{items(text.summary)}</ul>
<h2>Test-period results ({text.n_models} models)</h2>{tables["results"].html()}
<ul>{items(NOTES)}</ul>{chart.html()}
<h2>Per symbol</h2>{tables["symbols"].html()}<h2>Per window</h2>{tables["windows"].html()}
<h2 id="legend">What {MISSING} means</h2><ul class="legend">{items(text.legend)}</ul>
{backtest}{family_html}
<h2>{html.escape(GROUPS_TITLE)}</h2><p>Click a group to open it.</p>
{"".join(group.html for group in groups)}
{tuning.html}</body></html>"""

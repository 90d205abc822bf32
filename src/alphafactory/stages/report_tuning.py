"""The run report's tuning part, one section per tune stage. Stage 1 fits every variant with
default parameters: one figure of all their selection APs. Stages 2-4 are Optuna studies: per
unit its trials and best value, and the study's optimisation history and hyperparameter
importance (the charts `alphafactory.tuning.write_study_report` wrote, linked and embedded).
Then the budget ledger and the groups that kept the stage-1 defaults."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from alphafactory import io
from alphafactory.layout import RunLayout
from alphafactory.stages.report_parts import MISSING, natural_key
from alphafactory.stages.report_plots import Figure, figure, stage1_svg
from alphafactory.stages.report_tables import Table

SEARCH_STAGES = (2, 3, 4)
#: What each search stage's best value is.
OBJECTIVES = {
    2: "AP on the last part of the training period, one representative group per window",
    3: "mean AP over the rolling-window CV folds inside the training period, every group",
    4: "AP on the last part of the training period, neighbours of stage 3's best; then "
    "adoption on the selection period",
}
#: The study charts per unit, by file name, with what they show.
STUDY_CHARTS = (
    ("history.svg", "optimisation history (dots: trials; red: best so far)"),
    ("importance.svg", "hyperparameter importance (fANOVA over the trials; not feature "
     "importance)"),
)  # fmt: skip
STUDY_FILES = ("report.md", "trials.json")


@dataclass(frozen=True)
class TuningPart:
    """Figures to write (the study charts exist already), Markdown lines, HTML, tables."""

    figures: list[Figure] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    html: str = ""
    tables: list[Table] = field(default_factory=list)


def reports_folder(stage: int) -> tuple[str, ...]:
    return ("tune", f"stage{stage}", "reports")


def study_figures(layout: RunLayout, stage: int, unit: str) -> list[Figure]:
    """The unit's study charts that exist, each read from its file (linked in place)."""
    found = []
    for name, label in STUDY_CHARTS:
        parts = (*reports_folder(stage), unit, name)
        uri = layout.path(*parts)
        if io.exists(uri):
            found.append(Figure(parts, io.read_text(uri), f"stage {stage}, {unit}: {label}", label))
    return found


def report_units(layout: RunLayout, stage: int) -> list[str]:
    """Units with a study report folder, in natural order."""
    folders = io.list_files(layout.path(*reports_folder(stage)))
    return sorted((f.rstrip("/").rsplit("/", 1)[-1] for f in folders), key=natural_key)


def _best(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) and math.isfinite(value) else MISSING


def unit_table(stage: int, units: dict[str, dict[str, Any]]) -> Table:
    headers = ["unit", "group", "family", "trials", "best AP"]
    if stage == 4:
        headers += ["adopted", "adoption"]
    rows = []
    for unit in sorted(units, key=natural_key):
        record = units[unit]
        row = [unit, str(record.get("group_id", MISSING)), str(record.get("family", MISSING)),
               str(record.get("trials", 0)), _best(record.get("best_value"))]  # fmt: skip
        if stage == 4:
            verdict = record.get("adoption") or {}
            adopted = verdict.get("adopted")
            row += [MISSING if adopted is None else ("yes" if adopted else "no"),
                    str(verdict.get("reason", "not judged"))]  # fmt: skip
        rows.append(row)
    return Table(headers, rows)


def stage1_part(layout: RunLayout) -> tuple[Figure | None, list[str]]:
    uri = layout.path("tune", "stage1", "variants.json")
    if not io.exists(uri):
        return None, ["Stage 1 wrote no variant table."]
    variants = io.read_json(uri)
    winners = io.read_json(layout.tune_winners(1))["winners"]
    fitted = sum(r.get("status") == "ok" for r in variants)
    text = [
        f"Stage 1 fitted {fitted} of {len(variants)} (variant, family) pairs with default "
        f"parameters and picked a winner in {len(winners)} groups by selection-period AP."
    ]
    return figure(("stage1.svg",), stage1_svg(variants, winners), "stage 1: variants"), text


def search_part(layout: RunLayout, stage: int) -> tuple[list[str], str, Table | None]:
    """Markdown lines and HTML of one search stage (a line saying so when it did not run)."""
    if not io.exists(layout.tune_winners(stage)):
        line = f"Stage {stage} did not run in this run."
        return [line, ""], f"<p>{html.escape(line)}</p>", None
    units = io.read_json(layout.tune_winners(stage)).get("units", {})
    table = unit_table(stage, units)
    markdown = [f"Best value: {OBJECTIVES[stage]}.", "", *table.markdown(), ""]
    pieces = [f"<p>Best value: {html.escape(OBJECTIVES[stage])}.</p>", table.html()]
    studies = []
    for unit in report_units(layout, stage):
        charts = study_figures(layout, stage, unit)
        links = [
            f"[{name}]({quote('/'.join((*reports_folder(stage), unit, name)))})"
            for name in STUDY_FILES
        ]
        markdown += [
            f"- {unit}: " + " ".join(c.markdown() for c in charts) + " " + ", ".join(links)
        ]
        studies.append(
            f'<div class="study"><h4>stage {stage}, {html.escape(unit)}</h4>'
            f'<div class="figures">{"".join(c.html() for c in charts)}</div></div>'
        )
    if studies:
        pieces.append(
            f'<details class="studies"><summary>Study charts of the {len(studies)} units '
            f"(click to open)</summary>{''.join(studies)}</details>"
        )
    return [*markdown, ""], "".join(pieces), table


def budget_lines(layout: RunLayout, bounded: bool = True) -> list[str]:
    """Planned vs used compute per tune stage, from the budget ledger (as far as it got);
    only what was used when the run set no budget (`tune.budget_core_seconds`)."""
    if not io.exists(layout.budget):
        return []
    from alphafactory.tuning import Budget  # lazily: it imports optuna

    lines = []
    for r in Budget.load(layout.budget).report():
        unit = str(r["unit"]).replace("_", "-")
        used = f"used {r['used']:.0f} {unit}" + (
            "" if unit == "trials" else f" in {r['trials']} trials"
        )
        lines.append(
            f"stage {r['stage']}: planned {r['planned']:.0f}, carried {r['carried']:+.0f}, "
            f"allowed {r['allowance']:.0f}, {used}"
            if bounded
            else f"stage {r['stage']}: {used} (no budget: tune.budget_core_seconds is not set)"
        )
    return lines


def tuning_part(layout: RunLayout, budget: list[str], defaults: list[str]) -> TuningPart:
    """Every tune stage's section, the budget and the groups that kept the defaults."""
    stage1, stage1_text = stage1_part(layout)
    figures = [] if stage1 is None else [stage1]
    markdown = ["## Tuning, stage by stage", "", "### Stage 1: variants", "", *stage1_text, ""]
    markdown += [stage1.markdown(), ""] if stage1 else []
    page = ["<h2>Tuning, stage by stage</h2><h3>Stage 1: variants</h3>"]
    page += [f"<p>{html.escape(line)}</p>" for line in stage1_text]
    page += [stage1.html()] if stage1 else []
    tables = []
    for stage in SEARCH_STAGES:
        lines, fragment, table = search_part(layout, stage)
        markdown += [f"### Stage {stage}: Optuna study", "", *lines]
        page += [f"<h3>Stage {stage}: Optuna study</h3>", fragment]
        tables += [table] if table else []
    items = "".join(f"<li>{html.escape(v)}</li>" for v in defaults)
    ledger = "".join(f"<li>{html.escape(v)}</li>" for v in budget)
    markdown += ["## Groups that kept the stage-1 defaults", "", *[f"- {v}" for v in defaults],
                 "", "## Tuning budget", "", *[f"- {v}" for v in budget], ""]  # fmt: skip
    page += [
        f"<h2>Groups that kept the stage-1 defaults</h2><ul>{items}</ul>",
        f"<h2>Tuning budget</h2><ul>{ledger}</ul>",
    ]
    return TuningPart(figures, markdown, "".join(page), tables)

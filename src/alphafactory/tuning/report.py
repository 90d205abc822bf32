"""Study reports: a trial table and two charts (optimisation history, parameter importance).

Charts are small hand-written SVG, so reports need neither plotly nor matplotlib (neither is
a dependency of the runtime image) and embed directly in the HTML/Markdown stage reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

import optuna
import polars as pl
from optuna.study import StudyDirection
from optuna.trial import TrialState

from alphafactory import io
from alphafactory.tuning.budget import Budget, format_report

WIDTH, HEIGHT, MARGIN = 560, 300, 48


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One JSON-ready row per trial: number, state, value, seconds, params, user attrs."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        finished = trial.datetime_complete
        started = trial.datetime_start
        seconds = (finished - started).total_seconds() if finished and started else None
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "seconds": seconds,
                "params": dict(trial.params),
                "user_attrs": dict(trial.user_attrs),
            }
        )
    return rows


def trials_table(study: optuna.Study) -> pl.DataFrame:
    """The trials as a polars frame with one ``param_<name>`` column per parameter."""
    rows = trial_rows(study)
    names = sorted({name for row in rows for name in row["params"]})
    flat = [
        {
            "number": row["number"],
            "state": row["state"],
            "value": row["value"],
            "seconds": row["seconds"],
            **{f"param_{name}": row["params"].get(name) for name in names},
            "user_attrs": json.dumps(row["user_attrs"], sort_keys=True, default=str),
        }
        for row in rows
    ]
    schema = {"number": pl.Int64, "state": pl.String, "value": pl.Float64, "seconds": pl.Float64}
    schema.update({f"param_{name}": pl.Float64 for name in names})
    schema["user_attrs"] = pl.String
    return pl.DataFrame(flat, schema=schema)


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    span = high - low or 1.0
    return start + (value - low) / span * (end - start)


def _svg(body: list[str], title: str) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">'
    )
    caption = f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="13">'
    return "\n".join([head, f"{caption}{escape(title)}</text>", *body, "</svg>"])


def _empty_chart(title: str, why: str) -> str:
    note = f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">{escape(why)}</text>'
    return _svg([note], title)


def best_so_far(values: Sequence[float], maximize: bool) -> list[float]:
    """Running best of `values` in the study's direction."""
    best: list[float] = []
    for value in values:
        previous = best[-1] if best else value
        best.append(max(previous, value) if maximize else min(previous, value))
    return best


def history_svg(study: optuna.Study, title: str = "Optimisation history") -> str:
    """Objective value of each complete trial (dots) and the best so far (line)."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    if not done:
        return _empty_chart(title, "no complete trials yet")
    numbers = [float(t.number) for t in done]
    values = [float(t.value or 0.0) for t in done]
    best = best_so_far(values, study.direction == StudyDirection.MAXIMIZE)
    x_low, x_high, y_low, y_high = min(numbers), max(numbers), min(values), max(values)

    def point(x: float, y: float) -> tuple[float, float]:
        return (
            _scale(x, x_low, x_high, MARGIN, WIDTH - MARGIN / 2),
            _scale(y, y_low, y_high, HEIGHT - MARGIN, MARGIN),
        )

    dots = [
        '<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="#4878d0"/>'.format(*point(x, y))
        for x, y in zip(numbers, values, strict=True)
    ]
    path = " ".join(
        "{:.1f},{:.1f}".format(*point(x, y)) for x, y in zip(numbers, best, strict=True)
    )
    line = f'<polyline points="{path}" fill="none" stroke="#d65f5f" stroke-width="2"/>'
    axes = [
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN / 2}" '
        f'y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end">{y_high:.3g}</text>',
        f'<text x="{MARGIN - 4}" y="{HEIGHT - MARGIN}" text-anchor="end">{y_low:.3g}</text>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 12}" text-anchor="middle">trial '
        f"{int(x_low)}–{int(x_high)} (red: best so far)</text>",
    ]
    return _svg([*axes, line, *dots], title)


def varied_params(study: optuna.Study) -> list[str]:
    """Parameters that took more than one value among complete trials (others rank nothing)."""
    seen: dict[str, set[Any]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for name, value in trial.params.items():
            seen.setdefault(name, set()).add(value)
    return sorted(name for name, values in seen.items() if len(values) > 1)


def param_importances(study: optuna.Study, seed: int = 0) -> dict[str, float]:
    """fANOVA importances of the varied parameters; empty when they cannot be computed."""
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    varied = varied_params(study)
    if not varied:
        return {}
    try:
        return dict(
            optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied)
        )
    except (RuntimeError, ValueError):  # too few complete trials, or nothing varied
        return {}


def importance_svg(importances: dict[str, float], title: str = "Parameter importance") -> str:
    """Horizontal bars of parameter importance, largest first."""
    if not importances:
        return _empty_chart(title, "not enough complete trials to rank parameters")
    ranked = sorted(importances.items(), key=lambda item: (-item[1], item[0]))
    left, bar_height = 130, min(28.0, (HEIGHT - 2 * MARGIN) / len(ranked))
    top = max(importances.values()) or 1.0
    body = []
    for row, (name, importance) in enumerate(ranked):
        y = MARGIN + row * bar_height
        width = importance / top * (WIDTH - left - MARGIN)
        body += [
            f'<text x="{left - 6}" y="{y + bar_height * 0.65:.1f}" text-anchor="end">'
            f"{escape(name)}</text>",
            f'<rect x="{left}" y="{y + 2:.1f}" width="{width:.1f}" '
            f'height="{bar_height - 4:.1f}" fill="#6acc64"/>',
            f'<text x="{left + width + 4:.1f}" y="{y + bar_height * 0.65:.1f}">'
            f"{importance:.2f}</text>",
        ]
    return _svg(body, title)


def write_study_report(
    study: optuna.Study, folder: str, budget: Budget | None = None
) -> dict[str, str]:
    """Write trials.json, history.svg, importance.svg and report.md under `folder` (any URI).

    Returns the written files by kind.
    """
    importances = param_importances(study)
    paths = {
        kind: io.join(folder, name)
        for kind, name in (
            ("trials", "trials.json"),
            ("history", "history.svg"),
            ("importance", "importance.svg"),
            ("markdown", "report.md"),
        )
    }
    io.write_json(paths["trials"], trial_rows(study))
    io.write_text(paths["history"], history_svg(study, f"{study.study_name}: history"))
    io.write_text(paths["importance"], importance_svg(importances))
    io.write_text(paths["markdown"], markdown_summary(study, importances, budget))
    return paths


def markdown_summary(
    study: optuna.Study, importances: dict[str, float], budget: Budget | None = None
) -> str:
    """Counts by state, the best trial, importances and (optionally) the budget ledger."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    lines = [f"# Study {study.study_name}", ""]
    lines += [f"- {state.lower()}: {count}" for state, count in sorted(counts.items())]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        best = study.best_trial
        lines += ["", f"Best trial {best.number}: value {best.value:.4f}, params {best.params}"]
    if importances:
        ranked = sorted(importances.items(), key=lambda item: -item[1])
        lines += ["", "Importance: " + ", ".join(f"{n} {v:.2f}" for n, v in ranked)]
    lines += ["", "![history](history.svg)", "![importance](importance.svg)"]
    if budget is not None:
        lines += ["", format_report(budget)]
    return "\n".join(lines) + "\n"

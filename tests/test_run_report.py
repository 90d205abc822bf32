"""The run report: natural order, class shares, uncertainty, the summaries per symbol and per
window, the legend of "—", and (on the session's tiny run) every figure per group, checked
against the run's own outputs."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_run import TinyRuns

from alphafactory import io
from alphafactory.layout import RunLayout, read_plan
from alphafactory.stages.fitting import period_rows
from alphafactory.stages.report import excess_text
from alphafactory.stages.report_groups import class_shares, shares_text
from alphafactory.stages.report_parts import MISSING, natural_key
from alphafactory.stages.report_tables import (
    LEGEND_TEXT,
    Table,
    legend_lines,
    symbol_summary,
    unexplained,
    window_summary,
)
from alphafactory.targets.swing import CLASS_NAMES

SVG = "{http://www.w3.org/2000/svg}"


def test_natural_key_orders_numbers_by_value() -> None:
    ids = ["BTC_w10_high", "ETH_w2_low", "BTC_w2_low", "BTC_w3_high", "BTC_w2_high", "BTC_w100"]
    assert sorted(ids, key=natural_key) == [
        "BTC_w2_high", "BTC_w2_low", "BTC_w3_high", "BTC_w10_high", "BTC_w100", "ETH_w2_low",
    ]  # fmt: skip
    assert sorted(ids) != sorted(ids, key=natural_key)  # lexical order puts w10 before w2
    # leading zeros tie on value and fall back to the text; digits first or last never clash
    assert sorted(["w2", "w02", "10x", "x", "2", "x10", "x9"], key=natural_key) == [
        "2", "10x", "w02", "w2", "x", "x9", "x10",
    ]  # fmt: skip


def test_class_shares_are_the_confusion_rows_shares() -> None:
    test = {"confusion_matrix": [[50, 5, 5], [10, 10, 0], [4, 0, 16]], "n_events": 100}
    shares = class_shares(test)
    assert shares == {"neither": 0.6, "breakout": 0.2, "reversion": 0.2}
    assert shares_text(shares) == "0.60/0.20/0.20"
    assert class_shares({"confusion_matrix": [[0, 0, 0]] * 3}) is None
    assert class_shares({}) is None and shares_text(None) == MISSING


def test_excess_text_shows_the_interval_or_says_none() -> None:
    assert excess_text(0.41, 1 / 3, (0.012, 0.1)) == "+0.0767 [+0.0120, +0.1000]"
    assert excess_text(0.30, 1 / 3, (None, None)) == f"-0.0333 [{MISSING}]"
    assert excess_text(None, 1 / 3, (0.0, 0.1)) == MISSING


def _row(gid: str, **values: Any) -> dict[str, Any]:
    symbol, window = gid.split("_")[0], int(gid.split("_w")[1].split("_")[0])
    row = {"group": gid, "symbol": symbol, "window": window, "model": False, "variant": None,
           "test_ap": None, "baseline_ap": None, "skill": None, "champion": None,
           "p_adjusted": None}  # fmt: skip
    return {**row, **values}


def _model(gid: str, ap: float, skill: str, p: float) -> dict[str, Any]:
    return _row(gid, model=True, variant=f"{gid}_s1_m1_h6", test_ap=ap, baseline_ap=1 / 3,
                skill=skill, champion=skill, p_adjusted=p)  # fmt: skip


ROWS = [
    _model("AAA_w3_high", 0.45, "yes", 0.01),
    _model("AAA_w10_high", 0.40, "no", 0.2),
    _model("BBB_w3_high", 0.35, "no", 0.5),
    _row("BBB_w10_high", variant="BBB_w10_high_s1_m1_h6"),
    _row("CCC_w3_high"),
    _row("CCC_w10_high"),
]
STAGE1 = [
    {"group_id": "CCC_w3_high", "status": "too_few_rows"},
    {"group_id": "CCC_w3_high", "status": "too_few_rows"},
    {"group_id": "CCC_w10_high", "status": "single_class"},
    {"group_id": "BBB_w10_high", "status": "ok"},
]
TRAIN = {"BBB_w10_high": {"variant_id": "BBB_w10_high_s1_m1_h6", "status": "no_rows"}}


def test_every_symbol_has_a_row_and_one_without_a_model_says_why() -> None:
    table = symbol_summary(["CCC", "AAA", "BBB", "DDD"], ROWS, STAGE1, TRAIN)
    cells = {row[0]: dict(zip(table.headers, row, strict=True)) for row in table.rows}
    assert [row[0] for row in table.rows] == ["AAA", "BBB", "CCC", "DDD"]
    assert cells["AAA"]["note"] == "1 of 2 models beat the no-skill baseline"
    assert (cells["AAA"]["models"], cells["AAA"]["with skill"], cells["AAA"]["champions"]) == (
        "2", "1", "1",
    )  # fmt: skip
    assert cells["AAA"]["median test AP"] == "0.4250"
    assert cells["AAA"]["best group (test AP)"] == "AAA_w3_high (0.4500)"
    assert cells["BBB"]["note"] == (
        "no model beats the no-skill baseline on the test period (lowest corrected p 0.500); "
        "BBB_w10_high: production fit not made (no event rows)"
    )
    assert cells["CCC"]["note"] == (
        "no model: CCC_w3_high: no stage-1 winner (variants: 2 too few event rows "
        "(tune.min_rows)); CCC_w10_high: no stage-1 winner (variants: 1 a single class among "
        "the events)"
    )
    assert cells["CCC"]["median test AP"] == MISSING
    assert cells["DDD"]["groups"] == "0" and cells["DDD"]["note"].startswith("no group")
    assert unexplained([table]) == set()


def test_window_summary_in_numeric_order() -> None:
    table = window_summary(ROWS)
    assert [row[0] for row in table.rows] == ["w3", "w10"]
    w3 = dict(zip(table.headers, table.rows[0], strict=True))
    assert (w3["groups"], w3["models"], w3["with skill"]) == ("3", "2", "1")
    assert w3["median test AP"] == "0.4000"  # of 0.45 and 0.35
    assert w3["median excess AP"] == f"{0.4 - 1 / 3:+.4f}"


def test_legend_names_each_column_with_a_dash_once() -> None:
    first = Table(["a", "b", "c"], [["1", MISSING, "x"], [MISSING, "2", "y"]], {"a": "A", "b": "B"})
    second = Table(["b", "d"], [[MISSING, MISSING]], {"b": "B"})
    assert legend_lines([first, second]) == ["a: A", "b: B", "d: not available", LEGEND_TEXT]
    assert unexplained([first, second]) == {"d"}
    assert first.markdown()[2] == "| 1 | — | x |"


# --- the session's tiny run --------------------------------------------------------------


def _tables(markdown: str) -> dict[str, list[list[str]]]:
    """Each Markdown table by the heading above it: header row first, then the body rows."""
    tables: dict[str, list[list[str]]] = {}
    heading = ""
    for line in markdown.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("| "):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            tables.setdefault(heading, []).append(cells)
    return tables


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"\n## {title}")[1].split("\n## ")[0]


@pytest.fixture(scope="module")
def report(tiny_runs: TinyRuns) -> dict[str, Any]:
    run = tiny_runs.run_dir
    models: dict[str, Any] = {}
    for shard in sorted((run / "train" / "shards").glob("*.json")):
        models.update(io.read_json(str(shard)))
    return {
        "run": run,
        "markdown": (run / "report.md").read_text(),
        "html": (run / "report.html").read_text(),
        "plan": tiny_runs.plan,
        "models": {g: m for g, m in models.items() if m.get("status") == "ok"},
        "published": io.read_json(str(run / "infer" / "registry.json")),
    }


@pytest.mark.slow
def test_rows_follow_the_natural_order_of_the_group_ids(report: dict[str, Any]) -> None:
    results = next(t for h, t in _tables(report["markdown"]).items() if h.startswith("Test-p"))
    order = [row[0] for row in results[1:]]

    def by_value(gid: str) -> tuple[str, int, str]:
        symbol, window, swing = re.fullmatch(r"(.+)_w(\d+)_(\w+)", gid).groups()  # type: ignore[union-attr]
        return symbol, int(window), swing

    assert order == sorted(report["plan"]["groups"], key=by_value)
    assert order.index("BTC_w3_high") < order.index("BTC_w10_high")
    assert sorted(order) != order  # lexically, w10 would come first


@pytest.mark.slow
def test_class_shares_are_those_of_the_test_labels(
    report: dict[str, Any], tiny_runs: TinyRuns
) -> None:
    """Oracle: each class's share among the variant's test-period labels, read afresh."""
    layout, config = RunLayout(str(report["run"])), tiny_runs.config
    plan = read_plan(layout)
    results = next(t for h, t in _tables(report["markdown"]).items() if h.startswith("Test-p"))
    header = results[0]
    cells = {row[0]: dict(zip(header, row, strict=True)) for row in results[1:]}
    column = f"test class shares ({'/'.join(CLASS_NAMES)})"
    assert len(report["models"]) == 8
    for gid, fitted in report["models"].items():
        variant = plan.variant(gid, fitted["variant_id"])
        targets, masks = period_rows(layout, plan, config, variant)
        labels = targets[variant.variant_id].to_numpy()[masks.test].astype(int)
        expected = np.bincount(labels, minlength=3) / len(labels)
        shares = class_shares(fitted["test"])
        assert shares is not None and len(labels) == fitted["test"]["n_events"] > 0
        np.testing.assert_allclose([shares[n] for n in CLASS_NAMES], expected, rtol=0, atol=1e-12)
        assert cells[gid][column] == "/".join(f"{x:.2f}" for x in expected)
        assert cells[gid]["test events"] == str(len(labels))
        skill = report["published"][gid]["skill"]
        assert cells[gid]["excess AP (95% CI)"] == (
            f"{skill['test_ap'] - skill['baseline_ap']:+.4f} "
            f"[{skill['ap_ci_low']:+.4f}, {skill['ap_ci_high']:+.4f}]"
        )


def _svg_root(path: Path) -> ElementTree.Element:
    assert path.stat().st_size > 0, path
    root = ElementTree.fromstring(path.read_text())
    assert root.tag == f"{SVG}svg", path
    return root


@pytest.mark.slow
def test_every_group_with_test_events_has_its_curves_matrix_and_importance(
    report: dict[str, Any],
) -> None:
    run, markdown = report["run"], report["markdown"]
    checked = 0
    for gid, fitted in report["models"].items():
        test = fitted["test"]
        assert test["n_events"] > 0
        confusion = _svg_root(run / "figures" / "confusion" / f"{gid}.svg")
        counts = [
            int(t.text or "") for t in confusion.iter(f"{SVG}text")
            if t.get("font-size") == "12" and (t.text or "").isdigit()
        ]  # fmt: skip
        assert counts == [c for row in test["confusion_matrix"] for c in row]
        pr = _svg_root(run / "figures" / "pr" / f"{gid}.svg")
        curves = [e for e in pr.iter(f"{SVG}polyline") if e.get("class") == "pr"]
        assert len(curves) == len(test["pr_curves"]) >= 2
        importance = _svg_root(run / "figures" / "importance" / f"{gid}.svg")
        bars = [e for e in importance.iter(f"{SVG}rect") if e.get("class") == "gain"]
        assert len(bars) == len(fitted["importance"]) > 0
        section = markdown.split(f"\n### {gid}\n")[1].split("\n### ")[0].split("\n## ")[0]
        for kind in ("pr", "confusion", "importance"):
            assert f"(figures/{kind}/{gid}.svg)" in section
        table = [line for line in section.splitlines() if line.startswith("| ")]
        assert len(table) == 4  # header and one row per true class
        assert (
            sum(int(line.split(" | ")[-1].rstrip(" |")) for line in table[1:]) == (test["n_events"])
        )
        checked += 1
    assert checked == len(report["plan"]["groups"]) == 8


@pytest.mark.slow
def test_every_linked_figure_exists_and_the_page_embeds_the_same_file(
    report: dict[str, Any],
) -> None:
    run, page = report["run"], report["html"]
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report["markdown"])
    assert len(linked) >= 1 + 1 + 3 * 8  # test AP, stage 1, three per group
    for target in linked:
        _svg_root(run / target)
    embedded = re.findall(r'<a href="([^"]+)"><img src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert sorted(href for href, _ in embedded) == sorted(linked)
    for href, data in embedded:
        assert base64.b64decode(data) == (run / href).read_bytes()
    assert page.count("<img ") == len(embedded)


@pytest.mark.slow
def test_summaries_cover_every_symbol_and_window(report: dict[str, Any]) -> None:
    tables = _tables(report["markdown"])
    symbols = {row[0]: dict(zip(tables["Per symbol"][0], row, strict=True))
               for row in tables["Per symbol"][1:]}  # fmt: skip
    assert list(symbols) == report["plan"]["symbols"] == ["BTC", "ETH"]
    for symbol, cells in symbols.items():
        mine = [p for g, p in report["published"].items() if g.startswith(f"{symbol}_")]
        assert cells["models"] == str(len(mine)) == "4"
        assert cells["with skill"] == str(sum(p["skill"]["skill"] for p in mine))
        assert cells["champions"] == str(sum(p["champion"] for p in mine))
        assert cells["note"]
    # the planted symbol's models have skill, the noise symbol's do not (tests/tiny_run.py)
    assert symbols["BTC"]["note"] == "4 of 4 models beat the no-skill baseline"
    assert symbols["ETH"]["note"].startswith("no model beats the no-skill baseline")
    windows = tables["Per window"]
    assert [row[0] for row in windows[1:]] == ["w3", "w10"]
    assert all(row[1] == "4" for row in windows[1:])


@pytest.mark.slow
def test_the_legend_explains_every_dash_in_every_table(report: dict[str, Any]) -> None:
    markdown = report["markdown"]
    legend = [
        line[2:].split(": ")[0] for line in _section(markdown, f"What {MISSING} means").splitlines()
        if line.startswith("- ")
    ]  # fmt: skip
    dashed = {
        header
        for rows in _tables(markdown).values()
        for index, header in enumerate(rows[0])
        if any(MISSING in row[index] for row in rows[1:])
    }
    assert dashed, "the tiny run's tables show no — at all: nothing to check"
    assert dashed <= set(legend)
    assert "not available" not in _section(markdown, f"What {MISSING} means")
    assert '<h2 id="legend">' in report["html"]


@pytest.mark.slow
def test_hyperparameter_and_feature_importance_are_told_apart(report: dict[str, Any]) -> None:
    markdown = report["markdown"]
    assert "hyperparameter importance (fANOVA)" in markdown
    assert "Stage 2 did not run in this run" in markdown  # the tiny run tunes stage 1 only
    assert "(figures/stage1.svg)" in markdown
    stage1 = _svg_root(report["run"] / "figures" / "stage1.svg")
    winners = [e for e in stage1.iter(f"{SVG}circle") if e.get("class") == "winner"]
    assert len(winners) == 8


def test_summary_names_the_recorded_source_and_warns_on_fallback(
    tiny_runs: TinyRuns, tmp_path: Path
) -> None:
    import shutil

    from alphafactory.data.sources import BarsOrigin, read_bars_origin, write_bars_origin
    from alphafactory.stages.report import summary_lines

    run = tmp_path / "run-1"
    shutil.copytree(tiny_runs.run_dir / "prepare", run / "prepare")
    shutil.copytree(tiny_runs.run_dir / "screen", run / "screen")
    layout, config = RunLayout(str(run)), tiny_runs.config
    plan = read_plan(layout)
    recorded = read_bars_origin(str(run))
    assert recorded is not None and not recorded.fallback  # prepare wrote the file's origin
    lines = summary_lines(config, layout, plan)
    assert lines[0].startswith(f"Environment: {config.name}; data: {recorded.label} (")
    assert not any("WARNING" in line for line in lines)

    fallback = BarsOrigin("exchange", "exchange binance BTC/USDT (1h)", fallback_error="boom")
    write_bars_origin(layout, fallback)
    lines = summary_lines(config, layout, plan)
    assert lines[0] == (
        "WARNING: these models were trained on synthetic stand-in bars, not the configured "
        "data; promote refuses them. source: synthetic (fallback after: boom)"
    )
    assert "data: synthetic (fallback after: boom) (" in lines[1]

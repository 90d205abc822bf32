"""The report's backtest section on a hand-written run folder (results.json, equity bars):
Sharpe order, number formats, one chart pair per group, window bands, escaping, disabled."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tiny_run import TinyRuns

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import RunLayout
from alphafactory.stages.report_backtest import (
    HEADERS,
    TITLE,
    BacktestSection,
    backtest_section,
)
from alphafactory.stages.report_parts import MAX_POINTS, chart_indices

NAN = math.nan
START = np.datetime64("2024-01-01T00:00", "us")
HOUR = np.timedelta64(1, "h")
#: group id -> (bars, windows, Sharpe, pbo or None); "A<b>" checks escaping.
GROUPS: dict[str, tuple[int, int, float, float | None]] = {
    "g10": (30, 1, NAN, 0.4),
    "A<b>": (50, 2, 0.55, None),
    "g2": (600, 3, 1.25, 0.125),
}
VARIANT = {
    "symbol": "BTC", "window": 3, "swing_type": "high", "std_threshold": 1.0,
    "move_threshold": 1.0, "horizon": 6,
}  # fmt: skip


def config(**backtest: Any) -> EnvironmentConfig:
    return EnvironmentConfig.model_validate(
        {
            "name": "test-report",
            "runner": "local",
            "data": {"source": "synthetic", "symbols": ["BTC"]},
            "backtest": {"fee_bps": 4.0, "slippage_bps": 1.5, **backtest},
        }
    )


def _iso(moment: np.datetime64) -> str:
    return f"{moment.astype('datetime64[s]')}+00:00"


def _records(n_bars: int, n_windows: int) -> list[dict[str, Any]]:
    edges = np.linspace(0, n_bars, n_windows + 1).astype(int)
    return [
        {
            "index": i,
            "train_start": _iso(START - 100 * HOUR),
            "test_start": _iso(START + int(low) * HOUR),
            "test_end": _iso(START + int(high) * HOUR),
            "n_fit": 900,
            "n_valid": 100,
            "n_test": 20,
            "status": "fitted",
            "reason": None,
            "best_iteration": 12,
            "seconds": 0.5,
        }
        for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]


def _group(n_bars: int, n_windows: int, sharpe: float, pbo: float | None) -> dict[str, Any]:
    metrics = {
        "total_return": 0.1234, "annual_return": 0.5, "sharpe": sharpe, "sortino": NAN,
        "max_drawdown": 0.0456, "hit_rate": 0.5, "profit_factor": math.inf,
        "win_loss_ratio": 1.5, "n_trades": 7, "exposure": 0.25, "turnover": 12.0,
    }  # fmt: skip
    records = _records(n_bars, n_windows)
    return {
        "variant": VARIANT, "family": "lightgbm", "metrics": metrics,
        "windows": [{"index": r["index"], "status": "fitted", "bars": 10, **metrics}
                    for r in records],
        "walk_forward": {"family": "lightgbm", "windows": n_windows, "refits": n_windows,
                         "predicted_rows": 40, "records": records},
        "deflated_sharpe": {"sharpe": 0.02, "expected_max_sharpe": 0.01,
                            "probability": 0.97 if sharpe == 1.25 else 0.4, "n_trials": 12,
                            "n_obs": n_bars, "skew": 0.0, "kurtosis": 3.0},
        "passes_deflated_sharpe": sharpe == 1.25, "n_trials": 12, "trial_sharpe_variance": 0.1,
        "pbo": None if pbo is None else {"pbo": pbo, "n_strategies": 4, "n_combinations": 70,
                                         "n_splits": 8, "median_logit": 0.3},
        "skipped_busy": 0, "skipped_flat": 3, "skipped_unusable": 0,
    }  # fmt: skip


def _equity(n_bars: int) -> pl.DataFrame:
    returns = np.random.default_rng(n_bars).normal(0.0, 0.01, n_bars)
    equity = np.cumprod(1.0 + returns)
    return pl.DataFrame(
        {
            "timestamp": pl.Series(START + np.arange(n_bars) * HOUR).cast(pl.Datetime("us")),
            "position": np.ones(n_bars),
            "bar_return": returns,
            "equity": equity,
            "drawdown": 1.0 - equity / np.maximum.accumulate(equity),
        }
    )


@pytest.fixture
def layout(tmp_path: Path) -> RunLayout:
    run = RunLayout(str(tmp_path / "run"))
    groups = {gid: _group(*spec) for gid, spec in GROUPS.items()}
    io.write_json(run.backtest_results, {"enabled": True, "groups": groups})
    for gid, (n_bars, *_) in GROUPS.items():
        io.write_parquet(run.backtest_bars(gid), _equity(n_bars))
    return run


def _table_rows(markdown: list[str]) -> list[list[str]]:
    """The cells of the run-level table's body rows."""
    start = markdown.index(f"## {TITLE}") + 4  # title, blank, header, separator
    rows = []
    for line in markdown[start:]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def _details(page: str) -> list[str]:
    """The backtest's per-group blocks (the report has other `<details>` too)."""
    return re.findall(r'<details class="backtest">.*?</details>', page, flags=re.S)


def _points(svg: str, kind: str) -> int:
    found = re.findall(rf'<polyline class="{kind}"[^>]*points="([^"]*)"', svg)
    assert len(found) == 1
    return len(found[0].split())


def test_markdown_table_is_in_sharpe_order_with_nan_last(layout: RunLayout) -> None:
    rows = _table_rows(backtest_section(config(), layout).markdown)
    assert [row[0] for row in rows] == ["g2", "A&lt;b&gt;", "g10"]
    assert all(len(row) == len(HEADERS) for row in rows)
    cell = {(row[0], header): row[i] for row in rows for i, header in enumerate(HEADERS)}
    assert cell[("g2", "Sharpe")] == "1.25"
    assert cell[("g10", "Sharpe")] == "—"
    assert cell[("g2", "total return")] == "12.3%"
    assert cell[("g2", "max drawdown")] == "4.6%"
    assert cell[("g2", "profit factor")] == "∞"
    assert cell[("g2", "Sortino")] == "—"
    assert cell[("g2", "deflated Sharpe p (trials N)")] == "0.970 (N=12)"
    assert cell[("g2", "PBO")] == "0.12"  # 0.125 rounds half to even
    assert cell[("A&lt;b&gt;", "PBO")] == "—"
    assert (cell[("g2", "gate")], cell[("g10", "gate")]) == ("✓ pass", "✗ fail")


def test_headline_and_note_use_the_config(layout: RunLayout) -> None:
    section = backtest_section(config(significance=0.9), layout)
    assert section.headline == [
        "Backtest: 1 of 3 champions pass the deflated-Sharpe gate (p ≥ 0.9); median Sharpe 0.90"
    ]
    assert "costs 4 bps fee + 1.5 bps slippage per side" in "\n".join(section.markdown)
    assert "trades at the next bar&#x27;s open" in section.html


def test_html_has_one_details_per_group_with_charts_and_window_bands(layout: RunLayout) -> None:
    page = backtest_section(config(), layout).html
    blocks = _details(page)
    assert len(blocks) == len(GROUPS) == 3
    for gid, (n_bars, n_windows, _, _) in GROUPS.items():
        block = next(b for b in blocks if b.split("</summary>")[0].count(f"{_escaped(gid)} ("))
        svgs = re.findall(r"<svg.*?</svg>", block, flags=re.S)
        assert len(svgs) == 2
        expected = min(n_bars, MAX_POINTS)  # 600 bars: 200 buckets' low and high
        assert _points(svgs[0], "equity") == expected
        assert _points(svgs[1], "drawdown") == expected
        assert all(svg.count('<rect class="window"') == n_windows for svg in svgs)
        window_table = block.split("</svg>")[-1]
        assert window_table.count("<tr>") == n_windows + 1  # header and one row per window


def _escaped(gid: str) -> str:
    return gid.replace("<", "&lt;").replace(">", "&gt;")


def test_markdown_has_one_summary_line_per_group_with_links(layout: RunLayout) -> None:
    markdown = backtest_section(config(), layout).markdown
    lines = [line for line in markdown if line.startswith("- ")]
    assert len(lines) == len(GROUPS)
    assert lines[0].startswith(
        "- g2 (lightgbm, BTC_w3_high_s1_m1_h6): Sharpe 1.25, total return 12.3%, max drawdown "
        "4.6%, 7 trades in 3 windows (3 refits); deflated Sharpe p 0.970 (N=12), PBO 0.12"
    )
    assert "[bars](backtest/equity/g2.parquet)" in lines[0]
    assert "[bars](backtest/equity/A%3Cb%3E.parquet)" in lines[1]


def test_window_table_joins_records_and_metrics(layout: RunLayout) -> None:
    block = next(b for b in _details(backtest_section(config(), layout).html) if "g2 (" in b)
    rows = re.findall(r"<tr>(<td>.*?)</tr>", block.split("</svg>")[-1])
    assert len(rows) == 3
    cells = re.findall(r"<td>(.*?)</td>", rows[1])
    # g2: 600 bars in 3 windows of 200 hours
    assert cells[:6] == ["1", "2024-01-09 08:00", "2024-01-17 16:00", "fitted", "900", "10"]
    assert cells[-1] == "—"  # no reason


def test_html_table_is_sortable_and_escaped(layout: RunLayout) -> None:
    section = backtest_section(config(), layout)
    page = section.html
    assert '<table class="sortable">' in page and "<script>" in page
    assert 'querySelectorAll("table.sortable")' in page
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    order = re.findall(r'<tr><td data-value="([^"]*)">', body)
    assert order == ["g2", "A&lt;b&gt;", "g10"]
    assert '<td data-value="">—</td>' in body  # no Sharpe: sorts last either way
    assert '<td data-value="Infinity">∞</td>' in body
    assert "A<b>" not in page
    assert "A<b>" not in "\n".join(section.markdown)
    assert "A&lt;b&gt;" in page


def test_a_group_without_equity_bars_says_so(layout: RunLayout) -> None:
    Path(layout.backtest_bars("g10")).unlink()
    blocks = _details(backtest_section(config(), layout).html)
    assert len(blocks) == 3
    assert sum("No equity bars" in block for block in blocks) == 1


@pytest.mark.parametrize("results", [None, {"enabled": False, "groups": {}}])
def test_absent_or_disabled_backtest_adds_no_section(
    tmp_path: Path, results: dict[str, Any] | None
) -> None:
    run = RunLayout(str(tmp_path / "run"))
    if results is not None:
        io.write_json(run.backtest_results, results)
    section = backtest_section(config(), run)
    assert section.markdown == [] and section.html == ""
    assert section == (
        BacktestSection()
        if results is None
        else BacktestSection(headline=["Backtest: disabled (backtest.enabled is false)"])
    )


def test_chart_indices_keep_every_bucket_extreme() -> None:
    values = np.sin(np.linspace(0, 20, 5000)) + np.linspace(0, 1, 5000)
    values[1234] = -5.0
    chosen = chart_indices(values, limit=100)
    assert len(chosen) == 100 and np.all(np.diff(chosen) > 0)
    assert {int(np.argmin(values)), int(np.argmax(values))} <= set(chosen.tolist())
    flat = chart_indices(np.ones(1000), limit=10)
    assert len(flat) == 10 and flat[0] == 0 and flat[-1] == 999
    assert np.array_equal(chart_indices(values[:50], limit=100), np.arange(50))


@pytest.mark.slow
def test_the_tiny_runs_report_shows_every_champions_backtest(tiny_runs: TinyRuns) -> None:
    """write_report (called by infer) puts the section in both report files."""
    groups = io.read_json(str(tiny_runs.run_dir / "backtest" / "results.json"))["groups"]
    assert len(groups) == 8
    markdown = (tiny_runs.run_dir / "report.md").read_text()
    page = (tiny_runs.run_dir / "report.html").read_text()
    assert f"## {TITLE}" in markdown and "**Backtest: " in markdown
    assert len(_details(page)) == len(groups)
    assert len(_table_rows(markdown.splitlines())) == len(groups)

"""The run report in a real browser (headless Chromium, Debian's `chromium`; `make browser`
installs it): every image of the tiny run's report.html loads, the screenshot shows the
charts; and every chart the tuning studies of stages 2-4 wrote is linked and embedded."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest
from PIL import Image
from tiny_run import TinyRuns

from alphafactory import io
from alphafactory.layout import RunLayout, read_plan
from alphafactory.stages.infer import trained_models
from alphafactory.stages.report import write_report
from alphafactory.stages.report_tuning import tuning_part
from alphafactory.tuning import write_study_report

#: Marks each image with whether it decoded, once the page (images included) has loaded.
CHECK = """<script>window.addEventListener("load", function () {
  Array.from(document.images).forEach(function (image) {
    image.setAttribute("data-loaded", String(image.complete && image.naturalWidth > 0));
  });
  document.body.setAttribute("data-checked", String(document.images.length));
});</script>"""
SKILL_GREEN = (0x3A, 0x8A, 0x4A)  # the test-AP bars of models with skill (report_plots)


def chromium() -> str:
    """The browser: $CHROMIUM, else `chromium` on PATH; a one-line failure when absent."""
    name = os.environ.get("CHROMIUM", "chromium")
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"headless browser {name!r} not found: run `make browser` (apt-get install "
            "--no-install-recommends chromium) or set CHROMIUM to its path",
            pytrace=False,
        )
    return found


def browse(page: Path, scratch: Path, *options: str) -> str:
    """Chromium's stdout for `page` with `options` (headless, no sandbox: tests run as root)."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={scratch / 'profile'}",
        # no background connections: the machine's network is closed, and they only slow it
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-quic", *options, page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def image_states(report: Path, scratch: Path) -> list[str]:
    """`data-loaded` of every <img> of `report` after Chromium loaded it (a copy with CHECK)."""
    page = scratch / "checked.html"
    page.write_text(report.read_text().replace("</body>", f"{CHECK}</body>"))
    dom = browse(page, scratch, "--virtual-time-budget=15000", "--dump-dom")
    images = re.findall(r"<img\b[^>]*>", dom)
    assert re.search(rf'<body[^>]*data-checked="{len(images)}"', dom), "the check did not run"
    return [re.search(r'data-loaded="(\w+)"', tag).group(1) for tag in images]  # type: ignore[union-attr]


def add_studies(layout: RunLayout, units: dict[int, dict[str, str]]) -> list[str]:
    """Small real Optuna studies as stages 2-4 leave them (report folder, winners file);
    returns the study charts written, relative to the run folder."""
    charts = []
    for stage, by_unit in units.items():
        records = {}
        for unit, gid in by_unit.items():
            study = optuna.create_study(
                study_name=f"stage{stage}-{unit}", direction="maximize",
                sampler=optuna.samplers.TPESampler(seed=stage),
            )  # fmt: skip
            study.optimize(
                lambda t: 0.4 - (t.suggest_float("x", -1, 1) - 0.2) ** 2
                + 0.01 * t.suggest_int("leaves", 4, 64), n_trials=12,
            )  # fmt: skip
            folder = ("tune", f"stage{stage}", "reports", unit)
            write_study_report(study, layout.path(*folder))
            charts += ["/".join((*folder, name)) for name in ("history.svg", "importance.svg")]
            records[unit] = {
                "group_id": gid, "family": "lightgbm", "trials": 12,
                "best_value": study.best_value, "best_params": study.best_params,
            }  # fmt: skip
            if stage == 4:
                records[unit]["adoption"] = {"adopted": False, "reason": "not better"}
        io.write_json(layout.tune_winners(stage), {"units": records})
    return charts


STUDY_UNITS = {2: {"w3": "BTC_w3_high", "w10": "BTC_w10_high"}, 3: {"BTC_w3_high": "BTC_w3_high"},
               4: {"BTC_w3_high": "BTC_w3_high"}}  # fmt: skip


def test_every_study_chart_of_stages_2_to_4_is_linked_and_embedded(tmp_path: Path) -> None:
    layout = RunLayout(str(tmp_path / "run"))
    io.write_json(layout.path("tune", "stage1", "variants.json"), [
        {"group_id": "BTC_w3_high", "variant_id": "v", "status": "ok", "average_precision": 0.4},
    ])  # fmt: skip
    io.write_json(layout.tune_winners(1), {"winners": {"BTC_w3_high": {"average_precision": 0.4}}})
    charts = add_studies(layout, STUDY_UNITS)
    part = tuning_part(layout, [], [])
    assert len(charts) == 8 and all((tmp_path / "run" / c).stat().st_size > 0 for c in charts)
    embedded = dict(re.findall(r'<a href="([^"]+)"><img src="data:image/svg\+xml;base64,([^"]+)"',
                               part.html))  # fmt: skip
    assert set(charts) <= set(embedded)
    for chart in charts:
        assert base64.b64decode(embedded[chart]) == (tmp_path / "run" / chart).read_bytes()
        assert f"]({chart})" in "\n".join(part.markdown)
    assert part.html.index("stage 2, w3") < part.html.index("stage 2, w10")  # natural order
    assert "hyperparameter importance (fANOVA" in part.html
    stage4 = part.tables[-1]
    assert stage4.headers[-2:] == ["adopted", "adoption"] and stage4.rows[0][-2:] == [
        "no", "not better",
    ]  # fmt: skip


def _green_share(screenshot: Path) -> float:
    image = Image.open(screenshot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    near = [
        n
        for n, rgb in colours
        if max(abs(a - b) for a, b in zip(rgb, SKILL_GREEN, strict=True)) <= 8
    ]
    green = sum(near)
    return green / (image.width * image.height)


@pytest.mark.slow
def test_every_image_of_the_tiny_runs_report_loads(tiny_runs: TinyRuns, tmp_path: Path) -> None:
    report = tiny_runs.run_dir / "report.html"
    states = image_states(report, tmp_path)
    # the test-AP chart, stage 1, and per group its PR curves, confusion matrix, importance
    assert len(states) == 2 + 3 * len(tiny_runs.plan["groups"]) == 26
    assert states == ["true"] * len(states)
    shot = tmp_path / "report.png"
    browse(report, tmp_path, "--window-size=1400,2400", f"--screenshot={shot}")
    image = Image.open(shot)
    assert image.size == (1400, 2400)
    distinct = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    assert len(distinct) > 50  # text, tables and charts, not a blank page
    assert _green_share(shot) > 0.001  # the bars of the four BTC models with skill


@pytest.mark.slow
def test_study_charts_load_in_the_tiny_runs_report(tiny_runs: TinyRuns, tmp_path: Path) -> None:
    """The tiny run tunes stage 1 only; with studies of stages 2-4 added, the rewritten
    report embeds their charts too, and each loads."""
    run = tmp_path / "run-1"
    shutil.copytree(tiny_runs.run_dir, run)
    layout = RunLayout(str(run))
    charts = add_studies(layout, STUDY_UNITS)
    plan = read_plan(layout)
    published = io.read_json(str(run / "infer" / "registry.json"))
    write_report(tiny_runs.config, layout, plan, trained_models(layout, len(plan.shards)),
                 published)  # fmt: skip
    states = image_states(run / "report.html", tmp_path)
    assert len(states) == 26 + len(charts)
    assert states == ["true"] * len(states)

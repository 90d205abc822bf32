"""The console of `alphafactory run`: kfp.local's output split per task (tested on real
captured output), the step view, the progress files, the winners table; and one real run that
fails in a task, with `--verbose`."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import fsspec
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from alphafactory.cli import app
from alphafactory.cli._pipeline import winners_table
from alphafactory.config import load_environment
from alphafactory.data.synthetic import generate_bars
from alphafactory.progress import progress_file, read_progress, report, tracked
from pipelines.console import RunView
from pipelines.tasklogs import (
    ANSI,
    EVENTS_FILE,
    LOGS_DIR,
    LogRouter,
    OutputParser,
    Step,
    failed_task_logs,
    log_tail,
    pipeline_steps,
    read_records,
)

CAPTURED = Path(__file__).parent / "data" / "kfp_local_output.txt"
_RULE = "-" * 80
FAILURE = (
    "alphafactory.errors.DataError: /tmp/pytest-of-root/pytest-27/"
    "test_failed_task_names_its_exc0/bars.parquet: file not found; check the path or write the "
    "bars there first"
)


def _captured() -> list[tuple[str, str]]:
    """(thread tag, raw line) of the captured output, in the order it was printed."""
    rows = []
    for line in CAPTURED.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            thread, _, text = line.partition("|")
            rows.append((thread, text))
    return rows


def _split(rows: list[tuple[str, str]]) -> tuple[list[tuple[str, int | None, str]], dict]:
    parser = OutputParser()
    threads: dict[str, int] = {}
    files: dict[str | None, list[str]] = {}
    events = []
    for at, (thread, text) in enumerate(rows):
        writes, new = parser.feed(threads.setdefault(thread, len(threads)), text, float(at))
        for name, line in writes:
            files.setdefault(name, []).append(line)
        events += [(e.task, e.shard, e.state) for e in new]
    assert parser.close() == []  # every task of the capture was closed by its rule
    return events, files


def test_the_parser_names_every_task_and_its_state_in_real_kfp_output() -> None:
    events, _ = _split(_captured())
    assert events == [
        ("resolve-run-dir", None, "running"),
        ("resolve-run-dir", None, "succeeded"),
        ("screen-shard", 0, "running"),
        ("screen-shard", 1, "running"),
        ("screen-shard", 0, "succeeded"),
        ("screen-shard", 1, "succeeded"),  # its status record is missing: its output was written
        ("tune-stage", 1, "running"),
        ("tune-stage", 0, "running"),
        ("tune-stage", 1, "succeeded"),
        ("tune-stage", 0, "succeeded"),
        ("prepare-data", None, "running"),
        ("prepare-data", None, "failed"),
    ]


def test_the_parser_puts_each_line_in_its_tasks_log() -> None:
    rows = _captured()
    _, files = _split(rows)
    assert set(files) == {
        None,
        "resolve-run-dir.log",
        "screen-shard.0.log",
        "screen-shard.1.log",
        "tune-stage.0.log",
        "tune-stage.1.log",
        "prepare-data.log",
    }
    assert sum(len(lines) for lines in files.values()) == len(rows)  # none lost, none twice
    lost = {("screen-shard", 1)}  # its status and outputs records were dropped by kfp.local
    loops = (("screen-shard", 1, "screen shard"), ("tune-stage", 2, "tune stage 1 shard"))
    for task, loop, output in loops:
        for shard in (0, 1):
            log = files[f"{task}.{shard}.log"]
            assert log[0].endswith(f" - INFO - Executing task '{task}'") and _RULE in log[-1]
            own = [line for line in log if "-iteration-" in line]
            assert own and all(f"for-loop-{loop}-iteration-{shard}/{task}/" in line for line in own)
            assert (f"Output: '{output} {shard}'" in "\n".join(log)) == ((task, shard) not in lost)
    orchestrator = files[None]
    assert orchestrator[0].endswith(" - INFO - Running pipeline: 'alphafactory'")
    assert not any("[KFP Executor" in line for line in orchestrator)
    assert any("UserWarning: Task 'screen-shard'" in line for line in orchestrator)
    assert not any(ANSI.search(line) for lines in files.values() for line in lines)
    assert files["prepare-data.log"][-5].strip() == FAILURE


def test_the_router_writes_each_threads_lines_to_its_task_log(tmp_path: Path) -> None:
    """Real threads write the capture (each its own lines, split as print() splits them);
    the logs, the events and the echo hold what each wrote."""
    rows = _captured()
    echo = io.StringIO()
    router = LogRouter(tmp_path / LOGS_DIR, echo=echo)
    router.announce([Step("screen-shard", "screen shard", True)])
    stream = router.stream()
    workers = sorted({thread for thread, _ in rows if thread != "M"})
    assert len(workers) == 2

    def work(name: str) -> None:
        for thread, text in rows:
            if thread == name:
                stream.write(text)
                stream.write("\n")

    main_before = [text for thread, text in rows[: _first_worker(rows)] if thread == "M"]
    main_after = [text for thread, text in rows[_first_worker(rows) :] if thread == "M"]
    stream.write("".join(f"{text}\n" for text in main_before))  # several lines in one write
    pool = [threading.Thread(target=work, args=(name,)) for name in workers]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    stream.write("".join(f"{text}\n" for text in main_after))
    router.close()

    logs = tmp_path / LOGS_DIR
    for task in ("screen-shard", "tune-stage"):
        for shard in (0, 1):
            text = (logs / f"{task}.{shard}.log").read_text()
            assert f"iteration-{1 - shard}/" not in text and f"iteration-{shard}/{task}/" in text
    assert sorted(echo.getvalue().splitlines()) == sorted(text for _, text in rows)
    records, _ = read_records(logs / EVENTS_FILE)
    assert records[0] == {
        "steps": [{"key": "screen-shard", "label": "screen shard", "sharded": True}]
    }
    states = sorted(
        (r["task"], -1 if r["shard"] is None else r["shard"], r["state"]) for r in records[1:]
    )
    assert states == [
        ("prepare-data", -1, "failed"),
        ("prepare-data", -1, "running"),
        ("resolve-run-dir", -1, "running"),
        ("resolve-run-dir", -1, "succeeded"),
        ("screen-shard", 0, "running"),
        ("screen-shard", 0, "succeeded"),
        ("screen-shard", 1, "running"),
        ("screen-shard", 1, "succeeded"),
        ("tune-stage", 0, "running"),
        ("tune-stage", 0, "succeeded"),
        ("tune-stage", 1, "running"),
        ("tune-stage", 1, "succeeded"),
    ]
    assert failed_task_logs(tmp_path) == [("prepare-data", logs / "prepare-data.log")]
    tail = log_tail(logs / "prepare-data.log")
    assert len(tail) == 20 and tail[-1].strip() == FAILURE
    assert all(line.strip() for line in tail)


def _first_worker(rows: list[tuple[str, str]]) -> int:
    return next(index for index, (thread, _) in enumerate(rows) if thread != "M")


def test_steps_are_the_pipelines_tasks_in_order_with_their_display_names() -> None:
    from pipelines.pipeline import build_pipeline

    pipeline = build_pipeline(load_environment("local-dev").model_dump_json())
    steps = [(s.key, s.label, s.sharded) for s in pipeline_steps(pipeline.pipeline_spec)]
    assert steps == [
        ("resolve-run-dir", "resolve run folder", False),
        ("prepare-data", "prepare: features, targets, plan", False),
        ("list-shards", "plan shards", False),
        ("screen-shard", "screen shard", True),
        ("aggregate-screen", "aggregate selected features", False),
        ("tune-stage", "tune stage 1: defaults, every variant", True),
        ("select-winners", "tune stage 1: select", False),
        ("tune-stage-2", "tune stage 2: Bayesian search, one representative per window", True),
        ("select-winners-2", "tune stage 2: select", False),
        ("tune-stage-3", "tune stage 3: learnings on every group, rolling-window CV", True),
        ("select-winners-3", "tune stage 3: select", False),
        ("tune-stage-4", "tune stage 4: focused search around each best", True),
        ("select-winners-4", "tune stage 4: select", False),
        ("train-shard", "train production models", True),
        ("backtest-shard", "backtest: walk-forward over the test period", True),
        ("aggregate-backtest", "backtest: collect", False),
        ("infer-predictions", "infer: predictions and report", False),
    ]


STEPS = [
    {"key": "prepare-data", "label": "prepare", "sharded": False},
    {"key": "screen-shard", "label": "screen shard", "sharded": True},
    {"key": "aggregate-screen", "label": "aggregate", "sharded": False},
]


def _append(run_dir: Path, *records: dict) -> None:
    path = run_dir / LOGS_DIR / EVENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)


def _event(task: str, shard: int | None, state: str, at: float) -> dict:
    return {"task": task, "shard": shard, "state": state, "time": at}


def test_without_a_terminal_each_finished_step_is_one_line(tmp_path: Path) -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=100))
    assert not view.live
    view.state.shards = 2
    _append(tmp_path, {"steps": STEPS}, _event("prepare-data", None, "running", 100.0))
    _append(tmp_path, _event("prepare-data", None, "succeeded", 112.4))
    _append(
        tmp_path,
        _event("screen-shard", 0, "running", 113),
        _event("screen-shard", 1, "running", 114),
    )
    with view:
        view.update(tmp_path)
        assert out.getvalue().splitlines() == ["[1/3] prepare · done · 0:12"]
        _append(tmp_path, _event("screen-shard", 0, "succeeded", 150))
        view.update(tmp_path)
        assert len(out.getvalue().splitlines()) == 1  # one shard of two: screen still runs
        _append(tmp_path, _event("screen-shard", 1, "succeeded", 161))
        _append(tmp_path, _event("aggregate-screen", None, "running", 162))
        _append(tmp_path, _event("aggregate-screen", None, "failed", 170))
        view.update(tmp_path)
        assert len(out.getvalue().splitlines()) == 2  # a failure shows when the run ends
        view.update(tmp_path, final=True)
    assert out.getvalue().splitlines() == [
        "[1/3] prepare · done · 0:12",
        "[2/3] screen shard · 2/2 shards · done · 0:48",
        "[3/3] aggregate · FAILED · 0:08",
    ]


def test_the_live_view_fills_a_running_step_with_its_shards_groups(tmp_path: Path) -> None:
    now = time.time()
    _append(
        tmp_path,
        {"steps": STEPS},
        _event("prepare-data", None, "running", now - 60),
        _event("prepare-data", None, "succeeded", now - 30),
        _event("screen-shard", 0, "running", now - 20),
        _event("screen-shard", 1, "running", now + 100),  # its progress file predates it
    )
    report(str(tmp_path), 0, 3, 4)
    report(str(tmp_path), 1, 2, 2)
    out = io.StringIO()
    with RunView(Console(file=out, force_terminal=True, width=160)) as view:
        assert view.live
        view.state.shards = 2
        view.update(tmp_path)
        assert view.state.completed(1) == pytest.approx(0.75)
        assert view.state.detail(1) == "0/2 shards, groups 3/4"
    text = ANSI.sub("", out.getvalue())
    assert "✓ prepare" in text and "▶ screen shard" in text and "0/2 shards, groups 3/4" in text
    assert "· aggregate" in text and "step 2 of 3" in text


def test_tracked_reports_each_item_once_the_loop_moves_on(tmp_path: Path) -> None:
    seen = []
    for item in tracked(["a", "b", "c"], str(tmp_path), 4):
        seen.append((item, read_progress(tmp_path)[4].done))
    assert seen == [("a", 0), ("b", 1), ("c", 2)]
    final = read_progress(tmp_path)[4]
    assert (final.done, final.total, final.unit, final.fraction) == (3, 3, "groups", 1.0)
    assert list(tracked(iter("xy"), str(tmp_path), 5, total=2, unit="units")) == ["x", "y"]
    assert read_progress(tmp_path)[5].unit == "units"
    with pytest.raises(TypeError, match="total="):
        list(tracked(iter("xy"), str(tmp_path), 6))
    progress_file(tmp_path, 7).parent.joinpath("shard-7.json").write_text("{not json")
    assert sorted(read_progress(tmp_path)) == [4, 5]  # a torn file is skipped


def test_tracked_writes_nothing_for_a_cluster_run_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert list(tracked([1, 2], "gs://bucket/runs/r1", 0)) == [1, 2]
    assert list(tmp_path.iterdir()) == []


def _row(**values: object) -> dict:
    row = dict.fromkeys(
        ["group", "planted", "variant", "family", "params", "test_ap", "n_test", "baseline_ap",
         "p_adjusted", "skill", "selection_ap", "grade", "champion"]
    )  # fmt: skip
    return {**row, **values}


def test_the_winners_table_shows_counts_as_integers_and_explains_missing_values() -> None:
    rows = [
        _row(group="BTC_w3_high", planted="noise", variant="BTC_w3_high_s1_m1_h6",
             family="lightgbm", params="default", test_ap=0.41234, n_test=27.0,
             baseline_ap=0.3333, p_adjusted=1.0, skill="no", selection_ap=0.5, grade="F",
             champion="no"),
        _row(group="ETH_w3_high", planted="noise", params="default"),
    ]  # fmt: skip
    table, notes = winners_table(rows)
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    lines = out.getvalue().splitlines()
    first = next(line for line in lines if "BTC_w3_high " in line)
    cells = [cell.strip() for cell in first.split("│")[1:-1]]
    assert cells[5:9] == ["0.4123", "27", "0.3333", "1.0000"]
    second = next(line for line in lines if "ETH_w3_high" in line)
    assert [cell.strip() for cell in second.split("│")[1:-1]].count("—") == 10
    assert notes[0].startswith("* optimistic")
    assert len(notes) == 2 and notes[1].startswith("— no value; winning variant: ")
    assert "grade: " in notes[1] and "events: " in notes[1] and "truth" not in notes[1]
    assert winners_table(rows[:1])[1] == notes[:1]  # nothing missing: no footnote


TINY_FAILING_ENV = {
    "name": "tiny-console",
    "runner": "local",
    "pipeline_root": "runs",
    "data": {"source": "synthetic", "symbols": ["AAA", "BBB"], "n_bars": 1500, "seed": 3},
    "features": {"scale": "small"},
    "grid": {
        "windows": [3],
        "swing_types": ["high"],
        "std_thresholds": [1.0],
        "move_thresholds": [1.0],
        "horizons": [6],
    },  # fmt: skip
    "parallelism": {"shards": 1},
}


@pytest.mark.slow
def test_a_failing_verbose_run_streams_kfp_output_and_prints_the_tasks_tail(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The bars live in this process's memory:// filesystem: the CLI validates them, the
    task processes of kfp.local cannot read them, so prepare-data fails inside the pipeline."""
    uri = f"memory://console-test/{tmp_path.name}/bars.parquet"
    with fsspec.open(uri, "wb") as handle:
        generate_bars(["AAA", "BBB"], n_bars=1500, seed=1).write_parquet(handle)
    env = tmp_path / "tiny.yaml"
    env.write_text(yaml.safe_dump(TINY_FAILING_ENV))
    runs = tmp_path / "runs"
    command = ["run", "--env", str(env), "--data", uri, "--runs-dir", str(runs), "--verbose"]
    result = CliRunner().invoke(app, command)
    streamed = capfd.readouterr().out  # the kfp.local child writes to this process's fd 1
    assert result.exit_code == 1, result.output
    (failed,) = runs.glob("*.failed")
    log = failed / LOGS_DIR / "prepare-data.log"
    assert f"last lines of prepare-data ({log}):" in result.output
    assert f"prepare-data: alphafactory.errors.DataError: {uri}: file not found" in result.output
    tail = result.output.split(f"last lines of prepare-data ({log}):\n", 1)[1].splitlines()
    assert tail[20].startswith("partial outputs kept for inspection in ")
    assert tail[19].strip().startswith(f"alphafactory.errors.DataError: {uri}: file not found")
    assert all(line.startswith("  ") for line in tail[:20])
    assert "[KFP Executor" not in result.output
    assert "[KFP Executor" in streamed and "Executing task" in streamed  # --verbose
    text = log.read_text()
    assert "[KFP Executor" in text and "Traceback (most recent call last)" in text
    resolved = (failed / LOGS_DIR / "resolve-run-dir.log").read_text()
    assert "Task 'resolve-run-dir' finished with status SUCCESS" in resolved
    assert "Running pipeline: 'alphafactory'" in (failed / LOGS_DIR / "kfp-local.log").read_text()
    assert failed_task_logs(failed) == [("prepare-data", log)]
